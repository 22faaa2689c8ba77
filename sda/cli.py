"""Command line of ``python -m sda.SdA`` (and ``sda-train``): flags -> a configuration -> a run.

The configuration is a plain dictionary: a preset of :data:`sda.run.PRESETS`, overridden by
the flags that were given.  Everything else is :func:`sda.run.train_SdA`'s work; this module
only turns flags into its arguments, and errors into one line and an exit status.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytensor

from sda.checkpoint import load_checkpoint
from sda.config import PRESET_DATA, preset_with
from sda.data import DEFAULT_DATA_DIR, VALID_SIZE, DataError, class_count, load_mnist
from sda.execution import limit_threads
from sda.loggers import LOGGERS, EpochFeed, LoggerError, open_loggers
from sda.modes import DEVICES, MODES, ModeError, describe_mode, resolve_mode, use_device
from sda.own_data import evaluation_examples, load_split
from sda.persistence import load_model_and_scaler
from sda.hyperparameters import HYPERPARAMETERS, MODEL, STOPPING, TRAINING, UFLDL, Values, flags
from sda.run import (PRESETS, TUTORIAL, RunError, preset_settings, preset_summary, run_phases, train_SdA,
                     validate_config)
from sda.run_record import epoch_records
from sda.training import DivergenceError
from sda.utils import format_duration
from sda.version import __version__

__all__ = ["build_parser", "config_from_args", "main", "FLAGS", "OneLineParser", "join_negative_numbers"]

DEFAULT_PRESET = "tutorial"

#: The flag of each configuration key, for messages.
FLAGS = flags()

log = logging.getLogger("sda")


def program_name(argv0: str | None = None) -> str:
    """How the user called us, for ``usage:``: ``sda-train`` through the installed command,
    else ``python -m sda.SdA`` (also for ``python -m sda`` and ``python sda/SdA.py``)."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return name if name and not name.endswith(".py") and name not in ("-c", "-m") else "python -m sda.SdA"


def presets_text() -> str:
    """Each preset, what it is for, how long it takes and what it sets (``--list-presets``)."""
    lines = ["presets (each sets every hyperparameter; flags override it):"]
    for name in PRESETS:
        lines.append("  " + preset_summary(name))
        lines += textwrap.wrap(preset_settings(name, FLAGS), 100, initial_indent=" " * 4, subsequent_indent=" " * 4,
                               break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog or program_name(),
        description="Pretrain a stacked denoising autoencoder layer by layer, fine-tune it with "
                    "early stopping, and report the validation and test error.",
        epilog=presets_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"sda {__version__}")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"starting values for every hyperparameter (default {DEFAULT_PRESET}; "
                        f"see the list below)")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    groups = {MODEL: p.add_argument_group("model"), TRAINING: p.add_argument_group("training"),
              UFLDL: p.add_argument_group("UFLDL's stacked sparse autoencoder (--preset ufldl) and the ablation"),
              STOPPING: p.add_argument_group("early stopping")}
    for h in HYPERPARAMETERS:
        groups[h.group].add_argument(h.cli_flag, dest=h.name, help=f"{h.help} (tutorial: {_shown(h.default)})",
                                     **_argparse_options(h.values))
    g = groups[STOPPING]
    g.add_argument("--batch-size", type=int, help="set both batch sizes")
    g = p.add_argument_group("data and output")
    g.add_argument("--data-dir", type=Path,
                   help="folder with the four MNIST-format IDX files, gzipped or not "
                        "(default: the repository's data/mnist)")
    g.add_argument("--data", type=Path, metavar="FILE",
                   help="your own data instead: an .npz file with arrays X (n, d), y (integer labels) and "
                        "optionally X_test, y_test; or a .csv file with a header row, numeric features and a "
                        "label column. Features are scaled onto [0, 1] unless they lie there already")
    g.add_argument("--label-column", metavar="NAME",
                   help="the column of a --data .csv file that holds the labels 0 .. k-1 (default: the last)")
    g.add_argument("--no-shuffle", dest="shuffle", action="store_false", default=None,
                   help="split a --data file as it is ordered (validation: its last rows) instead of "
                        "shuffling its rows, stratified by label with --seed, first")
    g.add_argument("--valid-size", type=int,
                   help=f"validation = the last this many training images (default {VALID_SIZE}; 0: none, all "
                        f"train and the last model is kept, --keep-model last; "
                        f"for --data this many of its rows, by default a sixth, at most {VALID_SIZE})")
    g.add_argument("--train-size", type=int, metavar="N",
                   help="train on the first N training images only (default: all)")
    g.add_argument("--no-verify", dest="verify", action="store_false", default=None,
                   help="skip the MNIST sha256 check (for Fashion-MNIST or your own data)")
    g.add_argument("--download", action="store_true", help="download missing MNIST files first")
    g.add_argument("--output-dir", type=Path,
                   help="where results.json, checkpoint.safetensors and best_model.safetensors go "
                        "(default runs/sda-<date>-<time>); it must not hold another run")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output-dir (its checkpoint, model, results, pictures)")
    g.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run whose output directory is DIR from its last checkpoint, with "
                        "its configuration and data (flags that contradict them are refused)")
    g.add_argument("--evaluate", type=Path, metavar="MODEL",
                   help="do not train: print the test error of a saved model (e.g. best_model.safetensors)")
    g = p.add_argument_group("execution")
    g.add_argument("--mode", default="auto", type=str.upper, choices=["AUTO", *MODES],
                   help="PyTensor compile mode (default: the fastest available)")
    g.add_argument("--device", choices=DEVICES,
                   help="cpu: never a GPU; gpu: JAX on a GPU, or an error if jax sees none "
                        "(default: a GPU when jax sees one)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="use N CPU cores (BLAS, OpenMP, numba and XLA; see the README)")
    g.add_argument("--steps-per-call", type=int,
                   help="minibatches per compiled call, a scan loop (default: 250 under JAX, else 1)")
    g.add_argument("--log-to", nargs="+", choices=LOGGERS, default=[], metavar="{" + ",".join(LOGGERS) + "}",
                   help="also send every epoch's record to TensorBoard (<output dir>/tensorboard) and/or "
                        "MLflow (its default local store); extras [tensorboard], [mlflow]")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    g.add_argument("--no-pictures", dest="pictures", action="store_false",
                   help="do not write the filter, reconstruction and learning-curve PNGs")
    return p


def _argparse_options(values: Values) -> dict:
    """How argparse reads a value of this kind: a name of its options, an integer or a number;
    several of them where there is one per layer."""
    options: dict = {"type": int if values.integer else float}
    if values.options:
        options = {"choices": values.options, "metavar": "{" + ",".join(values.options) + "}"}
    else:
        options["metavar"] = "N" if values.integer else "X"
    return {**options, "nargs": "+"} if values.per_layer else options


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


_NEGATIVE_NUMBER = re.compile(r"-(inf(inity)?|nan|\d.*|\.\d.*)", re.IGNORECASE)


def join_negative_numbers(argv: list[str]) -> list[str]:
    """``--flag -inf`` -> ``--flag=-inf``: argparse takes ``-inf`` or ``-1e5`` for an option name,
    and would answer "expected one argument" instead of checking the value."""
    joined: list[str] = []
    for arg in argv:
        if joined and _NEGATIVE_NUMBER.fullmatch(arg) and joined[-1].startswith("--") and "=" not in joined[-1]:
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def given_config(args: argparse.Namespace) -> dict:
    """The configuration keys set by flags on this command line."""
    given = {key: getattr(args, key) for key in TUTORIAL if getattr(args, key, None) is not None}
    for h in HYPERPARAMETERS:  # one value (a name, a noise level) serves every layer
        if h.values.one_for_all and len(given.get(h.name, ())) == 1:
            given[h.name] = given[h.name][0]
    if args.batch_size is not None:
        both = [FLAGS[key] for key in ("pretrain_batch_size", "finetune_batch_size") if key in given]
        if both:  # one of them would be dropped without a word
            raise ValueError(f"give --batch-size (both batch sizes) or {' and '.join(both)}, not both")
        given["pretrain_batch_size"] = given["finetune_batch_size"] = args.batch_size
    return given


def config_from_args(args: argparse.Namespace) -> dict:
    """The run's configuration: the preset, overridden by the flags that were given."""
    return preset_with(args.preset or DEFAULT_PRESET, given_config(args))


def _data_source(args: argparse.Namespace, saved: dict | None) -> dict:
    """Where the data come from: the flags, else (on resume) what the checkpoint recorded, else
    the defaults.  ``valid_size`` None is the default of the kind of data (see :func:`load_split`)."""
    saved = saved or {}
    if args.data is not None and args.data_dir is not None:
        raise ValueError("give --data (an .npz file) or --data-dir (IDX files), not both")
    if args.data is not None and args.download:
        raise ValueError("--download fetches MNIST; it does not go with --data")
    given = lambda value, key, default: value if value is not None else saved.get(key, default)
    data_file = args.data if args.data is not None else None if args.data_dir is not None else saved.get("data_file")
    if data_file is None and (args.shuffle is not None or args.label_column is not None):
        raise ValueError(f"{'--no-shuffle' if args.shuffle is not None else '--label-column'} goes with --data; "
                         f"MNIST keeps the tutorial's split")
    return {"data_file": None if data_file is None else str(data_file),
            "data_dir": None if data_file else str(given(args.data_dir, "data_dir", DEFAULT_DATA_DIR)),
            # a preset's data (ufldl_published: no validation set) are MNIST's
            "valid_size": given(args.valid_size, "valid_size", None if data_file else
                                PRESET_DATA.get(getattr(args, "preset", None) or "", {}).get("valid_size")),
            "train_size": given(args.train_size, "train_size", None),
            "verify": given(args.verify, "verify", True),
            # a run recorded before rows were shuffled did not shuffle them
            "shuffle": bool(data_file) and given(args.shuffle, "shuffle", not saved),
            "label_column": given(args.label_column, "label_column", None)}


def _announce_preset(args: argparse.Namespace) -> None:
    """Say before a run which preset it runs and what that is (the default one, the tutorial's, takes hours)."""
    name = args.preset or DEFAULT_PRESET
    line = f"preset {preset_summary(name)}" + (" (flags change some of its values)" if given_config(args) else "")
    if args.preset is None:
        line += "; for a first look: --preset quick (all presets: --list-presets)"
    log.info(line)


def train(args: argparse.Namespace) -> None:
    """Train as the flags say; print one summary line."""
    already_logged = 0
    names = FLAGS if args.batch_size is None else {**FLAGS, "pretrain_batch_size": "--batch-size",
                                                   "finetune_batch_size": "--batch-size"}
    if args.resume is not None:
        if args.preset is not None or (args.output_dir is not None and args.output_dir != args.resume):
            raise RunError("--resume continues a run as it was: give no --preset or --output-dir with it")
        checkpoint_path = args.resume / "checkpoint.safetensors"
        if not checkpoint_path.is_file():
            if (args.resume / "checkpoint.npz").is_file():  # sda 0.3's run: refused, naming its format
                load_checkpoint(args.resume / "checkpoint.npz")
            raise RunError(f"no checkpoint to resume from: {checkpoint_path} does not exist")
        saved = load_checkpoint(checkpoint_path)
        config, source, output_dir = given_config(args), _data_source(args, saved.data_source), args.resume
        try:  # checked before it sizes anything (run_phases below), as train_SdA checks it again
            saved_config = validate_config(saved.config)  # all its keys: a run writes them all
        except (TypeError, ValueError) as exc:
            raise RunError(f"{checkpoint_path}: damaged or edited configuration ({exc})") from None
        full_config = validate_config({**saved_config, **config}, names)
        already_logged = len(epoch_records(saved.pretrain, saved.fit))
        if args.mode == "AUTO" and saved.execution:  # the mode it ran in: the same noise, the same numbers
            args.mode = saved.execution.get("mode", "AUTO")
    else:
        config = full_config = validate_config(config_from_args(args), names)
        source = _data_source(args, None)
        output_dir = args.output_dir or Path("runs") / datetime.datetime.now().strftime("sda-%Y%m%d-%H%M%S")
        _announce_preset(args)
    args.output_dir = output_dir  # for the messages of a run that stops
    if args.steps_per_call is not None and args.steps_per_call < 1:
        raise ValueError(f"--steps-per-call must be >= 1, got {args.steps_per_call}")
    datasets, scaler, image_shape = load_split(source, download=args.download, seed=full_config["seed"])
    if args.resume is None and args.n_outs is None:  # as many outputs as the labels have classes
        labels = [pair[1].get_value(borrow=True) for pair in datasets if pair is not None]
        config["n_outs"] = class_count(*labels)
        full_config = validate_config({**full_config, "n_outs": config["n_outs"]}, names)
        log.info("%d classes (labels 0 .. %d): --n-outs %d", config["n_outs"], config["n_outs"] - 1, config["n_outs"])
    n_train, n_ins = datasets[0][0].get_value(borrow=True).shape
    mode = resolve_mode(args.mode, phases=run_phases(n_train, n_ins, full_config))
    log.info("%s; pytensor %s; data %s; output %s", describe_mode(mode), pytensor.__version__,
             source["data_file"] or source["data_dir"], output_dir)
    feed = EpochFeed(open_loggers(args.log_to, output_dir), full_config, already_logged)
    try:
        run = train_SdA(datasets, output_dir=output_dir, resume=args.resume is not None, overwrite=args.overwrite,
                        mode=mode, steps_per_call=args.steps_per_call, progress=not args.quiet,
                        log=None if args.quiet else log.info, pictures=args.pictures, data_source=source,
                        on_epoch_end=feed if feed.loggers else None, names=names, scaler=scaler,
                        image_shape=image_shape, **config)
    except BaseException:
        feed.close(failed=True)
        raise
    feed.close()
    print(_summary(run.results, output_dir))


def _summary(results: dict, output_dir) -> str:
    """The last line of a run: its errors, and where the time went."""
    pretrain, finetune = results["pretraining"], results["finetuning"]
    test = finetune["test_error"]
    unit = "L-BFGS iteration" if results["config"]["optimizer"] == "lbfgs" else "epoch"
    kept = ("best validation error", "at that point") if results["config"]["keep_model"] == "best" else (
        "last model's validation error", "of the last model")
    return ((f"{kept[0]} {finetune['best_validation_error']:.2%}, " if finetune["best_validation_error"] is not None
             else "no validation set, ")
            + (f"test error {kept[1]} {test:.2%}" if test is not None else "no test set") + "; "
            f"compiling {format_duration(results['compile_seconds'])}, "
            f"pretraining {format_duration(pretrain['seconds'])}, "
            f"fine-tuning {format_duration(finetune['seconds'])} ({finetune['epochs']} {unit}"
            f"{'' if finetune['epochs'] == 1 else 's'}); "
            f"results in {Path(output_dir) / 'results.json'}")


def evaluate(args: argparse.Namespace) -> float:
    """Print and return the test error of the saved model ``args.evaluate``: on MNIST's test set,
    an .npz file's test arrays or all the rows of a .csv file, scaled as the model's training data were."""
    model, header, scaler = load_model_and_scaler(args.evaluate)
    if header["class"] != "SdA":
        raise ValueError(f"--evaluate needs an SdA model file, {args.evaluate} holds a {header['class']}")
    source = _data_source(args, None)
    where = source["data_file"] or source["data_dir"]
    if source["data_file"]:
        examples, labels = evaluation_examples(source["data_file"], source["label_column"])
    else:  # only the test set is scored: any validation size does, and 1 fits every dataset
        # MNIST always has its test set
        examples, labels = load_mnist(source["data_dir"], n_valid=1, verify=source["verify"]).test  # type: ignore[misc]
    if examples.shape[1] != model.n_ins:
        raise ValueError(f"{args.evaluate} takes {model.n_ins} inputs, but the examples in {where} have "
                         f"{examples.shape[1]} features: give the data it was trained on (--data-dir or --data)")
    if labels.max() >= model.n_outs:
        raise ValueError(f"{args.evaluate} knows {model.n_outs} classes, the test labels go up to {labels.max()}")
    predictions = model.predict_function(resolve_mode(args.mode))(scaler(examples))
    error = float(np.mean(predictions != labels))
    print(f"{args.evaluate}: test error {error:.2%} on {len(labels)} examples")
    return error


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors in one line (its default prints the whole usage first), begun with
    ``error_name`` (the command's name, as its other errors are)."""

    def __init__(self, *args, error_name: str = "sda", **kwargs):
        super().__init__(*args, **kwargs)
        self.error_name = error_name

    def error(self, message):
        self.exit(2, f"{self.error_name}: error: {message} (see --help)\n")


class _StdoutHandler(logging.StreamHandler):
    """Writes each message to ``sys.stdout`` as it is then: a notebook or a test may have
    replaced it since the first run of the process added this handler."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler sets it once; the current sys.stdout is always used
        pass


def main(argv=None, prog: str | None = None) -> int:
    """Entry point; returns the exit status: 0 done, 2 bad arguments, data or files, 1 divergence,
    130 interrupted (Ctrl-C)."""
    parser = build_parser(prog)
    args = parser.parse_args(join_negative_numbers(sys.argv[1:] if argv is None else list(argv)))
    if args.list_presets:
        print(presets_text())
        return 0
    if not log.handlers:  # our messages only: PyTensor's own logging stays as the user set it
        log.addHandler(_StdoutHandler())
        log.propagate = False
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    with pytensor.config.change_flags(floatX="float32"):
        try:
            if args.threads is not None:
                limit_threads(args.threads)
            use_device(args.device)
            if args.evaluate is not None:
                evaluate(args)
            else:
                train(args)
        except DivergenceError as exc:
            print(f"sda: training diverged: {exc}; {_what_was_kept(args.resume or args.output_dir)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            directory = args.resume or args.output_dir
            kept = _what_was_kept(directory)
            resume = f"; continue with --resume {shlex.quote(str(directory))}" if kept != "nothing was saved" else ""
            print(f"sda: interrupted; {kept}{resume}", file=sys.stderr)
            return 130
        except (DataError, ModeError, LoggerError, ValueError, TypeError, OSError, MemoryError) as exc:
            print(f"sda: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        finally:
            use_device(None)
    return 0


def _what_was_kept(directory) -> str:
    """What a stopped run leaves for the user, said truly."""
    files = [name for name in ("checkpoint.safetensors", "best_model.safetensors")
             if directory is not None and (Path(directory) / name).is_file()]
    if not files:
        return "nothing was saved"
    # "saved", not "last": an L-BFGS run saves at most every 30 s, not at every iteration
    return f"{' and '.join(files)} {'is' if len(files) == 1 else 'are'} kept in {directory}, as of the last epoch saved"


def _one_line(exc: Exception) -> str:
    """The exception's message on one line (an OSError's with its file name)."""
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'the network or data do not fit'}): choose smaller layers or data"
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
