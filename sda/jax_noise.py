"""Where the noise of a JAX-compiled function stands, and how a checkpoint gets it.

Under CVM and NUMBA a compiled function draws from the shared generators themselves: their
states always say where the noise stands, a checkpoint saves them, and a resumed run goes on
from there.  PyTensor's JAX backend instead compiles a *copy* of each shared generator into
each function: a dict in the function's input storage whose ``"jax_state"``, a JAX key, is
the only thing a draw advances; the shared generator never moves.  The key is taken, when
compiling, from the two lowest 32-bit words of the generator's PCG64 state.

PyTensor offers no public way to read or set that copy, so this module is the one place that
reaches into a compiled function's storage (``function.maker.inputs``,
``function.input_storage``).  ``tests/test_jax_noise.py`` checks these internals directly and
fails, naming this module, if a PyTensor release changes them.
"""

from __future__ import annotations

import numpy as np
from pytensor.tensor.random.type import RandomType

__all__ = ["write_back_compiled_noise", "load_compiled_noise", "jax_key", "compiled_generators"]


def jax_key(pcg_state: int) -> tuple[int, int]:
    """The JAX key PyTensor compiles a PCG64 state to: its two lowest 32-bit words, low first."""
    return pcg_state & 0xFFFFFFFF, (pcg_state >> 32) & 0xFFFFFFFF


def compiled_generators(function):
    """``(shared generator, its compiled copy)`` for each generator a JAX-compiled ``function``
    holds a copy of; nothing for functions of other modes (they use the generators themselves)."""
    for spec, container in zip(function.maker.inputs, function.input_storage):
        copy = container.data
        if isinstance(spec.variable.type, RandomType) and isinstance(copy, dict) and "jax_state" in copy:
            yield spec.variable, copy


def write_back_compiled_noise(functions) -> None:
    """Give each shared generator the state that the JAX-compiled ``functions`` have drawn it
    to, so that a checkpoint saves where the noise stands.

    A PCG64 state whose low 64 bits are set to the key compiles again to the very same key, so
    a resumed run, compiled from the saved state, draws on exactly where this one stopped.  Give
    only the functions that have been drawing (the step of the phase that runs): another
    function's copy of a shared generator may be stale.
    """
    for function in functions:
        for variable, copy in compiled_generators(function):
            generator = variable.get_value(borrow=False)
            state = generator.bit_generator.state
            low, high = (int(word) for word in np.asarray(copy["jax_state"]).astype(np.uint32))
            if (low, high) == jax_key(state["state"]["state"]):
                continue  # nothing drawn since the last write-back
            state["state"]["state"] = (state["state"]["state"] >> 64 << 64) | (high << 32) | low
            generator.bit_generator.state = state
            variable.set_value(generator, borrow=True)


def load_compiled_noise(functions) -> None:
    """The converse of :func:`write_back_compiled_noise`: give the JAX-compiled ``functions``'
    copies the shared generators' present states.  A function compiled before another one drew
    from a generator they share (the fine-tuning step shares the first dA's) would otherwise
    start from the state that generator had when it compiled, and draw the other's first
    numbers again."""
    for function in functions:
        for variable, copy in compiled_generators(function):
            state = variable.get_value(borrow=True).bit_generator.state["state"]["state"]
            copy["jax_state"] = np.asarray(jax_key(state), dtype=np.uint32)
