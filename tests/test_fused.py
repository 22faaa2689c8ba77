"""Fused steps (several minibatches per compiled call, through scan) compute what one-step
calls compute, in every fast mode: same parameters for the same seed."""

import numpy as np
import pytest

from support import CPU_MODE
from sda.datasets import shared_dataset
from sda.modes import available_modes
from sda.SdA import SdA
from sda.steps import steps_per_call_for
from sda.training import fit_early_stopping, pretrain_layers

MODES = [m for m in ("CVM", "JAX", "NUMBA") if m in available_modes()]


def train(mode, steps_per_call, momentum=0.5):
    rng = np.random.RandomState(0)
    x = (rng.uniform(size=(120, 12)) > 0.5).astype("float32")
    y = (x[:, :3].sum(axis=1) > 1).astype("int32")
    datasets = [shared_dataset((x, y)) for _ in range(3)]
    sda = SdA(np.random.RandomState(1), n_ins=12, hidden_layers_sizes=[10, 8], n_outs=2,
              corruption_levels=[0.2, 0.3])
    fns = sda.pretraining_functions(datasets[0][0], 10, mode, steps_per_call=steps_per_call)
    pre = pretrain_layers(fns, 2, sda.corruption_levels, 0.1, progress=False, log=None)
    train_fn, valid_fn, test_fn = sda.build_finetune_functions(datasets, 10, 0.2, mode, momentum=momentum,
                                                               steps_per_call=steps_per_call)
    fit = fit_early_stopping(train_fn, valid_fn, test_fn, n_epochs=3, patience=1000,
                             params=sda.params, progress=False, log=None)
    return [np.asarray(p.get_value()) for p in sda.params + [d.b_prime for d in sda.dA_layers]], pre, fit


@pytest.mark.parametrize("mode", MODES)
def test_fused_and_single_step_training_agree(mode, float32):
    single, pre1, fit1 = train(mode, 1)
    fused, pre4, fit4 = train(mode, 4)
    for a, b in zip(fused, single):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(pre4.costs), np.concatenate(pre1.costs), rtol=1e-4)
    assert [r["validation_error"] for r in fit4.history] == [r["validation_error"] for r in fit1.history]


def test_fused_functions_return_one_cost_per_minibatch(float32):
    rng = np.random.RandomState(0)
    data = shared_dataset((rng.uniform(size=(60, 6)).astype("float32"), np.zeros(60, np.int32)))
    sda = SdA(rng, n_ins=6, hidden_layers_sizes=[4], n_outs=2, corruption_levels=[0.1])
    fn = sda.pretraining_functions(data[0], 5, MODES[0], steps_per_call=5)[0]
    assert fn.steps_per_call == 4  # the largest divisor of 12 minibatches not above 5
    assert np.asarray(fn(4, 0.1, 0.1)).shape == (4,)


def test_steps_per_call_for():
    assert steps_per_call_for(2500, 100) == 100
    assert steps_per_call_for(12, 5) == 4
    assert steps_per_call_for(7, 5) == 1
    assert steps_per_call_for(3, 10) == 3


def test_cached_layer_inputs_give_the_same_pretraining_as_recomputing_them(float32):
    def pretrain(cache_inputs):
        rng = np.random.RandomState(0)
        data = shared_dataset(((rng.uniform(size=(60, 12)) > 0.5).astype("float32"), np.zeros(60, np.int32)))
        sda = SdA(np.random.RandomState(1), n_ins=12, hidden_layers_sizes=[10, 8, 6], n_outs=2,
                  corruption_levels=[0.1, 0.2, 0.3])
        fns = sda.pretraining_functions(data[0], 10, CPU_MODE, cache_inputs=cache_inputs)
        first_weights = sda.sigmoid_layers[0].W  # a cached layer's step no longer computes layer 0
        assert [any(v is first_weights for v in f.function.get_shared()) for f in fns] == \
            [True, not cache_inputs, not cache_inputs]
        pretrain_layers(fns, 3, sda.corruption_levels, 0.1, progress=False, log=None)
        return [p.get_value() for d in sda.dA_layers for p in d.params]
    for cached, recomputed in zip(pretrain(True), pretrain(False)):
        np.testing.assert_allclose(cached, recomputed, rtol=1e-5, atol=1e-6)
