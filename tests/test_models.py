"""The models' maths: gradients, weight sharing, corruption, learning."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from support import CPU_MODE
from sda.dA import dA
from sda.datasets import shared_dataset
from sda.logistic_sgd import LogisticRegression
from sda.mlp import MLP, HiddenLayer
from sda.SdA import SdA
from sda.training import fit_early_stopping, pretrain_layers

MODE = "FAST_RUN"  # C backend with the default rewrites; what every test below compiles with


def numeric_gradient_check(cost_fn, grad_fns, params, rng, n_entries=8, eps=1e-6):
    """Compare the symbolic gradient of ``cost_fn()`` w.r.t. each shared param with
    central differences on a few random entries of it."""
    for param, grad_fn in zip(params, grad_fns):
        analytic = grad_fn()
        value = param.get_value()
        for flat in rng.choice(value.size, size=min(n_entries, value.size), replace=False):
            idx = np.unravel_index(flat, value.shape)
            shifted = value.copy()
            shifted[idx] += eps
            param.set_value(shifted)
            up = cost_fn()
            shifted[idx] -= 2 * eps
            param.set_value(shifted)
            down = cost_fn()
            param.set_value(value)
            numeric = (up - down) / (2 * eps)
            assert analytic[idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7), (param.name, idx)


def random_dA_problem(seed, n_examples, n_visible, n_hidden):
    """(rng, inputs, mask, dA with random biases, its cost on the masked inputs), float64."""
    rng = np.random.RandomState(seed)
    x_data = rng.uniform(size=(n_examples, n_visible))
    mask = (rng.uniform(size=(n_examples, n_visible)) > 0.3).astype("float64")
    da = dA(rng, n_visible=n_visible, n_hidden=n_hidden)
    da.b.set_value(rng.normal(size=n_hidden))
    da.b_prime.set_value(rng.normal(size=n_visible))
    return rng, x_data, mask, da, da.reconstruction_cost(da.x * mask)


def test_dA_cost_gradient_matches_finite_differences(float64):
    rng, x_data, _, da, cost = random_dA_problem(0, 6, 7, 5)
    givens = {da.x: pytensor.shared(x_data)}
    cost_fn = pytensor.function([], cost, givens=givens, mode=MODE)
    grad_fns = [pytensor.function([], g, givens=givens, mode=MODE) for g in pt.grad(cost, da.params)]
    numeric_gradient_check(cost_fn, grad_fns, da.params, rng)


def test_dA_cost_is_the_cross_entropy(float64):
    rng = np.random.RandomState(1)
    x_data = rng.uniform(size=(4, 6))
    da = dA(rng, n_visible=6, n_hidden=3)
    cost = pytensor.function([], da.reconstruction_cost(da.x), givens={da.x: pytensor.shared(x_data)},
                             mode=MODE)()
    W, b, bp = (p.get_value() for p in da.params)
    z = 1 / (1 + np.exp(-((1 / (1 + np.exp(-(x_data @ W + b)))) @ W.T + bp)))
    expected = np.mean(-np.sum(x_data * np.log(z) + (1 - x_data) * np.log(1 - z), axis=1))
    assert cost == pytest.approx(expected, rel=1e-10)


def test_finetune_cost_gradient_matches_finite_differences(float64):
    rng = np.random.RandomState(2)
    sda = SdA(rng, n_ins=6, hidden_layers_sizes=[5, 4], n_outs=3, corruption_levels=[0.1, 0.2])
    sda.logLayer.W.set_value(rng.normal(size=(4, 3)))
    sda.logLayer.b.set_value(rng.normal(size=3))
    givens = {sda.x: pytensor.shared(rng.uniform(size=(8, 6))),
              sda.y: pytensor.shared(rng.randint(3, size=8).astype("int32"))}
    cost_fn = pytensor.function([], sda.finetune_cost, givens=givens, mode=MODE)
    grad_fns = [pytensor.function([], g, givens=givens, mode=MODE)
                for g in pt.grad(sda.finetune_cost, sda.params)]
    numeric_gradient_check(cost_fn, grad_fns, sda.params, rng)


def test_sigmoid_layers_and_dAs_share_the_same_shared_variables(float32):
    sda = SdA(np.random.RandomState(3), n_ins=10, hidden_layers_sizes=[8, 6, 4], n_outs=3,
              corruption_levels=[0.1, 0.2, 0.3])
    assert len(sda.sigmoid_layers) == len(sda.dA_layers) == 3
    for layer, da in zip(sda.sigmoid_layers, sda.dA_layers):
        assert da.W is layer.W and da.b is layer.b
        assert da.b_prime not in sda.params
    assert sda.params == [p for layer in sda.sigmoid_layers for p in layer.params] + sda.logLayer.params
    # each dA reads the output of the layer below
    assert sda.dA_layers[1].x is sda.sigmoid_layers[0].output


def test_pretraining_step_changes_the_mlp_hidden_output(float32):
    rng = np.random.RandomState(4)
    data = rng.uniform(size=(40, 10)).astype("float32")
    sda = SdA(rng, n_ins=10, hidden_layers_sizes=[8, 6], n_outs=3, corruption_levels=[0.1, 0.2])
    train_x, _ = shared_dataset((data, np.zeros(40, np.int32)))
    hidden = pytensor.function([sda.x], sda.sigmoid_layers[1].output, mode=MODE)
    before = hidden(data)
    fns = sda.pretraining_functions(train_x, batch_size=10, mode=CPU_MODE)
    fns[1](0, 0.2, 0.5)
    after = hidden(data)
    assert np.abs(after - before).max() > 1e-4


def test_corruption_zero_keeps_input_and_level_c_zeroes_about_c(float64):
    da = dA(np.random.RandomState(5), n_visible=4, n_hidden=2)
    x = pt.matrix("x")
    level = pt.scalar("level")
    corrupted = da.get_corrupted_input(x, level)
    corrupt = pytensor.function([x, level], corrupted, updates=[da.rng_update], mode=MODE)
    data = np.random.RandomState(6).uniform(0.1, 1.0, size=(500, 200))
    np.testing.assert_array_equal(corrupt(data, 0.0), data)
    for c in (0.1, 0.3, 0.75):
        out = corrupt(data, c)
        zeroed = out == 0
        assert zeroed.mean() == pytest.approx(c, abs=0.01)
        np.testing.assert_array_equal(out[~zeroed], data[~zeroed])  # kept entries untouched
    # the noise advances between calls
    assert not np.array_equal(corrupt(data, 0.5), corrupt(data, 0.5))


def test_pretraining_lowers_reconstruction_cost(float32):
    rng = np.random.RandomState(7)
    prototypes = (rng.uniform(size=(4, 20)) > 0.5).astype("float32")
    data = prototypes[rng.randint(4, size=400)]
    train_x, _ = shared_dataset((data, np.zeros(400, np.int32)))
    sda = SdA(rng, n_ins=20, hidden_layers_sizes=[12, 8], n_outs=4, corruption_levels=[0.2, 0.2])
    fns = sda.pretraining_functions(train_x, batch_size=10, mode=CPU_MODE)
    result = pretrain_layers(fns, n_epochs=8, corruption_levels=[0.2, 0.2], learning_rate=0.1,
                             progress=False, log=None)
    for costs in result.costs:
        assert costs[-1] < 0.8 * costs[0]


def separable_datasets(rng, n=600, n_in=12, n_classes=3):
    centers = rng.uniform(size=(n_classes, n_in))
    def make(m):
        y = rng.randint(n_classes, size=m).astype(np.int32)
        x = np.clip(centers[y] + 0.05 * rng.normal(size=(m, n_in)), 0, 1).astype("float32")
        return shared_dataset((x, y))
    return [make(n), make(200), make(200)]


def test_finetuning_learns_a_separable_problem(float32):
    rng = np.random.RandomState(8)
    datasets = separable_datasets(rng)
    sda = SdA(rng, n_ins=12, hidden_layers_sizes=[16, 16], n_outs=3, corruption_levels=[0.1, 0.1])
    train_fn, valid_fn, test_fn = sda.build_finetune_functions(datasets, batch_size=10,
                                                               learning_rate=0.5, mode=CPU_MODE)
    start_error = float(test_fn())
    result = fit_early_stopping(train_fn, valid_fn, test_fn, n_epochs=30, patience=10 * 60,
                                params=sda.params, progress=False, log=None)
    assert start_error > 0.3
    assert result.best_validation_error < 0.02
    assert result.test_error < 0.02
    assert float(test_fn()) == result.test_error  # the best parameters were restored


def test_logistic_regression_and_mlp_learn(float32):
    rng = np.random.RandomState(9)
    datasets = separable_datasets(rng)
    from sda.logistic_sgd import sgd_optimization_mnist
    from sda.mlp import train_mlp
    _, fit = sgd_optimization_mnist(learning_rate=0.5, n_epochs=20, batch_size=20, n_out=3,
                                    mode=CPU_MODE, datasets=datasets, progress=False, log=None)
    assert fit.test_error < 0.05
    _, fit = train_mlp(learning_rate=0.1, n_epochs=20, batch_size=20, n_hidden=10, n_out=3,
                       mode=CPU_MODE, datasets=datasets, progress=False, log=None)
    assert fit.test_error < 0.05


@pytest.mark.parametrize("y", [pt.imatrix("y"), pt.vector("y", dtype="float64"), np.zeros(3)])
def test_logistic_regression_rejects_bad_labels(y, float32):
    layer = LogisticRegression(pt.matrix("x"), 4, 3)
    with pytest.raises(TypeError, match="y must"):
        layer.negative_log_likelihood(y)
    with pytest.raises(TypeError, match="y must"):
        layer.errors(y)


def test_logistic_regression_probabilities_normalise_per_row(float64):
    x = pt.matrix("x")
    layer = LogisticRegression(x, 4, 3, W=pytensor.shared(np.random.RandomState(0).normal(size=(4, 3))))
    p = pytensor.function([x], layer.p_y_given_x, mode=MODE)(np.random.RandomState(1).normal(size=(5, 4)))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_hidden_layer_initialisation_bounds(float64):
    rng = np.random.RandomState(10)
    tanh_layer = HiddenLayer(rng, pt.matrix(), 300, 200)
    sig_layer = HiddenLayer(rng, pt.matrix(), 300, 200, activation=pt.sigmoid)
    bound = np.sqrt(6 / 500)
    assert np.abs(tanh_layer.W.get_value()).max() <= bound
    assert np.abs(tanh_layer.W.get_value()).max() > 0.95 * bound
    assert np.abs(sig_layer.W.get_value()).max() > 0.95 * 4 * bound
    mlp = MLP(rng, pt.matrix(), 5, 4, 3)
    assert len(mlp.params) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_layers_sizes": []}, "must not be empty"),
    ({"hidden_layers_sizes": [5, 0]}, r"hidden_layers_sizes\[1\]"),
    ({"corruption_levels": [0.1, 1.0]}, r"corruption_levels\[1\]"),
    ({"corruption_levels": [0.1]}, "corruption_levels has 1"),
])
def test_sda_rejects_bad_arguments(kwargs, message):
    args = {"n_ins": 4, "hidden_layers_sizes": [5, 3], "corruption_levels": [0.1, 0.2]} | kwargs
    with pytest.raises(ValueError, match=message):
        SdA(np.random.RandomState(0), **args)


def test_dA_cost_and_gradients_match_the_numpy_reference(float64):
    from numpy_reference import dA_cost_and_grads
    _, x_data, mask, da, cost = random_dA_problem(11, 9, 13, 7)
    got = pytensor.function([da.x], [cost, *pt.grad(cost, da.params)], mode=MODE)(x_data)
    want_cost, want_grads = dA_cost_and_grads(x_data, mask, *(p.get_value() for p in da.params))
    assert got[0] == pytest.approx(want_cost, rel=1e-5)
    for g, w in zip(got[1:], want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-10)


def test_one_pretraining_step_moves_parameters_by_minus_lr_times_gradient(float64):
    from numpy_reference import dA_cost_and_grads
    rng = np.random.RandomState(12)
    data = rng.uniform(size=(10, 6))
    sda = SdA(rng, n_ins=6, hidden_layers_sizes=[4], n_outs=2, corruption_levels=[0.0])
    train_x, _ = shared_dataset((data, np.zeros(10, np.int32)))
    da = sda.dA_layers[0]
    before = [p.get_value() for p in da.params]
    cost, grads = dA_cost_and_grads(data[:5], np.ones((5, 6)), *before)
    step_cost = sda.pretraining_functions(train_x, batch_size=5, mode=CPU_MODE)[0](0, 0.0, 0.25)
    assert step_cost == pytest.approx(cost, rel=1e-6)
    for p, old, g in zip(da.params, before, grads):
        np.testing.assert_allclose(p.get_value(), old - 0.25 * g, rtol=1e-6, atol=1e-12)


def test_pretraining_refuses_inputs_outside_unit_interval_and_finetuning_bad_labels(float32):
    sda = SdA(np.random.RandomState(0), n_ins=4, hidden_layers_sizes=[3], n_outs=2, corruption_levels=[0.1])
    data = np.full((10, 4), 255.0, dtype="float32")
    with pytest.raises(ValueError, match=r"train_set_x must hold values in \[0, 1\].*255"):
        sda.pretraining_functions(shared_dataset((data, np.zeros(10, np.int32)))[0], 5, "FAST_COMPILE")
    good = shared_dataset((data / 255, np.zeros(10, np.int32)))
    bad = shared_dataset((data / 255, np.full(10, 2, np.int32)))
    with pytest.raises(ValueError, match=r"valid labels must be in 0 \.\. 1, found 2"):
        sda.build_finetune_functions([good, bad, good], 5, 0.1, "FAST_COMPILE")
    with pytest.raises(ValueError, match="batch_size=11"):
        sda.pretraining_functions(good[0], 11, "FAST_COMPILE")


def test_torch_reference_matches_the_numpy_reference():
    torch = pytest.importorskip("torch")
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from numpy_reference import dA_cost_and_grads
    from torch_sda import dA_cost
    rng = np.random.RandomState(13)
    x, mask = rng.uniform(size=(9, 13)), (rng.uniform(size=(9, 13)) > 0.3).astype(float)
    W, b, bp = rng.uniform(-0.5, 0.5, size=(13, 7)), rng.normal(size=7), rng.normal(size=13)
    params = [torch.tensor(v, requires_grad=True) for v in (W, b, bp)]
    cost = dA_cost(torch.tensor(x), torch.tensor(mask), *params)
    cost.backward()
    want_cost, want_grads = dA_cost_and_grads(x, mask, W, b, bp)
    assert cost.item() == pytest.approx(want_cost, rel=1e-10)
    for p, g in zip(params, want_grads):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-5, atol=1e-12)


def test_dA_training_function_lowers_the_cost(float32):
    rng = np.random.RandomState(14)
    prototypes = (rng.uniform(size=(3, 16)) > 0.5).astype("float32")
    data, _ = shared_dataset((prototypes[rng.randint(3, size=200)], np.zeros(200, np.int32)))
    da = dA(rng, n_visible=16, n_hidden=8)
    step = da.training_function(data, 10, CPU_MODE)
    first = np.mean([step(i, 0.2, 0.1) for i in range(20)])
    for _ in range(10):
        last = np.mean([step(i, 0.2, 0.1) for i in range(20)])
    assert last < 0.8 * first


def test_train_dA_writes_filters_for_each_corruption_level(tmp_path, float32):
    from sda.dA import train_dA
    rng = np.random.RandomState(15)
    prototypes = (rng.uniform(size=(3, 16)) > 0.5).astype("float32")
    data = shared_dataset((prototypes[rng.randint(3, size=200)], np.zeros(200, np.int32)))
    trained = train_dA(learning_rate=0.1, training_epochs=4, batch_size=10, n_hidden=8,
                       corruption_levels=(0.0, 0.3), output_folder=tmp_path, mode=CPU_MODE,
                       datasets=[data] * 3, progress=False, log=None)
    for level in (0.0, 0.3):
        costs = trained[level][1].costs[0]
        assert costs[-1] < costs[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filters_corruption_0.png", "filters_corruption_30.png"]


@pytest.mark.parametrize("make", [
    lambda: dA(np.random.RandomState(0), n_visible=10 ** 6, n_hidden=10 ** 9),
    lambda: HiddenLayer(np.random.RandomState(0), pt.matrix(), 10 ** 6, 10 ** 9),
    lambda: LogisticRegression(pt.matrix(), 10 ** 6, 10 ** 9),
    lambda: SdA(np.random.RandomState(0), n_ins=10 ** 6, hidden_layers_sizes=[10 ** 9], n_outs=2, corruption_levels=[0.1]),
])
def test_weights_that_cannot_fit_are_refused_before_allocating(make, float32):
    with pytest.raises(ValueError, match="weight matrix would need .* GiB, more than the"):
        make()


@pytest.mark.parametrize("size, error, message", [
    (10 ** 400, ValueError, "at most 2,147,483,647, got an integer of about 10\\*\\*400"),
    (2 ** 31, ValueError, "at most 2,147,483,647, got 2147483648"),
    (np.int64(3), None, None), (np.uint8(3), None, None),
    (3.0, TypeError, "must be an integer"), (True, TypeError, "must be an integer"), ("3", TypeError, "integer"),
])
def test_layer_sizes_are_plain_counts(size, error, message, float32):
    if error is None:
        assert dA(np.random.RandomState(0), n_visible=4, n_hidden=size).n_hidden == 3
        return
    with pytest.raises(error, match=message):
        dA(np.random.RandomState(0), n_visible=4, n_hidden=size)
