"""Sweeps and many seeds on Ray Tune: ``python -m sda.sweep --config FILE.toml --output-dir DIR``.

The file (format in :mod:`sda.sweep_config`) names a preset, fixed overrides, the data (MNIST, or
a file of one's own as ``--data`` takes, :mod:`sda.sweep_data`), what to
search (grids, random ranges, depth × units) and how many seeds; every configuration runs with
every seed, each trial through :func:`sda.run.train_SdA`, the one run of this package.  Ray Tune
schedules the trials (several at once, on one machine or a cluster, on CPUs or GPUs), and an
optional ASHA scheduler stops the trials whose validation error lags at a rung.

``DIR`` receives:

* ``sweep.toml``: the configuration file as it was given (what ``--resume`` continues);
* ``data.json``: the trials' data as each trial's ``results.json`` records them (MNIST's folder,
  or ``data = FILE``'s absolute path, split and label column), and the folder of the sweep file,
  where a relative ``data = FILE`` lies;
* ``trials/<trial>/``: each trial's own sda output folder (``results.json``, ``checkpoint.safetensors``,
  ``best_model.safetensors``, ``metrics.jsonl``), with ``trial.json`` (its configuration number, seed
  and the id of the Ray node it ran on)
  and, when it did not finish, ``failure.json`` (the one-line reason it failed) or
  ``stopped.json`` (the scheduler stopped it early);
* ``ray/``: Tune's own experiment storage, from which ``Tuner.restore`` resumes;
* ``results.csv``, ``summary.csv``, ``results.png`` (:mod:`sda.sweep_report`).

Without ``--address`` the sweep starts a Ray of its own, whatever clusters the machine knows
of, and every port it opens is on the loopback address: nothing is reachable from the network.
With ``--address`` it joins that cluster, first checking that every node sees ``DIR`` as this
machine does (a shared file system).

It prints a line per finished trial and, at the end, the best configuration by mean validation
error with the ``python -m sda.SdA`` command that reruns it.

Interrupting (Ctrl-C) lets Ray stop the trials and save the experiment's state; ``--resume``
continues it: finished, stopped and failed trials are kept as they are, an unfinished trial
continues from its last sda checkpoint (``train_SdA(..., resume=True)``), and trials not yet
started start.  Each trial reports its validation error after every fine-tuning epoch
(``ray.tune.report``); a trial that diverges or fails is
recorded as failed with its message, and the others go on.

Exit status: 0 when the sweep ran to the end (whatever its trials' fates), 2 for a bad
configuration file, data or output folder (one line on stderr, before Ray starts), 130 when
interrupted.  Trials compute in float32, as the command line does, so that a trial and the
command printed for it give the same numbers in the same mode.
"""

from __future__ import annotations

if __name__ == "__main__":  # python -m sda.sweep: PyTensor's environment is checked before it loads below
    from sda.environment import exit_if_pytensor_cannot_start

    exit_if_pytensor_cannot_start("sda-sweep")

import argparse
import contextlib
import os
import sys
from pathlib import Path

import pytensor

from sda.cli import OneLineParser
from sda.data import DataError, class_count, load_mnist
from sda.datasets import shared_dataset
from sda.own_data import load_own_data, load_split
from sda.ray_session import (SweepError, check_shared_folder, import_ray, ray_module, shut_down_ray_on_error,
                              start_ray, tune_module)
from sda.resources import shipped_sweeps, sweep_path
from sda.run import train_SdA
from sda.sweep_config import MAX_TRIALS, Sweep, SweepConfigError, parse_sweep, read_sweep, validate_trials
from sda.sweep_outcomes import (FAILURE_FILE, STOPPED_FILE, TRIAL_FILE, collect_rows, describe, one_line, outcome_line,
                                run_seconds, trial_outcome)
from sda.sweep_report import best_line, plot_results, summarise, write_results, write_summary
from sda.training import DivergenceError
from sda.utils import atomic_write, read_json, write_json

__all__ = ["main", "run_sweep", "run_trial", "load_sweep_data", "collect_rows"]

EXPERIMENT = "sweep"  # Tune's experiment name under DIR/ray
SWEEP_FILE = "sweep.toml"
DATA_FILE = "data.json"  # the trials' data, and the folder a relative data = FILE of sweep.toml was in
INTERRUPTED = 130


# ---------------------------------------------------------------- data


def load_sweep_data(sweep: Sweep) -> list | None:
    """MNIST's data as numpy arrays ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``,
    the training set cut to its first ``train_size`` images when the file asks; loaded once,
    here, and shipped to the trials by Ray (so that a cluster's nodes need no copy of the folder).

    A file of one's own (``data = FILE``) is loaded here once only to check it (it reads, splits
    and has labels 0 .. k-1; a bad one is a :class:`~sda.data.DataError`, before Ray starts), and
    None is returned: each trial loads it as the command line does (:func:`sda.own_data.load_split`),
    since its rows are shuffled with the trial's seed.  As on the command line, the trials then
    have as many outputs as the labels have classes, unless the file sets ``n_outs``."""
    data = sweep.data
    if data["data_file"] is not None:
        own = load_own_data(data["data_file"], data["valid_size"], data["train_size"], data["shuffle"],
                            sweep.seeds[0], data["label_column"])
        split, datasets = own.split, None
        if "n_outs" not in sweep.given:
            sweep.base["n_outs"] = class_count(*(pair[1] for pair in split if pair is not None))
            validate_trials(sweep)
    else:
        split = load_mnist(data["data_dir"], n_valid=data["valid_size"], verify=data["verify"])
        if data["train_size"] is not None and data["train_size"] > len(split.train[1]):
            raise SweepConfigError(f"data.train_size is {data['train_size']}, more than the {len(split.train[1])} "
                                   f"training images (after the last {data['valid_size']} went to validation)")
        split = split.with_train_size(data["train_size"])
        datasets = [split.train, split.valid, split.test]
    n_train = len(split.train[1])
    for configuration in sweep.configurations:
        config = sweep.trial_config(configuration, sweep.seeds[0])
        for key in ("pretrain_batch_size", "finetune_batch_size"):
            if config[key] > n_train:
                raise SweepConfigError(f"{key} is {config[key]}, more than the {n_train} training examples")
    return datasets


# ---------------------------------------------------------------- one trial


def _trial_name(trial) -> str:
    """Tune's name and folder name of a trial, also its sda folder's name under DIR/trials."""
    return f"trial_{trial.trial_id}"


def _share_gpu_memory(gpus_per_trial: float) -> None:
    """JAX takes 75 % of a GPU's memory when it starts; trials sharing a GPU take their share."""
    if 0 < gpus_per_trial < 1:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus_per_trial:.3f}")


def _report(epoch: int, validation_error: float, best_validation_error: float, test_error, seconds: float) -> None:
    """What a trial tells Tune after each fine-tuning epoch: the scheduler judges
    ``validation_error`` at each ``epoch``; the rest is for the results table."""
    tune_module().report({"epoch": epoch, "validation_error": validation_error,
                      "best_validation_error": best_validation_error, "test_error": test_error, "seconds": seconds})


def _report_epoch(pretrain, state) -> None:
    """``on_epoch_end`` of a trial: each fine-tuning epoch goes to Tune (pretraining epochs do
    not: they have no validation error)."""
    if state is None:
        return
    record = state.history[-1]
    validation = record["validation_error"] if record["validation_error"] is not None else state.best_loss
    _report(state.epoch, validation, state.best_loss, state.test_error, sum(pretrain.seconds) + state.seconds)


def _report_finished(results: dict) -> None:
    """A trial whose run had already ended (before an interruption) reports its final numbers."""
    finetuning = results["finetuning"]
    _report(finetuning["epochs"], finetuning["best_validation_error"], finetuning["best_validation_error"],
            finetuning["test_error"], run_seconds(results))


def run_trial(tune_config: dict, *, sweep: Sweep, trials_dir: str, datasets, mode, steps_per_call,
              gpus_per_trial: float = 0) -> None:
    """One trial, in a Ray worker: ``train_SdA`` in ``trials_dir/<trial>``, resumed from its
    checkpoint when an earlier attempt left one; a divergence or a bad value is recorded in
    ``failure.json`` (the trial then ends normally, so that Tune keeps it as done)."""
    folder = Path(trials_dir) / tune_module().get_context().get_trial_name()
    if (folder / FAILURE_FILE).is_file():
        return
    if (folder / "results.json").is_file():
        _report_finished(read_json(folder / "results.json"))
        return
    _share_gpu_memory(gpus_per_trial)
    write_json(folder / TRIAL_FILE, {"configuration": tune_config["configuration"]["number"],
                                     "seed": tune_config["seed"],
                                     "node": ray_module().get_runtime_context().get_node_id()})
    config = sweep.trial_config(tune_config["configuration"]["values"], tune_config["seed"])
    resume = (folder / "checkpoint.safetensors").is_file()
    try:
        with pytensor.config.change_flags(floatX="float32"):
            if datasets is None:  # a file of one's own, split with this trial's seed as the command line splits it
                source = dict(sweep.data)
                shared, scaler, image_shape = load_split(source, seed=config["seed"])
            else:
                source, scaler, image_shape = sweep.data, None, ...
                shared = [shared_dataset(pair, name=name) for pair, name in zip(datasets, ("train", "valid", "test"))]
            train_SdA(shared, output_dir=folder, resume=resume, overwrite=not resume, mode=mode,
                      steps_per_call=steps_per_call, progress=False, log=None, pictures=False,
                      data_source=source, on_epoch_end=_report_epoch, scaler=scaler, image_shape=image_shape,
                      **config)
    except DivergenceError as exc:
        _record_failure(folder, f"training diverged: {exc}")
    except DataError as exc:  # a file of one's own changed since the sweep checked it
        _record_failure(folder, f"data: {exc}")
    except (ValueError, TypeError, OSError) as exc:
        _record_failure(folder, f"{type(exc).__name__}: {exc}")


def _record_failure(folder: Path, message: str) -> None:
    """``failure.json`` in the trial's folder, and the message as the trial's last result."""
    message = one_line(message)
    write_json(folder / FAILURE_FILE, {"message": message})
    tune_module().report({"failure": message})


# ---------------------------------------------------------------- trial lines


def _trial_lines(trials_dir: str):
    """Tune's callback that prints a line as each trial ends, and marks the trials the scheduler
    stopped early (``stopped.json``), which Tune's results do not tell apart from finished ones."""

    class TrialLines(tune_module().Callback):  # type: ignore[misc]  # Tune is imported when a sweep runs
        def on_trial_complete(self, iteration, trials, trial, **info):
            folder = Path(trials_dir) / str(trial)
            done = any((folder / name).is_file() for name in ("results.json", FAILURE_FILE))
            if not done and trial.last_result.get("epoch") is not None:
                write_json(folder / STOPPED_FILE, {"message": f"stopped by the scheduler after epoch "
                                                              f"{trial.last_result['epoch']}"})
            self._print(trial, trial.last_result)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._print(trial, trial.last_result, trial.get_error())

        def _print(self, trial, metrics, error=None):
            outcome = trial_outcome(Path(trials_dir) / str(trial), metrics, error)
            print(outcome_line(str(trial), describe(trial.config), outcome), flush=True)

    return TrialLines()


# ---------------------------------------------------------------- the sweep


def _param_space(sweep: Sweep) -> dict:
    """Tune's grid: the configurations (numbered, their swept values as given) × the seeds."""
    tune = tune_module()
    return {"configuration": tune.grid_search([{"number": i, "values": values}
                                               for i, values in enumerate(sweep.configurations)]),
            "seed": tune.grid_search(sweep.seeds)}


def _scheduler(sweep: Sweep):
    if sweep.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # stop_last_trials=False: a trial that reaches max_t ends by itself, writing its results.json
    return ASHAScheduler(time_attr="epoch", metric="validation_error", mode="min", max_t=sweep.scheduler["max_t"],
                         grace_period=sweep.scheduler["grace_period"],
                         reduction_factor=sweep.scheduler["reduction_factor"], stop_last_trials=False)


def run_sweep(sweep: Sweep, output_dir, *, resume: bool = False, address: str | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, max_concurrent: int | None = None) -> int:
    """Run (or continue) the sweep into ``output_dir``; returns the exit status (0, or 130 when
    interrupted).  Everything that can be checked is checked before Ray starts, and a sweep
    refused before then leaves the folder as it found it."""
    output_dir = Path(output_dir).resolve()
    import_ray(local=not address)
    _check_output_dir(output_dir, sweep, resume)
    datasets = load_sweep_data(sweep)
    print(f"sweep: {len(sweep.configurations)} configurations × {len(sweep.seeds)} seeds = {sweep.n_trials} trials; "
          f"data {sweep.data['data_file'] or sweep.data['data_dir']}; output {output_dir}", flush=True)
    with _claimed(output_dir, sweep, resume):
        start_ray(address)
        if address:
            with shut_down_ray_on_error():
                check_shared_folder(output_dir, SWEEP_FILE)
    tune = tune_module()
    try:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, sweep=sweep, trials_dir=str(output_dir / "trials"), datasets=datasets,
                                 mode=sweep.run["mode"], steps_per_call=sweep.run["steps_per_call"],
                                 gpus_per_trial=gpus_per_trial),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        result_grid = _tuner(sweep, output_dir, trainable, resume, max_concurrent).fit()
    except KeyboardInterrupt:  # a second Ctrl-C, while Ray was saving its state
        _print_resume(output_dir)
        return INTERRUPTED
    finally:
        ray_module().shutdown()
    return _finish(sweep, output_dir, result_grid)


def _tuner(sweep: Sweep, output_dir: Path, trainable, resume: bool, max_concurrent: int | None):
    """Tune's tuner: the grid of configurations × seeds stored under DIR/ray, or that one restored."""
    tune = tune_module()
    storage = output_dir / "ray"
    if resume:
        return tune.Tuner.restore(str(storage / EXPERIMENT), trainable, resume_unfinished=True, resume_errored=False)
    # reuse_actors: a worker process trains trial after trial, sparing a Python start and imports each
    tune_config = tune.TuneConfig(scheduler=_scheduler(sweep), max_concurrent_trials=max_concurrent,
                                  reuse_actors=True, trial_name_creator=_trial_name,
                                  trial_dirname_creator=_trial_name)
    # verbose=0: Tune's tables would bury the one line per trial printed here
    run_config = tune.RunConfig(name=EXPERIMENT, storage_path=str(storage), verbose=0,
                                callbacks=[_trial_lines(str(output_dir / "trials"))])
    return tune.Tuner(trainable, param_space=_param_space(sweep), tune_config=tune_config, run_config=run_config)


def _finish(sweep: Sweep, output_dir: Path, result_grid) -> int:
    """Write the three result files, print the best configuration (and, after an interruption,
    how to continue)."""
    rows = collect_rows(sweep, result_grid, output_dir / "trials")
    summary = summarise(sweep, rows)
    write_results(output_dir / "results.csv", sweep, rows)
    write_summary(output_dir / "summary.csv", sweep, summary)
    picture = plot_results(output_dir / "results.png", sweep, rows)
    counts = {status: sum(row["status"] == status for row in rows) for status in ("finished", "stopped", "failed")}
    print(f"sweep: {counts['finished']} finished, {counts['stopped']} stopped early, {counts['failed']} failed "
          f"of {len(rows)} trials; {output_dir / 'results.csv'}, {output_dir / 'summary.csv'}"
          + (f", {picture}" if picture else " (no results.png: pip install matplotlib)"))
    print(best_line(sweep, summary, rows), flush=True)
    if any(row["status"] == "unfinished" for row in rows):
        _print_resume(output_dir)
        return INTERRUPTED
    return 0


def _print_resume(output_dir: Path) -> None:
    print(f"sweep interrupted: continue it with python -m sda.sweep --output-dir {output_dir} --resume", flush=True)


def _check_output_dir(output_dir: Path, sweep: Sweep, resume: bool) -> None:
    """A new sweep needs a folder without one; a resumed one needs the same configuration as
    the sweep it continues."""
    saved = output_dir / SWEEP_FILE
    if resume:
        if not saved.is_file() or not tune_module().Tuner.can_restore(str(output_dir / "ray" / EXPERIMENT)):
            raise SweepError(f"no sweep to resume in {output_dir} (it lacks {SWEEP_FILE} or Ray's ray/{EXPERIMENT})")
        if parse_sweep(saved.read_text(encoding="utf-8"), str(saved), max_trials=None, folder=sweep.folder) != sweep:
            raise SweepError(f"{saved} differs from the given --config: a resumed sweep keeps its configuration "
                             f"(give no --config, or the same file)")
        return
    if output_dir.exists() and not output_dir.is_dir():
        raise SweepError(f"output directory {output_dir} is a file")
    if saved.exists() or (output_dir / "ray").exists():
        raise SweepError(f"{output_dir} already holds a sweep: continue it with --resume, "
                         f"or choose another --output-dir")


@contextlib.contextmanager
def _claimed(output_dir: Path, sweep: Sweep, resume: bool):
    """Saves ``sweep.toml`` (the file as given: what claims the folder, and what ``--resume``
    reads) for a new sweep; a sweep refused inside the block removes it again, and the folder
    too when this sweep made it, so that the same command can be given again."""
    if resume:
        yield
        return
    made = not output_dir.exists()
    try:
        atomic_write(output_dir / SWEEP_FILE, lambda f: f.write(sweep.text.encode("utf-8")))
        write_json(output_dir / DATA_FILE, {"data": sweep.data, "sweep_folder": sweep.folder})
    except OSError as exc:
        raise SweepError(f"cannot write to output directory {output_dir}: {exc.strerror}") from None
    try:
        yield
    except (SweepError, KeyboardInterrupt):
        (output_dir / SWEEP_FILE).unlink(missing_ok=True)
        (output_dir / DATA_FILE).unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):
                output_dir.rmdir()
        raise


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m sda.sweep", error_name="sda-sweep",
                      description="Run a sweep of sda trainings (grid, random search, seeds) on Ray Tune.")
    p.add_argument("--config", type=Path, help="the sweep's TOML file (see sda/sweep_config.py), or the name of "
                                               f"a shipped one ({', '.join(shipped_sweeps())}); "
                                               "with --resume, defaults to the one saved in --output-dir")
    p.add_argument("--output-dir", type=Path, required=True, help="where trials, Ray's state and results go")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --output-dir")
    p.add_argument("--address", help="join this running Ray cluster (e.g. auto, or HOST:6379 after ray start --head) "
                                     "instead of starting Ray in this process")
    p.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs each trial reserves (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0,
                   help="GPUs each trial reserves, e.g. 1, or 0.25 for four trials per GPU (default 0)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as resources allow)")
    p.add_argument("--max-trials", type=int, default=MAX_TRIALS,
                   help=f"refuse a file that asks for more trials than this (default {MAX_TRIALS})")
    return p


def _check_arguments(args: argparse.Namespace) -> Sweep:
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise SweepError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if args.max_trials < 1:
        raise SweepError(f"--max-trials must be >= 1, got {args.max_trials}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise SweepError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.config is None:
        if not args.resume:
            raise SweepError("--config FILE.toml is needed (except with --resume)")
        if not (args.output_dir / SWEEP_FILE).is_file():
            raise SweepError(f"no sweep to resume in {args.output_dir} (it lacks {SWEEP_FILE})")
        # the limit was applied when it started; a relative data = FILE lies where the file was then
        return read_sweep(args.output_dir / SWEEP_FILE, max_trials=None, folder=_sweep_folder(args.output_dir))
    return read_sweep(sweep_path(args.config), max_trials=None if args.resume else args.max_trials)


def _sweep_folder(output_dir: Path):
    """The folder the sweep in ``output_dir`` was read from (None, the output folder, when its
    ``data.json`` is missing or damaged: it then names no relative data file)."""
    try:
        folder = read_json(output_dir / DATA_FILE)["sweep_folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if isinstance(folder, str) else None


def main(argv=None) -> int:
    """Entry point of ``python -m sda.sweep`` and ``sda-sweep``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sweep = _check_arguments(args)
        return run_sweep(sweep, args.output_dir, resume=args.resume, address=args.address,
                         cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                         max_concurrent=args.max_concurrent)
    except (SweepConfigError, SweepError, DataError) as exc:
        print(f"sda-sweep: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
