"""The one place that chooses, validates and describes the PyTensor compile mode.

PyTensor compiles a graph through one of several linkers.  The ones this project
supports, and why one might pick each:

==============  ==================================================================
``CVM``         C code + a C virtual machine; calls a BLAS for ``dot``.  Fastest on a
                CPU at small batches, *slow without a BLAS* (PyTensor then falls
                back to its own loops).
``NUMBA``       Numba-jitted Python; PyTensor 3's own default.  No C compiler needed.
``JAX``         XLA through JAX; the fastest on a CPU at larger batches and the only
                GPU path.  Needs static shapes (we always provide them).
``FAST_COMPILE``  Python implementations, few rewrites: for debugging.
==============  ==================================================================

Every function in the project is compiled by :func:`compile_function`, so the same
graph code runs in each mode.
"""

from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache

import pytensor

__all__ = [
    "MODES",
    "ModeError",
    "blas_available",
    "jax_devices",
    "available_modes",
    "default_mode",
    "resolve_mode",
    "device_description",
    "keep_on_device",
    "compile_function",
]

MODES = ("CVM", "NUMBA", "JAX", "FAST_COMPILE")

BLAS_HINT = (
    "install a BLAS with its development files (Debian/Ubuntu: "
    "`apt-get install libopenblas-dev libgfortran-12-dev`) and clear PyTensor's cache "
    "(`pytensor-cache purge`), or choose another mode (--mode JAX or --mode NUMBA)"
)


class ModeError(ValueError):
    """An unknown compile mode, or one that cannot run on this machine."""


def blas_available() -> bool:
    """Whether PyTensor's C backend found a BLAS to link against."""
    return bool(pytensor.config.blas__ldflags.strip())


@lru_cache(maxsize=1)
def jax_devices() -> tuple:
    """JAX's devices (GPU ones first when present), or () when jax is not installed."""
    if importlib.util.find_spec("jax") is None:
        return ()
    import jax

    return tuple(jax.devices())


def _jax_has_gpu() -> bool:
    return any(d.platform == "gpu" for d in jax_devices())


def available_modes() -> list[str]:
    """The modes that can compile here: CVM only with a C compiler and a BLAS."""
    modes = []
    if pytensor.config.cxx and blas_available():
        modes.append("CVM")
    if importlib.util.find_spec("numba") is not None:
        modes.append("NUMBA")
    if jax_devices():
        modes.append("JAX")
    modes.append("FAST_COMPILE")
    return modes


#: From this minibatch size on, JAX (with fused steps) beat CVM on the CPU (docs/RESULTS.md).
JAX_FROM_BATCH_SIZE = 10


def default_mode(batch_size: int | None = None) -> str:
    """The fastest available mode, by ``python bench/benchmark.py`` (docs/RESULTS.md).

    JAX on a GPU beats everything.  On a CPU, JAX with fused steps was fastest at batch 20
    and above; at batch 1 CVM with a BLAS was (for pretraining, the bulk of the tutorial's
    protocol), then JAX, then NUMBA.  Without a ``batch_size`` the small-batch order holds.
    """
    available = available_modes()
    if "JAX" in available and (_jax_has_gpu() or (batch_size or 1) >= JAX_FROM_BATCH_SIZE):
        return "JAX"
    for mode in ("CVM", "JAX", "NUMBA"):
        if mode in available:
            return mode
    return "FAST_COMPILE"


def resolve_mode(name: str | None = None, batch_size: int | None = None) -> str:
    """Validate a mode name (case-insensitive); ``None`` or ``"auto"`` picks
    :func:`default_mode` for ``batch_size``.

    Raises :class:`ModeError` for an unknown name or a mode this machine cannot run.
    """
    if name is None or str(name).lower() == "auto":
        return default_mode(batch_size)
    mode = str(name).upper()
    if mode not in MODES:
        raise ModeError(f"unknown compile mode {name!r}; choose one of {', '.join(MODES)} or auto")
    if mode == "CVM":
        if not pytensor.config.cxx:
            raise ModeError("mode CVM needs a C++ compiler and PyTensor found none (config.cxx is empty)")
        if not blas_available():
            raise ModeError(f"mode CVM needs a BLAS and PyTensor found none: {BLAS_HINT}")
    if mode == "JAX" and not jax_devices():
        raise ModeError("mode JAX needs jax: `pip install jax` (or `pip install -e .[jax]`)")
    if mode == "NUMBA" and importlib.util.find_spec("numba") is None:
        raise ModeError("mode NUMBA needs numba: `pip install numba`")
    return mode


def device_description(mode: str) -> str:
    """Human-readable name of where ``mode`` computes, e.g. ``"cpu"`` or ``"gpu (NVIDIA H100)"``."""
    if mode == "JAX" and jax_devices():
        device = jax_devices()[0]
        kind = getattr(device, "device_kind", "") or ""
        return f"{device.platform} ({kind})" if kind and kind != device.platform else device.platform
    return "cpu"


def keep_on_device(shared_variables, mode: str) -> None:
    """For JAX, move the values of ``shared_variables`` (datasets) onto JAX's default device
    once, so that no compiled call copies them from the host again.

    PyTensor's shared-variable filter would turn a JAX array back into numpy, so the value
    is placed in the variable's storage directly (as PyTensor itself does with the results
    of updates).  Other modes need nothing.  A variable placed so can still be read with
    ``get_value()``, but only JAX-compiled functions should compute with it afterwards.
    """
    if mode != "JAX":
        return
    import jax

    for variable in shared_variables:
        variable.container.storage[0] = jax.device_put(variable.get_value(borrow=True))


def compile_function(inputs, outputs, mode: str, **kwargs):
    """``pytensor.function`` in the given (already resolved) mode.

    For JAX, PyTensor replaces each shared random generator by a JAX key of its own and
    warns about it; that is the intended behaviour here, so the warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The RandomType SharedVariables")
        return pytensor.function(inputs, outputs, mode=mode, **kwargs)
