"""Command line of ``python -m sda.SdA``: flags -> a plain-dict configuration -> train -> report.

Presets are plain dictionaries; a flag given on the command line overrides its preset.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import sys
import time
import warnings
from pathlib import Path

__all__ = ["PRESETS", "build_parser", "config_from_args", "main"]

#: The Deep Learning Tutorials' protocol: every hyperparameter of a run.
TUTORIAL = {
    "hidden_layers_sizes": [1000, 1000, 1000],
    "corruption_levels": [0.1, 0.2, 0.3],
    "pretraining_epochs": 15,
    "pretrain_lr": 0.001,
    "pretrain_batch_size": 1,
    "training_epochs": 1000,
    "finetune_lr": 0.1,
    "finetune_batch_size": 1,
    "finetune_momentum": 0.0,
    "finetune_lr_decay": 1.0,
    "finetune_corruption": 0.0,
    "patience_epochs": 10,
    "seed": 89677,
}

#: Presets as the tutorial's values with what each changes.  ``fast`` is the best of the
#: minibatch protocols tried in docs/RESULTS.md (it does not reach the tutorial's 1.30 %, so
#: the tutorial stays the default); ``quick`` is a first run of a minute or two.
PRESETS = {
    "tutorial": TUTORIAL,
    "fast": {**TUTORIAL, "pretraining_epochs": 5, "pretrain_lr": 0.1, "pretrain_batch_size": 100,
             "training_epochs": 40, "finetune_batch_size": 100, "finetune_momentum": 0.9,
             "finetune_lr_decay": 0.95, "patience_epochs": 100},
    "quick": {**TUTORIAL, "pretraining_epochs": 1, "pretrain_lr": 0.01, "pretrain_batch_size": 20,
              "training_epochs": 1, "finetune_batch_size": 20},
}
DEFAULT_PRESET = "tutorial"
DEFAULT_JAX_STEPS_PER_CALL = 250

log = logging.getLogger("sda")


def build_parser() -> argparse.ArgumentParser:
    from sda.data import DEFAULT_DATA_DIR
    from sda.modes import MODES

    p = argparse.ArgumentParser(
        prog="python -m sda.SdA",
        description="Pretrain a stacked denoising autoencoder layer by layer, fine-tune it with "
                    "early stopping, and report the validation and test error.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help=f"starting values for every hyperparameter (default {DEFAULT_PRESET})")
    g = p.add_argument_group("model")
    g.add_argument("--hidden-layers", dest="hidden_layers_sizes", type=int, nargs="+", metavar="N",
                   help="units per hidden layer, e.g. 1000 1000 1000")
    g.add_argument("--corruption", dest="corruption_levels", type=float, nargs="+", metavar="P",
                   help="masking probability of each layer's dA, in [0, 1)")
    g.add_argument("--seed", type=int, help="seed for weights and noise")
    g = p.add_argument_group("training")
    g.add_argument("--pretraining-epochs", type=int, help="epochs of dA training per layer (0 skips)")
    g.add_argument("--pretrain-lr", type=float, help="pretraining learning rate")
    g.add_argument("--pretrain-batch-size", type=int, help="pretraining minibatch size")
    g.add_argument("--training-epochs", type=int, help="maximum fine-tuning epochs")
    g.add_argument("--finetune-lr", type=float, help="fine-tuning learning rate")
    g.add_argument("--finetune-batch-size", type=int, help="fine-tuning minibatch size")
    g.add_argument("--finetune-momentum", type=float, help="classical momentum in [0, 1) for fine-tuning")
    g.add_argument("--finetune-lr-decay", type=float,
                   help="multiply the fine-tuning learning rate by this after every epoch")
    g.add_argument("--finetune-corruption", type=float,
                   help="masking noise on the inputs during fine-tuning, in [0, 1)")
    g.add_argument("--patience-epochs", type=float,
                   help="early stopping looks at least this many epochs ahead (tutorial: 10)")
    g.add_argument("--batch-size", type=int, help="set both batch sizes")
    g = p.add_argument_group("data and output")
    g.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder with the four MNIST-format IDX files, gzipped or not "
                        "(default: the repository's data/mnist)")
    g.add_argument("--valid-size", type=int, default=10_000,
                   help="validation = the last this many training images (default 10000)")
    g.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the MNIST sha256 check (for Fashion-MNIST or your own data)")
    g.add_argument("--download", action="store_true", help="download missing MNIST files first")
    g.add_argument("--output-dir", type=Path,
                   help="where results.json, checkpoint.npz and best_model.npz go "
                        "(default runs/sda-<date>-<time>)")
    g.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run whose output directory is DIR from its last checkpoint "
                        "(its configuration is taken from the checkpoint)")
    g.add_argument("--evaluate", type=Path, metavar="MODEL",
                   help="do not train: print the test error of a saved model (e.g. best_model.npz)")
    g = p.add_argument_group("execution")
    g.add_argument("--mode", default="auto", type=str.upper, choices=["AUTO", *MODES],
                   help="PyTensor compile mode (default: the fastest available)")
    g.add_argument("--steps-per-call", type=int,
                   help=f"minibatches per compiled call, a scan loop (default: {DEFAULT_JAX_STEPS_PER_CALL} "
                        "under JAX, else 1)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    g.add_argument("--no-pictures", dest="pictures", action="store_false",
                   help="do not write the filter, reconstruction and learning-curve PNGs")
    return p


def config_from_args(args: argparse.Namespace) -> dict:
    """The run's configuration: the preset, overridden by the flags that were given."""
    config = copy.deepcopy(PRESETS[args.preset])
    for key in config:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    if args.batch_size is not None:
        config["pretrain_batch_size"] = config["finetune_batch_size"] = args.batch_size
    return config


def validate_config(config: dict) -> None:
    """Raise ValueError/TypeError naming the first bad hyperparameter."""
    from sda.validation import check_corruption, check_layer_sizes, check_positive, check_positive_int

    sizes = check_layer_sizes("--hidden-layers", config["hidden_layers_sizes"])
    levels = config["corruption_levels"]
    if len(levels) != len(sizes):
        raise ValueError(f"--corruption needs one value per hidden layer ({len(sizes)}), got {len(levels)}")
    for level in levels:
        check_corruption("--corruption", level)
    check_positive("--pretrain-lr", config["pretrain_lr"])
    check_positive("--finetune-lr", config["finetune_lr"])
    check_positive_int("--pretraining-epochs", config["pretraining_epochs"], minimum=0)
    check_positive_int("--training-epochs", config["training_epochs"])
    check_positive_int("--pretrain-batch-size", config["pretrain_batch_size"])
    check_positive_int("--finetune-batch-size", config["finetune_batch_size"])
    if not 0 <= config["finetune_momentum"] < 1:
        raise ValueError(f"--finetune-momentum must be in [0, 1), got {config['finetune_momentum']}")
    check_positive("--finetune-lr-decay", config["finetune_lr_decay"])
    check_positive("--patience-epochs", config["patience_epochs"])
    check_corruption("--finetune-corruption", config["finetune_corruption"])


def _versions() -> dict:
    import numpy
    import pytensor

    import sda

    return {"sda": sda.__version__, "pytensor": pytensor.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0]}


def prepare(args: argparse.Namespace):
    """Everything that can be wrong before training starts: ``(config, mode, datasets)``.

    Raises ValueError, TypeError, :class:`~sda.data.DataError` or :class:`~sda.modes.ModeError`.
    """
    from sda.data import load_data, n_batches
    from sda.modes import resolve_mode
    from sda.validation import check_positive_int

    if args.resume is not None:
        from sda.checkpoint import load_checkpoint

        config = load_checkpoint(args.resume / "checkpoint.npz").config
        config = {k: v for k, v in config.items() if k in PRESETS[DEFAULT_PRESET]}
        args.output_dir = args.resume
    else:
        config = config_from_args(args)
    validate_config(config)
    mode = resolve_mode(args.mode, min(config["pretrain_batch_size"], config["finetune_batch_size"]))
    if args.steps_per_call is None:  # fused steps pay off under JAX only
        args.steps_per_call = DEFAULT_JAX_STEPS_PER_CALL if mode == "JAX" else 1
    check_positive_int("--steps-per-call", args.steps_per_call)
    datasets = load_data(args.data_dir, n_valid=args.valid_size, verify=args.verify,
                         download=args.download)
    for key in ("pretrain_batch_size", "finetune_batch_size"):
        try:
            n_batches(datasets[0][0], config[key])
        except ValueError as exc:
            raise ValueError(f"--{key.replace('_', '-')}: {exc}") from None
    return config, mode, datasets


def run(args: argparse.Namespace, config: dict, mode: str, datasets) -> dict:
    """Train, print the summary and write ``results.json``; returns the results."""
    import pytensor

    import numpy as np

    from sda.modes import device_description
    from sda.SdA import train_SdA
    from sda.utils import atomic_write, write_json

    output_dir = args.output_dir or Path("runs") / datetime.datetime.now().strftime("sda-%Y%m%d-%H%M%S")
    log.info("compile mode %s on %s; pytensor %s; data %s; output %s",
             mode, device_description(mode), pytensor.__version__, args.data_dir, output_dir)
    log.info("configuration: %s", config)

    start = time.perf_counter()
    def write_metrics(pretrain_progress, fit_state):
        lines = [{"phase": "pretraining", "layer": layer, "epoch": epoch, "cost": cost}
                 for layer, costs in enumerate(pretrain_progress.costs)
                 for epoch, cost in enumerate(costs, start=1)]
        if fit_state is not None:
            lines += [{"phase": "fine-tuning", **record} for record in fit_state.history]
        text = "".join(json.dumps(line) + "\n" for line in lines).encode()
        atomic_write(Path(output_dir) / "metrics.jsonl", lambda f: f.write(text))

    sda, pretrain, finetune = train_SdA(datasets, mode=mode, progress=not args.quiet,
                                        log=None if args.quiet else log.info,
                                        checkpoint_dir=output_dir, resume=args.resume is not None,
                                        on_epoch_end=write_metrics,
                                        steps_per_call=args.steps_per_call, **config)
    results = {
        "config": config,
        "mode": mode,
        "device": device_description(mode),
        "versions": _versions(),
        "data_dir": str(args.data_dir),
        "pretraining": {"costs": pretrain.costs, "seconds_per_layer": pretrain.seconds,
                        "seconds": sum(pretrain.seconds)},
        "finetuning": {"best_validation_error": finetune.best_validation_error,
                       "test_error": finetune.test_error, "best_iteration": finetune.best_iteration,
                       "epochs": finetune.epochs, "seconds": finetune.seconds,
                       "history": finetune.history},
        "total_seconds": time.perf_counter() - start,
    }
    write_json(Path(output_dir) / "results.json", results)
    if args.pictures:
        from sda.plots import save_run_pictures

        test_images = datasets[2][0].get_value(borrow=True)[:10]
        for path in save_run_pictures(sda, results, np.asarray(test_images), output_dir, mode=mode,
                                      log=log.info):
            log.info("wrote %s", path)
    print(f"best validation error {finetune.best_validation_error:.2%}, test error at that point "
          f"{finetune.test_error:.2%}; pretraining {sum(pretrain.seconds) / 60:.1f} min, "
          f"fine-tuning {finetune.seconds / 60:.1f} min ({finetune.epochs} epochs); "
          f"results in {output_dir / 'results.json'}")
    return results


def evaluate(args: argparse.Namespace, mode: str) -> float:
    """Print and return the test error of the saved model ``args.evaluate``."""
    import numpy as np

    from sda.data import load_mnist
    from sda.persistence import load_model

    model, header = load_model(args.evaluate)
    if header["class"] != "SdA":
        raise ValueError(f"--evaluate needs an SdA model file, {args.evaluate} holds a {header['class']}")
    test_x, test_y = load_mnist(args.data_dir, n_valid=args.valid_size, verify=args.verify).test
    predictions = model.predict_function(mode)(test_x.astype(model.logLayer.W.dtype))
    error = float(np.mean(predictions != test_y))
    print(f"{args.evaluate}: test error {error:.2%} on {len(test_y)} images")
    return error


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 for bad arguments or data, 1 for divergence)."""
    import pytensor

    from sda.data import DataError
    from sda.modes import ModeError, resolve_mode
    from sda.training import DivergenceError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not log.handlers:  # our messages only: PyTensor's own logging stays as the user set it
        log.addHandler(logging.StreamHandler(sys.stdout))
        log.propagate = False
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    # JAX runs in 32 bits, as asked; its notice that int64 indices become int32 is noise here,
    # as is PyTensor's that JAX drops the shape assertions it cannot trace
    warnings.filterwarnings("ignore", message="Explicitly requested dtype")
    warnings.filterwarnings("ignore", message="Skipping Assert")
    with pytensor.config.change_flags(floatX="float32"):
        try:
            if args.evaluate is not None:
                evaluate(args, resolve_mode(args.mode))
                return 0
            config, mode, datasets = prepare(args)
        except (DataError, ModeError, ValueError, TypeError, FileNotFoundError) as exc:
            print(f"sda: error: {exc}", file=sys.stderr)
            return 2
        try:
            run(args, config, mode, datasets)
        except DivergenceError as exc:
            print(f"sda: training diverged: {exc}. The last checkpoint and best model "
                  f"are kept in the output directory", file=sys.stderr)
            return 1
    return 0
