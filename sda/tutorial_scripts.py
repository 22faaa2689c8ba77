"""The tutorial's other scripts with flags: ``python -m sda.logistic_sgd``, ``python -m sda.mlp``,
``python -m sda.dA`` (each model file hands over to this module when run, as ``sda.SdA`` hands over
to the command line, so that the model files hold no command-line code).

Every flag defaults to the tutorial's value; ``--help`` lists them and exits.  Bad values end with
one line on stderr and exit status 2.  ``python -m sda.tutorial_scripts {logistic_sgd,mlp,dA} ...``
runs the same.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: PyTensor's environment is checked before it loads below
    from sda.environment import exit_if_pytensor_cannot_start

    exit_if_pytensor_cannot_start("sda")

import argparse
import sys
from pathlib import Path

import pytensor

from sda.cli import OneLineParser, join_negative_numbers
from sda.data import DEFAULT_DATA_DIR, VALID_SIZE, DataError
from sda.dA import train_dA
from sda.datasets import load_data
from sda.logistic_sgd import sgd_optimization_mnist
from sda.mlp import train_mlp
from sda.modes import MODES, ModeError
from sda.validation import check_corruption, check_non_negative, check_positive, check_positive_int, check_seed

__all__ = ["SCRIPTS", "build_parser", "main"]

SCRIPTS = ("logistic_sgd", "mlp", "dA")

_DESCRIPTIONS = {
    "logistic_sgd": "Train softmax regression on MNIST by minibatch SGD with early stopping "
                    "(the tutorial's logistic_sgd.py).",
    "mlp": "Train a one-hidden-layer perceptron on MNIST with early stopping (the tutorial's mlp.py).",
    "dA": "Train a denoising autoencoder on MNIST once per corruption level and save each one's "
          "filters as a picture (the tutorial's dA.py).",
}

#: The tutorial's defaults: (learning rate, epochs, batch size) of each script.
_DEFAULTS = {"logistic_sgd": (0.13, 1000, 600), "mlp": (0.01, 1000, 20), "dA": (0.1, 15, 20)}


def build_parser(script: str) -> argparse.ArgumentParser:
    lr, epochs, batch = _DEFAULTS[script]
    p = OneLineParser(prog=f"python -m sda.{script}", description=_DESCRIPTIONS[script])
    p.add_argument("--learning-rate", type=float, default=lr, help=f"SGD learning rate (default {lr})")
    p.add_argument("--epochs", type=int, default=epochs,
                   help=f"{'training' if script == 'dA' else 'maximum'} epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help=f"minibatch size (default {batch})")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder with the four MNIST IDX files (default: the repository's data/mnist)")
    p.add_argument("--valid-size", type=int, default=VALID_SIZE,
                   help=f"validation = the last this many training images (default {VALID_SIZE})")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the MNIST sha256 check (Fashion-MNIST, your own IDX files)")
    p.add_argument("--mode", type=str.upper, default="AUTO", choices=["AUTO", *MODES],
                   help="PyTensor compile mode (default: the fastest available)")
    if script != "logistic_sgd":
        p.add_argument("--n-hidden", type=int, default=500, help="hidden units (default 500)")
        p.add_argument("--seed", type=int, default=1234 if script == "mlp" else 123, help="seed of the weights")
    if script == "mlp":
        p.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights (default 0)")
        p.add_argument("--l2", type=float, default=0.0001, help="squared L2 penalty on the weights (default 1e-4)")
    if script == "dA":
        p.add_argument("--corruption", type=float, nargs="+", default=[0.0, 0.3], metavar="P",
                       help="train one dA per masking level (default 0 and 0.3)")
        p.add_argument("--output-folder", type=Path, default=Path("dA_plots"),
                       help="where filters_corruption_<percent>.png go (default dA_plots)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    return p


def _check_numbers(script: str, args: argparse.Namespace) -> None:
    """Every number of ``args`` through the checks of the rest of sda, before any data is read:
    a corruption of 5 or NaN, a rate infinite in float32, a count beyond int32 end here."""
    check_positive("--learning-rate", args.learning_rate)
    for flag in ("--epochs", "--batch-size", "--valid-size", *(("--n-hidden",) if script != "logistic_sgd" else ())):
        check_positive_int(flag, getattr(args, flag[2:].replace("-", "_")))
    if script != "logistic_sgd":
        check_seed("--seed", args.seed)
    if script == "mlp":
        check_non_negative("--l1", args.l1)
        check_non_negative("--l2", args.l2)
    if script == "dA":
        for level in args.corruption:
            check_corruption("--corruption", level)


def _run(script: str, args: argparse.Namespace) -> str:
    """Train as ``args`` say; returns the summary line."""
    _check_numbers(script, args)
    datasets = load_data(args.data_dir, n_valid=args.valid_size, verify=args.verify)
    common = dict(learning_rate=args.learning_rate, datasets=datasets, batch_size=args.batch_size,
                  mode=args.mode, progress=not args.quiet, log=None if args.quiet else print)
    if script == "logistic_sgd":
        _, fit = sgd_optimization_mnist(n_epochs=args.epochs, **common)
    elif script == "mlp":
        _, fit = train_mlp(L1_reg=args.l1, L2_reg=args.l2, n_epochs=args.epochs, n_hidden=args.n_hidden,
                           seed=args.seed, **common)
    else:
        trained = train_dA(training_epochs=args.epochs, n_hidden=args.n_hidden, corruption_levels=args.corruption,
                           output_folder=args.output_folder, seed=args.seed, **common)
        return "; ".join(f"corruption {level:.0%}: reconstruction cost {result.costs[0][-1]:.2f}"
                         for level, (_, result) in trained.items()) + f"; filters in {args.output_folder}"
    return f"best validation error {fit.best_validation_error:.2%}, test error {fit.test_error:.2%}"


def main(script: str, argv=None) -> int:
    """Run ``script`` (one of :data:`SCRIPTS`) with ``argv``; returns the exit status."""
    args = build_parser(script).parse_args(join_negative_numbers(sys.argv[1:] if argv is None else list(argv)))
    with pytensor.config.change_flags(floatX="float32"):
        try:
            print(_run(script, args))
        except (DataError, ModeError, ValueError, TypeError, OSError) as exc:
            print(f"sda: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    # run by a model file with SCRIPT set (python -m sda.dA), or as python -m sda.tutorial_scripts NAME
    chosen = globals().get("SCRIPT")
    if chosen is None:
        if len(sys.argv) < 2 or sys.argv[1] not in SCRIPTS:
            print(f"usage: python -m sda.tutorial_scripts {{{','.join(SCRIPTS)}}} [flags]", file=sys.stderr)
            sys.exit(2)
        chosen = sys.argv.pop(1)
    sys.exit(main(chosen))
