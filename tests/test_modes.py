"""Every installed compile mode computes the same numbers from the same graph code."""

import subprocess
import sys
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from support import CVM_REQUIRED
from sda.dA import dA
from sda.datasets import shared_dataset
from sda.modes import MODES, ModeError, available_modes, compile_function, default_mode, resolve_mode
from sda.SdA import SdA

INSTALLED = available_modes()


def test_resolve_mode_validates_names():
    assert resolve_mode("fast_compile") == "FAST_COMPILE"
    assert resolve_mode(None) == default_mode() == resolve_mode("auto")
    assert default_mode() in INSTALLED
    with pytest.raises(ModeError, match="unknown compile mode 'GPU'"):
        resolve_mode("GPU")


def test_cvm_without_blas_says_how_to_fix_it():
    with pytensor.config.change_flags(blas__ldflags=""):
        with pytest.raises(ModeError, match="needs a BLAS.*libopenblas-dev"):
            resolve_mode("CVM")
        assert "CVM" not in available_modes()


@pytest.mark.skipif(not CVM_REQUIRED, reason="only CI's run with a BLAS (SDA_REQUIRE_CVM=1) promises all three")
def test_ci_exercises_the_three_fast_modes():
    # .ci/run's second pass has a BLAS, numba and jax: all three fast paths must be tested there
    for mode in ("CVM", "NUMBA", "JAX"):
        assert mode in INSTALLED, f"{mode} unavailable: {set(MODES) - set(INSTALLED)}"


def problem():
    rng = np.random.RandomState(0)
    x_data = rng.uniform(size=(20, 30)).astype("float32")
    mask = (rng.uniform(size=(20, 30)) > 0.25).astype("float32")
    labels = rng.randint(4, size=20).astype("int32")
    da = dA(np.random.RandomState(1), n_visible=30, n_hidden=16)
    sda = SdA(np.random.RandomState(2), n_ins=30, hidden_layers_sizes=[16, 8], n_outs=4,
              corruption_levels=[0.1, 0.2])
    sda.logLayer.W.set_value(rng.normal(size=(8, 4)).astype("float32"))  # not the zeros it starts at
    return x_data, mask, labels, da, sda


def mode_costs(mode, x_data, mask, labels, da, sda):
    cost = da.reconstruction_cost(da.x * mask)
    fn = compile_function([da.x], [cost, *pt.grad(cost, da.params)], mode)
    ft = compile_function([sda.x, sda.y], [sda.finetune_cost, sda.errors], mode)
    return [np.asarray(v) for v in fn(x_data)] + [np.asarray(v) for v in ft(x_data, labels)]


def test_every_installed_mode_gives_the_numpy_reference_cost_and_gradients(float32):
    from numpy_reference import dA_cost_and_grads, mlp_nll_and_error

    x_data, mask, labels, da, sda = problem()
    values = lambda params: [np.asarray(p.get_value(), dtype=np.float64) for p in params]
    cost, grads = dA_cost_and_grads(x_data.astype(np.float64), mask, *values(da.params))
    W = values(sda.params)
    nll, error = mlp_nll_and_error(x_data.astype(np.float64), labels, list(zip(W[::2], W[1::2])))
    reference = [cost, *grads, nll, error]
    for mode in INSTALLED:
        for got, want in zip(mode_costs(mode, x_data, mask, labels, da, sda), reference):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5, err_msg=mode)


@pytest.mark.parametrize("mode", INSTALLED)
def test_pretraining_and_finetuning_functions_compile_and_learn_in_each_mode(mode, float32):
    rng = np.random.RandomState(3)
    x = (rng.uniform(size=(60, 12)) > 0.5).astype("float32")
    y = (x[:, 0] > 0.5).astype("int32")
    datasets = [shared_dataset((x, y))] * 3
    sda = SdA(rng, n_ins=12, hidden_layers_sizes=[10, 6], n_outs=2, corruption_levels=[0.2, 0.3])
    fns = sda.pretraining_functions(datasets[0][0], batch_size=10, mode=mode)
    for fn in fns:
        first = [float(fn(i, 0.2, 0.1)) for i in range(6)]
        for _ in range(10):
            last = [float(fn(i, 0.2, 0.1)) for i in range(6)]
        assert np.mean(last) < np.mean(first)
    train_fn, valid_fn, _ = sda.build_finetune_functions(datasets, 10, 0.5, mode)
    before = float(valid_fn())
    for _ in range(40):
        for i in range(6):
            train_fn(i)
    assert float(valid_fn()) < before


@pytest.mark.parametrize("available, pretraining_epochs, finetuning_epochs, pretrain_batch, finetune_batch, chosen", [
    (["CVM", "NUMBA", "JAX"], 15, 1000, 1, 1, "JAX"),    # the tutorial: batch-1 fine-tuning outweighs pretraining
    (["CVM", "NUMBA", "JAX"], 15, 0, 1, 1, "CVM"),       # batch-1 pretraining alone: CVM pretrains faster
    (["CVM", "NUMBA", "JAX"], 15, 2, 1, 1, "CVM"),       # a little fine-tuning does not pay for JAX's slower pretraining
    (["CVM", "NUMBA", "JAX"], 15, 40, 1, 100, "CVM"),    # batch-1 pretraining outweighs 40 batch-100 epochs
    (["CVM", "NUMBA", "JAX"], 15, 400, 1, 100, "JAX"),   # ... but not 400
    (["CVM", "NUMBA", "JAX"], 5, 40, 100, 100, "JAX"),
    (["NUMBA", "JAX"], 15, 0, 1, 1, "JAX"),              # no BLAS: JAX before NUMBA
    (["CVM", "NUMBA"], 15, 1000, 1, 1, "CVM"),           # no jax
])
def test_auto_weighs_each_phase_at_its_measured_speed(monkeypatch, available, pretraining_epochs, finetuning_epochs,
                                                      pretrain_batch, finetune_batch, chosen):
    import sda.modes
    monkeypatch.setattr(sda.modes, "available_modes", lambda: [*available, "FAST_COMPILE"])
    monkeypatch.setattr(sda.modes, "_jax_has_gpu", lambda: False)
    phases = sda.modes.training_phases(50_000, [784, 1000, 1000, 1000, 10], pretraining_epochs, finetuning_epochs,
                                       pretrain_batch, finetune_batch)
    assert default_mode(phases=phases) == resolve_mode("auto", phases=phases) == chosen
    if {"CVM", "JAX"} <= set(available) and min(pretrain_batch, finetune_batch) == 1:
        faster = min(("CVM", "JAX"), key=lambda mode: sda.modes.cpu_seconds(mode, phases))
        assert faster == chosen




@pytest.mark.skipif("JAX" not in INSTALLED, reason="needs jax")
def test_a_float64_jax_function_computes_in_float64_after_a_float32_one():
    """JAX's precision is one global flag that PyTensor sets from floatX at its first import: a
    float64 graph compiled after float32 work must still update its float64 weights in 64 bits
    (a float32 result would also make an exact resume refuse its own checkpoint)."""
    import jax

    was = bool(jax.config.jax_enable_x64)
    try:
        with pytensor.config.change_flags(floatX="float32"):
            x = pt.vector("x")
            assert compile_function([x], 2 * x, "JAX")(np.ones(3, "float32")).dtype == np.float32
        with pytensor.config.change_flags(floatX="float64"):
            w = pytensor.shared(np.full(3, 1.0), name="w")
            step = compile_function([], [], "JAX", updates=[(w, w + 1e-10)])
            jax.config.update("jax_enable_x64", False)  # as PyTensor leaves it when first imported in float32
            step()
            assert w.get_value().dtype == np.float64
            np.testing.assert_array_equal(w.get_value(), np.full(3, 1.0 + 1e-10))  # 1.0 in float32
    finally:
        jax.config.update("jax_enable_x64", was)


def test_a_small_fit_chooses_its_mode_without_starting_jax():
    # starting JAX costs about a second, more than a small fit's whole compile
    code = ("import sys; from sda.modes import default_mode, training_phases; "
            "print(default_mode(training_phases(112, [4, 500, 500, 3], 5, 200, 2, 2)), 'jax' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert printed[0] in ("CVM", "NUMBA") and printed[1] == "False"
