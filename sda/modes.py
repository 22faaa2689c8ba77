"""The one place that chooses, validates and describes the PyTensor compile mode.

PyTensor compiles a graph through one of several linkers.  The ones this project
supports, and why one might pick each:

================  ================================================================
``CVM``           C code + a C virtual machine; calls a BLAS for ``dot``.  Fastest on a
                  CPU at small batches, *slow without a BLAS* (PyTensor then falls
                  back to its own loops).
``NUMBA``         Numba-jitted Python; PyTensor 3's own default.  No C compiler needed.
``JAX``           XLA through JAX; the fastest on a CPU at larger batches (and for
                  fine-tuning at batch 1) and the only GPU path.  Needs static shapes
                  (we always provide them).
``FAST_COMPILE``  Python implementations, few rewrites: for debugging.
================  ================================================================

Every function in the project is compiled by :func:`compile_function`, so the same
graph code runs in each mode.
"""

from __future__ import annotations

import importlib.util
import os
import sys
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
    "describe_mode",
    "training_phases",
    "cpu_seconds",
    "use_device",
    "DEVICES",
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


#: Where ``--device`` may put the computation: ``cpu`` hides any GPU from JAX, ``gpu`` needs one.
DEVICES = ("cpu", "gpu")
_device: str | None = None  # set by use_device; None: JAX's own default (a GPU when it sees one)


def use_device(device: str | None) -> None:
    """Compute on ``device`` ("cpu", "gpu" or None for JAX's default).

    "cpu" hides GPUs from JAX (``JAX_PLATFORMS=cpu``, which JAX reads when it starts; if it has
    started already, its default device becomes the CPU).  "gpu" is checked by
    :func:`resolve_mode`: the mode must be JAX and JAX must see a GPU.
    """
    global _device
    if device not in (None, *DEVICES):
        raise ModeError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    _device = device
    jax_devices.cache_clear()
    if device != "cpu":
        return
    os.environ["JAX_PLATFORMS"] = "cpu"
    if "jax" in sys.modules:  # started already (a notebook, the tests): move its default device
        import jax

        jax.config.update("jax_default_device", jax.devices("cpu")[0])


@lru_cache(maxsize=1)
def jax_devices() -> tuple:
    """JAX's devices (GPU ones first when present; CPU only after ``use_device("cpu")``), or ()
    when jax is not installed."""
    if importlib.util.find_spec("jax") is None:
        return ()
    import jax

    return tuple(jax.devices("cpu")) if _device == "cpu" else tuple(jax.devices())


def _jax_has_gpu() -> bool:
    return any(d.platform == "gpu" for d in jax_devices())


def _modes_without_jax() -> list[str]:
    """CVM (with a C compiler and a BLAS) and NUMBA, where they can compile: known without
    starting JAX, which takes about a second."""
    modes = []
    if pytensor.config.cxx and blas_available():
        modes.append("CVM")
    if importlib.util.find_spec("numba") is not None:
        modes.append("NUMBA")
    return modes


def available_modes() -> list[str]:
    """The modes that can compile here: CVM only with a C compiler and a BLAS."""
    modes = _modes_without_jax()
    if jax_devices():
        modes.append("JAX")
    modes.append("FAST_COMPILE")
    return modes


#: From this minibatch size on, JAX (with fused steps) beat CVM on the CPU (docs/RESULTS.md).
JAX_FROM_BATCH_SIZE = 10

#: A run of less arithmetic than this (floating-point operations, counted by :func:`training_phases`)
#: does not win back JAX's compile time on a CPU.  Measured on 2 cores: XLA compiles an SdA's
#: functions in about 2 s more than CVM or NUMBA (from a warm PyTensor cache), and at batch 20
#: JAX computes at about 120 GFLOP/s against CVM's 70 (docs/RESULTS.md), saving 6 ms per GFLOP:
#: the break-even is near 0.5 TFLOP, and the bar is set above it.  scikit-learn's digits
#: (1257 training rows, ``SdAClassifier`` with one layer of 100 units, 3 + 30 epochs at batch 20,
#: about 2 GFLOP) took 4.3 s under JAX, 2.3 s under CVM, 1.3 s under NUMBA and 9.9 s under
#: FAST_COMPILE, of which 2.4, 0.09, 0.24 and 9.6 s in the epochs; MNIST's ``--preset quick``
#: (about 2.5 TFLOP) is faster under JAX.  These CVM and NUMBA times are from PyTensor's cache on
#: disk: the very first fit on a machine (an empty cache) compiles its C or numba code once, 26 s
#: (CVM) and 29 s (NUMBA) for that digits fit, then 1.1 s for both in the next process; the cache
#: serves other data and layer sizes too, while JAX compiles anew in every process.
JAX_MIN_FLOPS = 1e12


def training_phases(n_examples: int, layer_sizes, pretraining_epochs: int, finetuning_epochs: int,
                    pretrain_batch_size: int, finetune_batch_size: int) -> dict:
    """``{"pretraining": (flops, batch size), "fine-tuning": (flops, batch size)}`` of a run on
    ``n_examples`` rows for layers of ``layer_sizes`` (input, hidden..., output): what
    :func:`default_mode` weighs.  Rough floating-point operations: a dA epoch of layer k encodes
    and decodes (2 matrix products) and back-propagates (about twice that); a fine-tuning epoch
    runs every layer forward and back once."""
    pairs = list(zip(layer_sizes[:-2], layer_sizes[1:-1]))
    pretraining = 12 * sum(a * b for a, b in pairs)
    finetuning = 6 * sum(a * b for a, b in zip(layer_sizes, layer_sizes[1:]))
    return {"pretraining": (float(n_examples) * pretraining_epochs * pretraining, pretrain_batch_size),
            "fine-tuning": (float(n_examples) * finetuning_epochs * finetuning, finetune_batch_size)}


#: Floating-point operations per second of whole epochs (counted as :func:`training_phases` counts
#: them) on the project's 2-core machine, from ``bench/benchmark.py`` (docs/RESULTS.md, "Speed":
#: a 784-1000-1000-1000 SdA, the seconds of the three pretraining layers summed), by mode, phase
#: and minibatch size: batch 1 stands for batches below :data:`JAX_FROM_BATCH_SIZE`, 20 for the
#: others.  At batch 1, CVM pretrains faster (72 s an epoch of the three layers against 167 s) and
#: JAX fine-tunes twice as fast (42 s against 84 s), so the tutorial's protocol, whose fine-tuning
#: epochs outweigh its pretraining, is faster under JAX.
EPOCH_RATES = {
    ("CVM", "pretraining", 1): 23.1e9, ("JAX", "pretraining", 1): 10.0e9,
    ("CVM", "fine-tuning", 1): 10.0e9, ("JAX", "fine-tuning", 1): 19.9e9,
    ("CVM", "pretraining", 20): 87.0e9, ("JAX", "pretraining", 20): 155.3e9,
    ("CVM", "fine-tuning", 20): 60.6e9, ("JAX", "fine-tuning", 20): 109.6e9,
}


def cpu_seconds(mode: str, phases: dict) -> float:
    """The seconds ``mode`` (CVM or JAX) should take on a CPU for ``phases`` (see
    :func:`training_phases`), at the rates of :data:`EPOCH_RATES`."""
    return sum(flops / EPOCH_RATES[(mode, phase, 1 if batch < JAX_FROM_BATCH_SIZE else 20)]
               for phase, (flops, batch) in phases.items())


def default_mode(phases: dict | None = None) -> str:
    """The fastest available mode, by ``python bench/benchmark.py`` (docs/RESULTS.md).

    JAX on a GPU beats everything.  On a CPU, JAX with fused steps was fastest at batch 20
    and above; at batch 1 CVM with a BLAS pretrained faster and JAX fine-tuned faster, so for
    the run's ``phases`` (:func:`training_phases`) the mode of the shorter estimated time
    (:func:`cpu_seconds`) is chosen; without them (None: an unknown, large run at a small batch)
    the small-batch order holds: CVM, JAX, NUMBA.  A run of fewer than :data:`JAX_MIN_FLOPS`
    operations spends more on compiling than JAX saves, so small data gets CVM or NUMBA, which
    compile in a moment from PyTensor's cache, even beside a GPU (and JAX is not started).
    """
    phases = phases or {}
    batch_size = min((batch for _, batch in phases.values()), default=1)
    small = bool(phases) and sum(flops for flops, _ in phases.values()) < JAX_MIN_FLOPS
    local = _modes_without_jax() if small and _device != "gpu" else []
    if local:
        return local[0]
    available = available_modes()
    if "JAX" in available and (_jax_has_gpu() or (batch_size >= JAX_FROM_BATCH_SIZE and not small)):
        return "JAX"
    if phases and not small and {"JAX", "CVM"} <= set(available) \
            and cpu_seconds("JAX", phases) < cpu_seconds("CVM", phases):
        return "JAX"
    order = ("CVM", "NUMBA", "JAX") if small else ("CVM", "JAX", "NUMBA")
    for mode in order:
        if mode in available:
            return mode
    return "FAST_COMPILE"


def resolve_mode(name: str | None = None, phases: dict | None = None) -> str:
    """Validate a mode name (case-insensitive); ``None`` or ``"auto"`` picks
    :func:`default_mode` for the run's ``phases`` (:func:`training_phases`).

    Raises :class:`ModeError` for an unknown name, a mode this machine cannot run, or a mode
    that cannot reach the device chosen by :func:`use_device`.
    """
    if _device == "gpu":
        if not _jax_has_gpu():
            seen = ", ".join(sorted({d.platform for d in jax_devices()})) or "no jax installed"
            raise ModeError(f"--device gpu: jax sees no GPU ({seen}); install a CUDA build of jax, "
                            f"e.g. pip install \"jax[cuda12]\"")
        if name is not None and str(name).upper() not in ("AUTO", "JAX"):
            raise ModeError(f"--device gpu computes through JAX; mode {name} runs on the CPU (use --mode JAX)")
    if name is None or str(name).lower() == "auto":
        return default_mode(phases)
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
    match_jax_precision(pytensor.config.floatX)
    import jax

    for variable in shared_variables:
        variable.container.storage[0] = jax.device_put(variable.get_value(borrow=True))


#: What PyTensor's JAX backend says about choices made here on purpose: JAX computes in 32 bits
#: as asked (so int64 indices become int32), and drops the shape assertions it cannot trace.
#: Neither is about the user's data or code; both are hidden around sda's own JAX functions only.
_JAX_NOTICES = ("Explicitly requested dtype", "Skipping Assert")


def _ignore_jax_notices() -> None:
    for message in _JAX_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def match_jax_precision(floatX: str) -> None:
    """Let JAX compute in 64 bits exactly when ``floatX`` is float64.

    JAX's precision is one global flag, which PyTensor sets from ``floatX`` once, when its JAX
    backend is first imported: a float64 graph compiled after a float32 one would otherwise be
    traced in 32 bits and hand float32 values back to float64 shared variables."""
    import jax

    if bool(jax.config.read("jax_enable_x64")) != (floatX == "float64"):
        jax.config.update("jax_enable_x64", floatX == "float64")


class _QuietFunction:
    """A JAX-compiled function whose calls hide :data:`_JAX_NOTICES` (JAX traces, and warns, at the
    first call and again for every new input shape, not when PyTensor compiles), traced in the
    precision of the ``floatX`` it was compiled in (:func:`match_jax_precision`)."""

    def __init__(self, function, floatX: str):
        self.function, self.floatX = function, floatX

    def __call__(self, *args, **kwargs):
        match_jax_precision(self.floatX)
        with warnings.catch_warnings():
            _ignore_jax_notices()
            return self.function(*args, **kwargs)

    def __getattr__(self, name):
        if name in ("function", "floatX"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.function, name)


def compile_function(inputs, outputs, mode: str, **kwargs):
    """``pytensor.function`` in the given (already resolved) mode.

    For JAX, PyTensor replaces each shared random generator by a JAX key of its own and
    warns about it; that is the intended behaviour here, so the warning is silenced, as are
    the notices of :data:`_JAX_NOTICES`.
    """
    if mode == "JAX":
        match_jax_precision(pytensor.config.floatX)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The RandomType SharedVariables")
        _ignore_jax_notices()
        function = pytensor.function(inputs, outputs, mode=mode, **kwargs)
    return _QuietFunction(function, pytensor.config.floatX) if mode == "JAX" else function


def describe_mode(mode: str) -> str:
    """One line: the mode, where it computes and, where PyTensor found no BLAS, how to get its C
    backend (the line the command line prints instead of PyTensor's own warning)."""
    line = f"compile mode {mode} on {device_description(mode)}"
    if mode != "CVM" and pytensor.config.cxx and not blas_available():
        line += " (no BLAS found: for the faster C backend, apt-get install libopenblas-dev libgfortran-12-dev)"
    return line
