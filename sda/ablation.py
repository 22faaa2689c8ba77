"""Why does the SdA beat UFLDL's stacked sparse autoencoder?  An ablation, run as a sweep:
``python -m sda.ablation --output-dir DIR [--quick]``.

UFLDL's exercise "Implement deep networks for digit classification" reaches 97.6 % accuracy
(2.4 % error) on MNIST with a stacked *sparse* autoencoder; the Deep Learning Tutorials' SdA
reaches 1.30 %.  The two differ in several factors at once.  Starting from each of the two
configurations (the *anchors*), this ablation changes one factor at a time toward the other:

============  ===========================================  ==========================================
factor        UFLDL's anchor (``--preset ufldl``)          the tutorial's anchor
============  ===========================================  ==========================================
criterion     sparse autoencoder (ρ 0.1, β 3, λ 3e-3)      denoising, masking noise 0.1 / 0.2 / 0.3
depth         2 hidden layers                              3 hidden layers
width         200 units a layer                            1000 units a layer
optimiser     full-batch L-BFGS, 400 iterations a phase    minibatch SGD (batch 100; 5 pretraining
                                                           epochs a layer at lr 0.1; 40 fine-tuning
                                                           epochs at lr 0.1, momentum 0.9, × 0.95 an
                                                           epoch)
pretraining   all 50,000 training images                   all 50,000
data
fine-tuning   yes (the whole network)                      yes
============  ===========================================  ==========================================

The criterion has a third value, a plain autoencoder (the dA at corruption 0).  Changing the
data means pretraining on the first 5,000 images only (fine-tuning still uses all 50,000);
no fine-tuning means training only the softmax layer on the pretrained features.  The
tutorial's own minibatch protocol (batch 1, hours on a CPU) is replaced by the minibatch one
above so that every row runs in minutes on a GPU; the UFLDL anchor is UFLDL's protocol, with
the softmax trained together with the network in fine-tuning (UFLDL first trains it alone) and
weight decay 1e-4 on every weight matrix while fine-tuning (UFLDL's on the softmax's only).

Every row runs with the same seeds, and each trial keeps the parameters of its best
validation error, whose test error is reported: the same selection for every row, and the
test set chooses nothing.  At the full scale five more rows switch on, from UFLDL's anchor,
what UFLDL's exercise did otherwise, one at a time and then all four (``--preset
ufldl_published`` on the sweep's data): the last iterate kept (which the validation set then
does not choose), the softmax trained alone first, weight decay on the softmax only, and
minFunc's 100 L-BFGS correction pairs.  ``--scale long`` re-runs the anchors' criterion, depth,
width and pretraining-data rows with ``--preset best``'s protocol (SGD; 800 fine-tuning epochs
with dropout and max-norm).  ``--quick`` runs the 16 main rows on 5,000 training images with
fewer iterations and epochs and one seed (minutes on 2 CPU cores; its numbers only show that
the machinery works).

``DIR`` receives what :mod:`sda.sweep` writes (``sweep.toml``, ``trials/``, ``results.csv``,
``summary.csv``, ``results.png``) and ``ablation.csv`` (one row per trial: row, anchor, factor,
the value it takes, seed, errors, seconds, status) and ``ablation.png`` (mean ± sd of the test
error of every row; ``--compare DIR``: beside each row, the result of another scale's ablation
in ``DIR``).  ``--resume`` continues an interrupted ablation.
"""

from __future__ import annotations

if __name__ == "__main__":  # python -m sda.ablation: PyTensor's environment is checked before it loads below
    from sda.environment import exit_if_pytensor_cannot_start

    exit_if_pytensor_cannot_start("sda-ablation")

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from sda.ablation_report import _labelled, ablation_rows, bar_label, read_ablation_csv, write_ablation
from sda.checkpoint import CheckpointError, load_checkpoint
from sda.cli import OneLineParser
from sda.data import DataError
from sda.hyperparameters import HYPERPARAMETERS, STOPPING, TRAINING
from sda.run import PRESETS, RunError, stored_config
from sda.sweep import SweepError, run_sweep
from sda.sweep_outcomes import (FAILED, FINISHED, INTERRUPTED, NEW, STOPPED, STOPPED_EARLY, folder_state,
                                 trial_outcome)
from sda.sweep_config import VARIANT, SweepConfigError, parse_sweep, rerun_command
from sda.utils import read_json, read_json_lines

__all__ = ["Row", "ROWS", "SCALES", "rows_for", "ablation_toml", "ablation_rows", "write_ablation", "bar_label",
           "TrialFolderError", "trial_commands", "trial_folder_state", "collect_runs", "main"]


@dataclass(frozen=True)
class Row:
    """One configuration of the ablation: ``anchor`` with ``factor`` set to ``value``."""

    name: str
    anchor: str
    factor: str
    value: str
    overrides: dict


@dataclass(frozen=True)
class Scale:
    """How much of everything a scale of the ablation uses."""

    seeds: int
    train_size: int | None  # None: all 50,000 training images
    pretrain_size: int  # the "less pretraining data" rows
    lbfgs_iterations: int
    sgd_pretraining_epochs: int
    sgd_training_epochs: int
    narrow: int
    wide: int
    softmax_iterations: int = 0  # > 0: the rows of UFLDL's protocol, the softmax alone first this long
    long_finetuning: bool = False  # every row pretrains by SGD and fine-tunes as --preset best


SCALES = {
    "full": Scale(seeds=3, train_size=None, pretrain_size=5000, lbfgs_iterations=400, sgd_pretraining_epochs=5,
                  sgd_training_epochs=40, narrow=200, wide=1000, softmax_iterations=100),
    "long": Scale(seeds=3, train_size=None, pretrain_size=5000, lbfgs_iterations=400, sgd_pretraining_epochs=5,
                  sgd_training_epochs=PRESETS["best"]["training_epochs"], narrow=200, wide=1000, long_finetuning=True),
    "quick": Scale(seeds=1, train_size=5000, pretrain_size=500, lbfgs_iterations=25, sgd_pretraining_epochs=1,
                   sgd_training_epochs=4, narrow=200, wide=1000),
    "tiny": Scale(seeds=1, train_size=300, pretrain_size=100, lbfgs_iterations=2, sgd_pretraining_epochs=1,
                  sgd_training_epochs=1, narrow=8, wide=16),
}

#: What the long scale takes from ``--preset best``: its minibatch protocol, fine-tuning regularised by dropout
#: and max-norm with a rate falling linearly to 0 (its epochs are the scale's ``sgd_training_epochs``).
BEST_PROTOCOL = tuple(h.name for h in HYPERPARAMETERS if h.group in (TRAINING, STOPPING)
                      and h.name not in ("pretraining_epochs", "training_epochs"))
#: The rows of the long scale: the anchors and the factors the pretraining decides.
LONG_FACTORS = ("anchor", "criterion", "depth", "width", "pretraining data")

_NOISE = [0.1, 0.2, 0.3]  # the tutorial's masking levels, layer by layer


def _levels(depth: int, noisy: bool) -> list[float]:
    return _NOISE[:depth] if noisy else [0.0] * depth


def _sgd(scale: Scale) -> dict:
    return {"optimizer": "sgd", "pretraining_epochs": scale.sgd_pretraining_epochs, "pretrain_lr": 0.1,
            "pretrain_batch_size": 100, "training_epochs": scale.sgd_training_epochs, "finetune_lr": 0.1,
            "finetune_batch_size": 100, "finetune_momentum": 0.9, "finetune_lr_decay": 0.95,
            "patience_epochs": 100}


def _best(scale: Scale) -> dict:
    return {**{key: PRESETS["best"][key] for key in BEST_PROTOCOL}, "optimizer": "sgd",
            "pretraining_epochs": scale.sgd_pretraining_epochs, "training_epochs": scale.sgd_training_epochs}


def _lbfgs(scale: Scale) -> dict:
    return {"optimizer": "lbfgs", "pretraining_epochs": scale.lbfgs_iterations,
            "training_epochs": scale.lbfgs_iterations, "finetune_momentum": 0.0}


def _shape(depth: int, width: int, noisy: bool) -> dict:
    return {"hidden_layer_sizes": [width] * depth, "corruption_levels": _levels(depth, noisy)}


def rows_for(scale: Scale) -> list[Row]:
    """The ablation's rows at ``scale``: each anchor, then one factor changed at a time; at the
    full scale also UFLDL's protocol, one difference at a time and all together; at the long
    scale only the rows of :data:`LONG_FACTORS`, every one trained as ``--preset best``."""
    ufldl = {**_shape(2, scale.narrow, False), "criteria": "sparse", **_lbfgs(scale), "finetune_weight_decay": 1e-4}
    tutorial = {**_shape(3, scale.wide, True), "criteria": "denoising", **_sgd(scale), "finetune_weight_decay": 0.0}
    if scale.long_finetuning:
        ufldl, tutorial = {**ufldl, **_best(scale)}, {**tutorial, **_best(scale)}
    less_data = ("pretraining data", f"{scale.pretrain_size} images", {"pretrain_size": scale.pretrain_size})
    no_finetuning = ("fine-tuning", "none (softmax only)", {"finetune_layers": "top"})
    rows = [
        *_anchor_rows("ufldl", "UFLDL", "UFLDL's configuration", ufldl, (
            ("criterion", "plain autoencoder", {"criteria": "denoising"}),
            ("criterion", "denoising", {"criteria": "denoising", **_shape(2, scale.narrow, True)}),
            ("depth", "3 layers", _shape(3, scale.narrow, False)),
            ("width", f"{scale.wide} units", _shape(2, scale.wide, False)),
            ("optimiser", "minibatch SGD", _sgd(scale)),
            less_data, no_finetuning)),
        *_anchor_rows("tutorial", "tutorial", "the tutorial's configuration", tutorial, (
            ("criterion", "sparse autoencoder", {"criteria": "sparse", **_shape(3, scale.wide, False)}),
            ("criterion", "plain autoencoder", _shape(3, scale.wide, False)),
            ("depth", "2 layers", _shape(2, scale.wide, True)),
            ("width", f"{scale.narrow} units", _shape(3, scale.narrow, True)),
            ("optimiser", "full-batch L-BFGS", _lbfgs(scale)),
            less_data, no_finetuning)),
    ]
    if scale.long_finetuning:
        return [row for row in rows if row.factor in LONG_FACTORS]
    if scale.softmax_iterations:
        after_ufldl = sum(row.anchor == "UFLDL" for row in rows)
        rows[after_ufldl:after_ufldl] = [Row(f"ufldl_{name}", "UFLDL", "UFLDL's protocol", value, {**ufldl, **change})
                                         for name, value, change in _ufldl_protocol(scale)]
    return rows


def _ufldl_protocol(scale: Scale) -> list[tuple[str, str, dict[str, object]]]:
    """How UFLDL's exercise differs from the ``ufldl`` anchor, each alone, then all together
    (``--preset ufldl_published`` but for its data: a sweep's trials share theirs, here the
    50,000 training images and the validation set, which then chooses nothing)."""
    differences: list[tuple[str, str, dict[str, object]]] = [("last_iterate", "the last iterate kept", {"keep_model": "last"}),
                   ("softmax_first", f"the softmax alone first ({scale.softmax_iterations} iterations)",
                    {"softmax_epochs": scale.softmax_iterations}),
                   ("decay_softmax", "weight decay on the softmax only", {"finetune_weight_decay_on": "softmax"}),
                   ("memory_100", "100 L-BFGS correction pairs", {"lbfgs_memory": PRESETS["ufldl_published"]["lbfgs_memory"]})]
    together = {key: value for _, _, change in differences for key, value in change.items()}
    return [*differences, ("published", "all four (UFLDL's published protocol)", together)]


def _anchor_rows(name: str, anchor: str, description: str, config: dict, changes) -> list[Row]:
    """The anchor's own row, then one row per ``(factor, value, overrides)`` of ``changes``."""
    return [Row(name, anchor, "anchor", description, config),
            *(Row(f"{name}_{_slug(factor, value)}", anchor, factor, value, {**config, **change})
              for factor, value, change in changes)]


def _slug(factor: str, value: str) -> str:
    words = f"{factor.split()[0]} {value.split()[0]}".lower()
    return "".join(c if c.isalnum() else "_" for c in words)


ROWS = rows_for(SCALES["full"])


def ablation_toml(scale_name: str, seed: int = 1) -> str:
    """The sweep file of the ablation at ``scale_name`` (:mod:`sda.sweep_config`'s format)."""
    scale = SCALES[scale_name]
    lines = [f"# The ablation of sda.ablation, scale {scale_name!r}: written by python -m sda.ablation", "",
             'preset = "tutorial"', f"seeds = {scale.seeds}", "", "[config]", f"seed = {seed}", ""]
    if scale.train_size is not None:
        lines += ["[data]", f"train_size = {scale.train_size}", ""]
    for row in rows_for(scale):
        lines += ["[[variants]]", f"name = {_toml(row.name)}"]
        lines += [f"{key} = {_toml(value)}" for key, value in row.overrides.items()]
        lines.append("")
    return "\n".join(lines)


def _toml(value) -> str:
    """A TOML value: strings, numbers and lists of them are all the ablation needs."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"no TOML for {value!r}")
    return repr(value)


# ------------------------------------------------- the same trials, without Ray




class TrialFolderError(ValueError):
    """A trial's folder holds something its commands must not continue or count."""


def trial_commands(scale_name: str, runs_dir: Path, rows=None) -> list[str]:
    """The ``python -m sda.SdA`` commands of the ablation's trials still to run, for a machine
    without Ray (:func:`collect_runs` reads the folders they write, ``runs_dir/<row>_s<seed>``).
    A trial whose folder holds its ``results.json`` is done and gets no command; one with a
    checkpoint is continued (``--resume``); the others start.  ``rows``: the names of the rows
    to run (None: every row).  A folder holding anything else (a run of another configuration
    or scale, unreadable files, a run stopped before its first checkpoint) raises
    :class:`TrialFolderError`, naming it: nothing there is continued, counted or overwritten."""
    sweep = parse_sweep(ablation_toml(scale_name), f"the {scale_name} ablation")
    commands, problems = [], []
    for configuration in sweep.configurations:
        if rows is not None and configuration[VARIANT] not in rows:
            continue
        for seed in sweep.seeds:
            folder, config = runs_dir / f"{configuration[VARIANT]}_s{seed}", sweep.trial_config(configuration, seed)
            try:
                state = trial_folder_state(folder, config, sweep.data)
            except TrialFolderError as exc:
                problems.append(str(exc))
                continue
            if state == STOPPED_EARLY:
                problems.append(f"{folder} holds a run {state}, which cannot be continued")
            elif state == INTERRUPTED:
                commands.append(f"python -m sda.SdA --resume {shlex.quote(str(folder))} --quiet --no-pictures")
            elif state == NEW:
                commands.append(f"{rerun_command(sweep, config)} --quiet --no-pictures "
                                f"--output-dir {shlex.quote(str(folder))}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TrialFolderError(f"{problems[0]}{more}: move such folders away, or give another --output-dir")
    return commands


def trial_folder_state(folder: Path, config: dict, data: dict) -> str:
    """What a trial's folder holds (:func:`sda.sweep_outcomes.folder_state`): ``"new"``,
    ``"finished"``, ``"interrupted"`` or ``"stopped before its first checkpoint"`` (so is a
    sweep's failed or stopped trial: no command continues those).  Results or a checkpoint of
    another configuration (``config``, the trial's) or of other data (``data``'s training and
    validation sizes, e.g. another scale's) raise :class:`TrialFolderError`, as do unreadable ones."""
    state = folder_state(folder)
    if state == FINISHED:
        path = folder / "results.json"
        try:
            saved = read_json(path)
        except OSError as exc:
            raise TrialFolderError(f"{path} is unreadable ({exc.strerror})") from None
        except ValueError as exc:  # too large, nested too deep, not JSON: the reader says which
            raise TrialFolderError(f"unreadable run file {' '.join(str(exc).split())}") from None
        try:
            saved_config, source = saved["config"], saved["data"]
        except (KeyError, TypeError):
            raise TrialFolderError(f"{path} is not the results a run writes (an object with its config and "
                                   f"data)") from None
    elif state == INTERRUPTED:
        path = folder / "checkpoint.safetensors"
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as exc:
            raise TrialFolderError(" ".join(str(exc).split())) from None
        saved_config, source = checkpoint.config, checkpoint.data_source
    else:
        return STOPPED_EARLY if state in (FAILED, STOPPED) else state
    try:
        same = (stored_config(saved_config) == stored_config(config)
                and all(source.get(key) == data[key] for key in ("train_size", "valid_size")))
    except (RunError, AttributeError, TypeError, ValueError):
        same = False
    if not same:
        raise TrialFolderError(f"{path} is of another configuration or data than this trial (another scale?)")
    return state


def collect_runs(runs_dir: Path, rows: list[Row], sweep) -> list[dict]:
    """The table of :func:`ablation_rows` from the run folders of :func:`trial_commands`; a run
    that did not end is ``unfinished``, with its best validation error so far; a folder of
    another configuration or scale, or unreadable, is ``failed``."""
    trials, configurations = [], {configuration[VARIANT]: configuration for configuration in sweep.configurations}
    for row in rows:
        for seed in sweep.seeds:
            folder = runs_dir / f"{row.name}_s{seed}"
            try:
                state = trial_folder_state(folder, sweep.trial_config(configurations[row.name], seed), sweep.data)
                continuation = {INTERRUPTED: f"continue it with python -m sda.SdA --resume {shlex.quote(str(folder))}",
                                STOPPED_EARLY: "it stopped before its first checkpoint: move "
                                "the folder away and run its line of python -m sda.ablation --commands"}
                outcome = trial_outcome(folder, _progress(folder / "metrics.jsonl"), how_to_continue=continuation.get(
                    state, "run its line of python -m sda.ablation --commands"))
            except TrialFolderError as exc:
                outcome = {"best_validation_error": None, "test_error": None, "epochs": None, "seconds": None,
                           "status": "failed", "message": str(exc)}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a damaged or forged run folder
                why = " ".join(str(exc).split()) if isinstance(exc, ValueError) else type(exc).__name__
                outcome = {"best_validation_error": None, "test_error": None, "epochs": None, "seconds": None,
                           "status": "failed", "message": f"unreadable run files in {folder}: {why}"}
            trials.append({VARIANT: row.name, "seed": seed, **{k: "" if v is None else v for k, v in outcome.items()}})
    return _labelled(trials, rows)


def _progress(metrics_path: Path) -> dict:
    """Best validation error so far, the test error then, epochs and seconds of a run's
    ``metrics.jsonl`` (empty when it has none)."""
    try:
        records = read_json_lines(metrics_path)
    except OSError:
        return {}
    best_errors = [r.get("validation_error") for r in records if isinstance(r, dict)]
    if not all(e is None or (isinstance(e, (int, float)) and not isinstance(e, bool) and 0 <= e <= 1)
               for e in best_errors):  # NaN and 1e999 (inf) are not errors either
        raise ValueError(f"{metrics_path}: errors must be numbers in [0, 1]")
    tuning = [r for r in records if r["phase"] == "fine-tuning" and r["validation_error"] is not None]
    if not tuning:
        return {}
    best = min(tuning, key=lambda r: r["validation_error"])
    tested = [r for r in tuning if r["epoch"] <= best["epoch"] and r["test_error"] is not None]
    return {"best_validation_error": best["validation_error"], "test_error": tested[-1]["test_error"] if tested else None,
            "epoch": tuning[-1]["epoch"], "seconds": sum(r["seconds"] or 0 for r in records)}


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m sda.ablation",
                                description="Why does the SdA beat UFLDL's stacked sparse autoencoder? Change one "
                                            "factor at a time from each, on Ray Tune (see sda/ablation.py).",
                                error_name="sda-ablation")
    p.add_argument("--output-dir", type=Path, required=True, help="where the sweep's files and ablation.csv/png go")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_const", dest="scale", const="quick",
                       help="the same rows on 5,000 images, fewer iterations, one seed (minutes on 2 cores)")
    scale.add_argument("--tiny", action="store_const", dest="scale", const="tiny", help=argparse.SUPPRESS)
    scale.add_argument("--scale", choices=("full", "long", "quick"),
                       help="full (the default): every row on 50,000 images, 3 seeds, with UFLDL's protocol one "
                            "difference at a time; long: the anchors' criterion, depth, width and pretraining-data "
                            "rows, every one pretrained by SGD and fine-tuned as --preset best (800 epochs); quick: "
                            "as --quick")
    p.add_argument("--compare", type=Path, metavar="DIR",
                   help="draw the ablation.csv of DIR (an ablation at another scale) beside this one's in "
                        "ablation.png, each row's two budgets together")
    p.add_argument("--resume", action="store_true", help="continue the interrupted ablation in --output-dir")
    given_runs = p.add_mutually_exclusive_group()
    given_runs.add_argument("--commands", action="store_true",
                   help="print one python -m sda.SdA command per trial still to run (into --output-dir/<row>_s<seed>; "
                        "--resume for one that has a checkpoint, none for one that finished) and exit: for a "
                        "machine without Ray (e.g. | sh)")
    given_runs.add_argument("--collect", action="store_true",
                   help="write ablation.csv/png from the run folders those commands made in --output-dir")
    p.add_argument("--rows", nargs="+", action="extend", metavar="ROW", help="with --commands: only these rows (names as in "
                                                             "ablation.csv, e.g. ufldl_width_1000)")
    p.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs each trial reserves (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs each trial reserves (default 0)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument("--address", help="join this running Ray cluster instead of starting one")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    scale = args.scale or "full"
    rows, output_dir = rows_for(SCALES[scale]), args.output_dir.resolve()
    problem = _without_ray_problem(args, rows, output_dir) or _compare_problem(args.compare)
    if problem:
        print(f"sda-ablation: error: {problem}", file=sys.stderr)
        return 2
    if args.commands:
        try:
            commands = trial_commands(scale, output_dir, args.rows)
        except TrialFolderError as exc:
            print(f"sda-ablation: error: {exc}", file=sys.stderr)
            return 2
        if commands:
            print("\n".join(commands))
        else:
            which = "the rows asked for" if args.rows else "the ablation"
            print(f"sda-ablation: every trial of {which} in {output_dir} has finished: python -m sda.ablation "
                  f"--collect --output-dir {shlex.quote(str(output_dir))}" + _scale_flag(scale),
                  file=sys.stderr)
        return 0
    if args.collect:
        if not any(output_dir.glob("*_s*/")):
            print(f"sda-ablation: error: no run folders (<row>_s<seed>) in {output_dir} to collect", file=sys.stderr)
            return 2
        sweep = parse_sweep(ablation_toml(scale))
        _print_table(write_ablation(output_dir, collect_runs(output_dir, rows, sweep), rows, _compared(args, scale)), output_dir)
        return 0
    try:
        sweep = parse_sweep(ablation_toml(scale), f"the {scale} ablation")
        if args.max_concurrent is not None and args.max_concurrent < 1:
            raise SweepError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
        status = run_sweep(sweep, args.output_dir, resume=args.resume, address=args.address,
                           cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                           max_concurrent=args.max_concurrent)
    except (SweepConfigError, SweepError, DataError) as exc:
        print(f"sda-ablation: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if (output_dir / "results.csv").is_file():
        _print_table(write_ablation(output_dir, ablation_rows(output_dir / "results.csv", rows), rows, _compared(args, scale)),
                     output_dir)
    return status


def _without_ray_problem(args, rows: list[Row], output_dir: Path) -> str | None:
    """What is wrong with the options of ``--commands`` / ``--collect`` (None: nothing)."""
    if args.rows is not None:
        unknown = [name for name in args.rows if name not in {row.name for row in rows}]
        if unknown:
            return (f"unknown rows {', '.join(map(repr, unknown))} (the rows: {', '.join(row.name for row in rows)})")
        if not args.commands:
            return "--rows goes with --commands"
    if args.commands or args.collect:
        ray_only = [flag for flag, given in (("--resume", args.resume), ("--address", args.address),
                                             ("--max-concurrent", args.max_concurrent is not None),
                                             ("--cpus-per-trial", args.cpus_per_trial != 1),
                                             ("--gpus-per-trial", args.gpus_per_trial != 0)) if given]
        if ray_only:
            return (f"{', '.join(ray_only)} belong{'s' if len(ray_only) == 1 else ''} to the run on Ray, not to "
                    f"{'--commands' if args.commands else '--collect'}")
        if output_dir.exists() and not output_dir.is_dir():
            return f"{output_dir} is not a folder"
        if args.collect and not output_dir.is_dir():
            return f"no run folders (<row>_s<seed>) in {output_dir} to collect"
    return None


def _scale_flag(scale: str) -> str:
    """The flag that names ``scale`` on this command line ("" for the default)."""
    return {"full": "", "long": " --scale long"}.get(scale, f" --{scale}")


def _compare_problem(compare: Path | None) -> str | None:
    if compare is not None and not (compare / "ablation.csv").is_file():
        return f"--compare {compare}: no ablation.csv there (collect that ablation first)"
    return None


def _compared(args, scale: str):
    """``(this ablation's label, the other's, its table)`` for ``--compare``, or None."""
    if args.compare is None:
        return None
    return f"scale {scale}", str(args.compare), read_ablation_csv(args.compare / "ablation.csv")


def _print_table(lines: list[str], output_dir: Path) -> None:
    print("\n".join(lines))
    print(f"ablation: {output_dir / 'ablation.csv'}, {output_dir / 'ablation.png'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
