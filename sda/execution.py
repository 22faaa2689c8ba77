"""How many CPU cores the numeric libraries may use (``--threads N``), set before they load.

Each backend sizes its thread pools its own way, most of them once, when it loads:

==============  =====================================================================
CVM             the system BLAS PyTensor links (OpenBLAS: ``OPENBLAS_NUM_THREADS``,
                ``OMP_NUM_THREADS``; MKL: ``MKL_NUM_THREADS``), read when the compiled
                module first loads it
NUMBA           ``NUMBA_NUM_THREADS`` when numba loads; its matrix products go through
                scipy's BLAS, limited at run time by threadpoolctl where installed
JAX (CPU)       XLA sizes its pools by the cores the process may run on: the process's
                CPU affinity, which is narrowed to N cores (Linux)
numpy           its bundled BLAS, limited at run time by threadpoolctl where installed
==============  =====================================================================

So :func:`limit_threads` sets the variables (for libraries not loaded yet), limits the loaded
BLAS libraries through threadpoolctl when it is installed, and narrows the CPU affinity, which
binds every thread of the process whatever the library.  The command line calls it before it
imports numpy (``sda.launch``); called later, the affinity and threadpoolctl still apply.
This module imports no numeric library.
"""

from __future__ import annotations

import os
import sys

__all__ = ["THREAD_VARIABLES", "limit_threads"]

#: Read by OpenMP, OpenBLAS, MKL and numba when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Let this process compute on at most ``n`` CPU cores (see the module docstring)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {n!r}")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    n = min(n, len(cores))
    for variable in THREAD_VARIABLES:
        # numba refuses a NUMBA_NUM_THREADS that changes once it has loaded
        if variable != "NUMBA_NUM_THREADS" or "numba" not in sys.modules:
            os.environ[variable] = str(n)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores[:n])
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n)
