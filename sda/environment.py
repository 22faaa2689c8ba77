"""Whether PyTensor can start in this environment, checked once, at each command's entry.

PyTensor reads its flags (``PYTENSOR_FLAGS``, ``THEANO_FLAGS``, ``.pytensorrc``) and makes its
compile directory as it is imported: a flag it refuses or a directory it cannot write is a
problem of the environment, not of sda.  Every command (``python -m sda.SdA``, ``sda.sweep``,
``sda.ablation``, the tutorial scripts and their console scripts) calls
:func:`exit_if_pytensor_cannot_start` before it imports anything that imports PyTensor, so that
such a problem is one line on stderr and exit status 2, not a traceback.  This module imports
PyTensor only inside :func:`pytensor_problem`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["pytensor_problem", "exit_if_pytensor_cannot_start"]


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


def exit_if_pytensor_cannot_start(prog: str) -> None:
    """Print ``prog: error: <why>`` and exit with status 2 when PyTensor cannot start."""
    problem = pytensor_problem()
    if problem is not None:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        sys.exit(2)
