"""The command line's first step (``sda-train``, ``python -m sda.SdA``, ``python -m sda``): what must
be settled before numpy, PyTensor and JAX load — how many cores they may use (``--threads``) and
whether JAX may see a GPU (``--device cpu``) — then :func:`sda.cli.main` does the rest.

It imports no numeric library before reading those two flags; :mod:`sda.cli` checks every flag
again (and applies these two once more, for callers that loaded the libraries already).  Then it
starts PyTensor, which reads its flags (``PYTENSOR_FLAGS``, ``THEANO_FLAGS``, ``.pytensorrc``) and
makes its compile directory as it is imported: a flag it refuses or a directory it cannot write
is a problem of the environment, said in one line (exit status 2) before anything else runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from sda.environment import exit_if_pytensor_cannot_start, pytensor_problem
from sda.execution import limit_threads

__all__ = ["main", "sweep_main", "ablation_main", "pytensor_problem"]


def _early_flags(argv: list[str]) -> argparse.Namespace:
    """``--threads`` and ``--device`` as given, unchecked (bad values are sda.cli's to report)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--threads")
    early.add_argument("--device")
    known, _ = early.parse_known_args(argv)
    return known


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    early = _early_flags(argv)
    if early.threads is not None and early.threads.isdigit() and int(early.threads) >= 1:
        limit_threads(int(early.threads))
    if early.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"  # read once, when jax starts
    exit_if_pytensor_cannot_start("sda")
    from sda.cli import main as cli_main  # only now: numpy and PyTensor load here

    return cli_main(argv)


def sweep_main(argv=None) -> int:
    """``sda-sweep``: :func:`sda.sweep.main`, once PyTensor is known to start."""
    exit_if_pytensor_cannot_start("sda-sweep")
    from sda.sweep import main as sweep

    return sweep(argv)


def ablation_main(argv=None) -> int:
    """``sda-ablation``: :func:`sda.ablation.main`, once PyTensor is known to start."""
    exit_if_pytensor_cannot_start("sda-ablation")
    from sda.ablation import main as ablation

    return ablation(argv)


if __name__ == "__main__":
    sys.exit(main())
