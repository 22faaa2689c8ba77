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

from sda.execution import limit_threads

__all__ = ["main"]


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
    problem = pytensor_problem()
    if problem is not None:
        print(f"sda: error: {problem}", file=sys.stderr)
        return 2
    from sda.cli import main as cli_main  # only now: numpy and PyTensor load here

    return cli_main(argv)


def pytensor_problem() -> str | None:
    """Why PyTensor cannot start in this environment, in one line, or None when it can: a flag
    it refuses, or a compile directory it cannot make or write (every backend compiles there)."""
    try:
        import pytensor

        compiledir = pytensor.config.compiledir  # made on first use
    except (ValueError, OSError) as exc:  # PyTensor's refusals of a flag; a directory it cannot make
        reason = " ".join(str(exc).split())[:300]
        return f"PyTensor cannot start with the flags given (PYTENSOR_FLAGS, THEANO_FLAGS or .pytensorrc): {reason}"
    if not os.access(compiledir, os.W_OK | os.X_OK):
        return (f"PyTensor's compile directory {compiledir} is not writable: choose another with "
                f"PYTENSOR_FLAGS=base_compiledir=DIR")
    return None


if __name__ == "__main__":
    sys.exit(main())
