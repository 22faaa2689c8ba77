"""What became of a sweep's trials, read from their folders: the status (finished, failed,
stopped by the scheduler, unfinished), errors, epochs and seconds of each, every file checked as a
run or the sweep writes it, so that a damaged or forged trial file makes that trial failed, with the
reason, and never ends the sweep's report.  Nothing here needs Ray."""

from __future__ import annotations

import math
from pathlib import Path

from sda.run_folder import LOCK_FILE
from sda.sweep_config import Sweep, rerun_command
from sda.utils import read_json

TRIAL_FILE = "trial.json"  # which configuration and seed a trial folder holds
FAILURE_FILE = "failure.json"
STOPPED_FILE = "stopped.json"


def one_line(text: object) -> str:
    """``text`` on one line, its runs of white space made single spaces."""
    return " ".join(str(text).split())


def run_seconds(results: dict) -> float:
    """Pretraining plus fine-tuning seconds of a run's ``results.json``."""
    return results["pretraining"]["seconds"] + results["finetuning"]["seconds"]


#: What a trial's folder holds (:func:`folder_state`).
NEW, FINISHED, FAILED, STOPPED, INTERRUPTED, STOPPED_EARLY = ("new", "finished", "failed", "stopped", "interrupted",
                                                              "stopped before its first checkpoint")


def folder_state(folder: Path) -> str:
    """What a trial's folder holds, by the files a run and a sweep write there, the first that
    is present: the run's results (finished), the sweep's note of its failure (failed) or of the
    scheduler stopping it (stopped), the run's checkpoint (interrupted: it can be continued),
    other files (stopped before its first checkpoint: it cannot), nothing but a lock (new)."""
    for name, state in (("results.json", FINISHED), (FAILURE_FILE, FAILED), (STOPPED_FILE, STOPPED),
                        ("checkpoint.safetensors", INTERRUPTED)):
        if (folder / name).is_file():
            return state
    if folder.is_dir() and any(entry.name not in (LOCK_FILE, TRIAL_FILE) for entry in folder.iterdir()):
        return STOPPED_EARLY
    return NEW


def trial_outcome(folder: Path | None, metrics: dict, error=None,
                  how_to_continue: str = "continue the sweep with --resume") -> dict:
    """Status, errors, epochs, seconds and message of a trial, from its own folder first (what
    the sda run wrote), then from what it last reported to Tune; an unfinished trial's message
    ends with ``how_to_continue``."""
    if folder is None:
        return {"best_validation_error": None, "test_error": None, "epochs": None, "seconds": None,
                "status": "unfinished", "message": "not started: continue the sweep with --resume"}
    outcome = {"best_validation_error": metrics.get("best_validation_error"), "test_error": metrics.get("test_error"),
               "epochs": metrics.get("epoch"), "seconds": metrics.get("seconds"), "message": ""}
    try:
        state = folder_state(folder)
        if state == FINISHED:
            outcome.update(status=FINISHED, **_finished_numbers(folder / "results.json"))
        elif state == FAILED:
            outcome.update(status=FAILED, message=_message(folder / FAILURE_FILE))
        elif error is not None:
            outcome.update(status=FAILED, message=one_line(str(error).strip().splitlines()[-1] if str(error).strip()
                                                            else type(error).__name__))
        elif state == STOPPED:
            outcome.update(status=STOPPED, message=_message(folder / STOPPED_FILE))
        else:
            outcome.update(status="unfinished", message=f"not run to its end: {how_to_continue}")
    except OSError as exc:
        outcome.update(_NO_NUMBERS, status="failed", message=f"cannot read {exc.filename}: {exc.strerror}")
    except ValueError as exc:  # a file of the trial's damaged or forged since it was written
        outcome.update(_NO_NUMBERS, status="failed", message=one_line(exc))
    return outcome


_NO_NUMBERS = {"best_validation_error": None, "test_error": None, "epochs": None, "seconds": None}


def _finished_numbers(path: Path) -> dict:
    """The errors, epochs and seconds of a run's ``results.json``, each checked as a run writes it
    (errors in [0, 1] or None, counts and seconds finite and >= 0): ValueError naming ``path``."""
    results = read_json(path)
    try:
        finetuning = results["finetuning"]
        numbers = {"best_validation_error": finetuning["best_validation_error"], "test_error": finetuning["test_error"],
                   "epochs": finetuning["epochs"], "seconds": run_seconds(results)}
    except (KeyError, TypeError, IndexError):
        raise ValueError(f"{path}: not the results a run writes (its fine-tuning errors, epochs or seconds "
                         f"are missing)") from None

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    for name in ("best_validation_error", "test_error"):
        if numbers[name] is not None and not (number(numbers[name]) and numbers[name] <= 1):
            raise ValueError(f"{path}: {name} must be a number in [0, 1] or null, got {numbers[name]!r:.40}")
    if not (number(numbers["epochs"]) and isinstance(numbers["epochs"], int)) or not number(numbers["seconds"]):
        raise ValueError(f"{path}: epochs and seconds must be numbers >= 0, got {numbers['epochs']!r:.40} and "
                         f"{numbers['seconds']!r:.40}")
    return numbers


def _message(path: Path) -> str:
    """The one-line message of a trial's ``failure.json`` or ``stopped.json``."""
    saved = read_json(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("message"), str):
        raise ValueError(f"{path}: not the message a sweep writes (an object with a string \"message\")")
    return one_line(saved["message"])[:1000]




def describe(tune_config: dict) -> str:
    """A trial's values and seed, ``key=value, ..., seed=N``."""
    values = tune_config["configuration"]["values"]
    return ", ".join([*(f"{key}={value}" for key, value in values.items()), f"seed={tune_config['seed']}"])


def outcome_line(name: str, description: str, outcome: dict) -> str:
    """The line printed as a trial ends."""
    if outcome["status"] == "failed":
        return f"trial {name} ({description}) failed: {outcome['message']}"
    if outcome["best_validation_error"] is None:
        return f"trial {name} ({description}) {outcome['status']} before its first fine-tuning epoch"
    test = "" if outcome["test_error"] is None else f", test error {outcome['test_error']:.2%}"  # a file without a test set
    return (f"trial {name} ({description}) {outcome['status']}: best validation error "
            f"{outcome['best_validation_error']:.2%}{test}, {outcome['epochs']} epochs, {outcome['seconds']:.0f} s")


def collect_rows(sweep: Sweep, result_grid, trials_dir: Path) -> list[dict]:
    """One row per trial of the sweep (see :mod:`sda.sweep_report`), in configuration and seed
    order; a trial that never started (the sweep was interrupted) is ``unfinished``."""
    results = {Path(result.path).name: result for result in result_grid}
    names = _trial_names(trials_dir, results)
    rows = []
    for number, configuration in enumerate(sweep.configurations):
        for seed in sweep.seeds:
            name = names.get((number, seed))
            result = results.get(name) if name is not None else None
            config = sweep.trial_config(configuration, seed)
            row = {"trial": name, "configuration": number, "seed": seed,
                   **{key: value for key, value in config.items() if key != "seed"}, **configuration}
            row.update(trial_outcome(None if name is None else trials_dir / name,
                                     (result.metrics or {}) if result else {}, result.error if result else None))
            row["command"] = rerun_command(sweep, config)
            rows.append(row)
    return rows


def _trial_names(trials_dir: Path, results: dict) -> dict:
    """``(configuration number, seed) -> trial name``, from the trials' own ``trial.json`` (what
    Tune's results hold only for trials that reported), else from Tune's results."""
    names = {}
    for name, result in results.items():
        if result.config is not None:
            names[(result.config["configuration"]["number"], result.config["seed"])] = name
    for path in trials_dir.glob(f"*/{TRIAL_FILE}"):
        try:
            identity = read_json(path)
            key = (identity["configuration"], identity["seed"])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue  # damaged or forged: Tune's results still name the trials that reported
        if all(isinstance(part, int) and not isinstance(part, bool) for part in key):
            names[key] = path.parent.name
    return names
