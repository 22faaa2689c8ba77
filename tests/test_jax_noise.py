"""sda.jax_noise reads PyTensor's JAX-compiled copies of the noise generators; these tests hold
PyTensor's internals to what that module assumes, so that a release that changes them fails
here, by name, instead of making resumed runs silently draw other noise."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from sda.jax_noise import compiled_generators, jax_key, load_compiled_noise, write_back_compiled_noise
from sda.modes import available_modes, compile_function

pytestmark = pytest.mark.skipif("JAX" not in available_modes(), reason="needs jax")

CHANGED = "PyTensor's JAX backend no longer keeps generator copies as sda.jax_noise expects: update sda/jax_noise.py"


def uniform_function(generator):
    next_state, draw = pt.random.uniform(size=(4,), rng=generator).owner.outputs
    return compile_function([], draw, "JAX", updates={generator: next_state})


def test_pytensor_compiles_a_copy_keyed_by_the_low_words_of_the_pcg64_state():
    generator = pytensor.shared(np.random.default_rng(7))
    function = uniform_function(generator)
    copies = list(compiled_generators(function))
    assert [variable for variable, _ in copies] == [generator], CHANGED
    state = generator.get_value(borrow=True).bit_generator.state["state"]["state"]
    key = tuple(int(w) for w in np.asarray(copies[0][1]["jax_state"]).astype(np.uint32))
    assert key == jax_key(state), CHANGED
    function()
    (_, copy), = compiled_generators(function)  # the storage now holds the advanced copy
    advanced = tuple(int(w) for w in np.asarray(copy["jax_state"]).astype(np.uint32))
    assert advanced != key, CHANGED  # a draw advances the copy ...
    assert generator.get_value(borrow=True).bit_generator.state["state"]["state"] == state, CHANGED  # ... only


def test_written_back_noise_compiles_to_the_draws_that_would_have_come_next():
    generator = pytensor.shared(np.random.default_rng(11))
    running = uniform_function(generator)
    running()
    write_back_compiled_noise([running])
    resumed = uniform_function(generator)  # compiled from the written-back state, as a resumed run is
    np.testing.assert_array_equal(resumed(), running())


def test_a_function_compiled_earlier_draws_on_from_where_another_left_a_shared_generator():
    """The fine-tuning step shares the first dA's generator and is compiled before pretraining
    draws from it: it must be given the state pretraining drew it to."""
    generator = pytensor.shared(np.random.default_rng(7))
    first, second = uniform_function(generator), uniform_function(generator)
    first_draw = first()
    first()
    write_back_compiled_noise([first])
    load_compiled_noise([second])
    from_second = second()
    assert not np.allclose(from_second, first_draw)
    np.testing.assert_array_equal(from_second, first())  # both copies now stand at the same place


def test_functions_of_other_modes_hold_no_copies():
    generator = pytensor.shared(np.random.default_rng(3))
    next_state, draw = pt.random.uniform(size=(4,), rng=generator).owner.outputs
    function = compile_function([], draw, "FAST_COMPILE", updates={generator: next_state})
    assert list(compiled_generators(function)) == []
