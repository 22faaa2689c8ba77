"""The maths of the paper's noises and of the fine-tuning regularisers."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomType

from support import CPU_MODE
from sda.dA import dA
from sda.datasets import shared_dataset
from sda.SdA import SdA, _dropout
from sda.steps import max_norm

MODE = "FAST_COMPILE"


def corrupt(corruption_type, data, level):
    da = dA(np.random.RandomState(0), n_visible=data.shape[1], n_hidden=2, corruption_type=corruption_type)
    x = pt.matrix("x")
    return pytensor.function([x], da.get_corrupted_input(x, level), updates=[da.rng_update], mode=MODE)(data)


def test_salt_and_pepper_sets_a_fraction_to_zero_or_one_half_each(float64):
    data = np.full((400, 250), 0.5)
    out = corrupt("salt_and_pepper", data, 0.3)
    changed = out != 0.5
    assert changed.mean() == pytest.approx(0.3, abs=0.01)
    assert set(np.unique(out[changed])) == {0.0, 1.0}
    assert (out[changed] == 1).mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(corrupt("salt_and_pepper", data, 0.0), data)


def test_gaussian_noise_adds_zero_mean_noise_of_the_given_standard_deviation(float64):
    data = np.random.RandomState(1).uniform(size=(400, 250))
    noise = corrupt("gaussian", data, 0.4) - data
    assert noise.mean() == pytest.approx(0, abs=0.005)
    assert noise.std() == pytest.approx(0.4, rel=0.01)


def test_unknown_noise_and_impossible_levels_are_refused():
    with pytest.raises(ValueError, match="corruption_type must be one of"):
        dA(np.random.RandomState(0), n_visible=3, n_hidden=2, corruption_type="blur")
    with pytest.raises(ValueError, match="must be in"):
        SdA(np.random.RandomState(0), n_ins=4, hidden_layers_sizes=[3], corruption_levels=[1.5])
    SdA(np.random.RandomState(0), n_ins=4, hidden_layers_sizes=[3], corruption_levels=[1.5],
        corruption_type="gaussian")  # a standard deviation may exceed 1


def finetune(float_data, **regularisers):
    rng = np.random.RandomState(3)
    x = float_data
    y = (x[:, 0] > 0.5).astype(np.int32)
    datasets = [shared_dataset((x, y))] * 3
    sda = SdA(rng, n_ins=x.shape[1], hidden_layers_sizes=[30, 20], n_outs=2, corruption_levels=[0.1, 0.1])
    return sda, sda.build_finetune_functions(datasets, 20, 0.5, CPU_MODE, **regularisers)


def test_dropout_zeroes_a_share_p_and_keeps_the_expected_activation(float64):
    h = pt.matrix("h")
    rng = pytensor.tensor.random.shared_rng(seed=0)
    next_rng, dropped = _dropout(rng, h, 0.4)
    f = pytensor.function([h], dropped, updates=[(rng, next_rng)], mode=MODE)
    data = np.random.RandomState(1).uniform(0.1, 1, size=(200, 50))
    draws = np.array([f(data) for _ in range(200)])
    assert (draws == 0).mean() == pytest.approx(0.4, abs=0.005)
    kept = draws != 0
    np.testing.assert_allclose(draws[kept], np.broadcast_to(data / 0.6, draws.shape)[kept])  # inverted scaling
    # E[h * m / (1 - p)] = h: over 200 draws of 10,000 units, the ratio of means is 1 within ~0.0015
    assert (draws.mean(axis=0) / data).mean() == pytest.approx(1, abs=0.006)


def test_dropout_is_drawn_afresh_while_training_and_off_at_evaluation(float64):
    sda = SdA(np.random.RandomState(0), n_ins=6, hidden_layers_sizes=[4], n_outs=2, corruption_levels=[0.1])
    sda.logLayer.W.set_value(np.random.RandomState(2).normal(size=(4, 2)))
    cost, updates = sda._training_cost(0.0, 0.5, 0.5)
    assert [u[0] for u in updates] == [sda.dropout_rng]
    f = pytensor.function([sda.x, sda.y], cost, updates=updates, mode=MODE)
    data, labels = np.random.RandomState(1).uniform(size=(3, 6)), np.array([0, 1, 0], np.int32)
    assert len({round(float(f(data, labels)), 12) for _ in range(20)}) > 1  # a fresh mask at every call
    # evaluation is the clean network: no random draw behind the errors
    assert not any(isinstance(v.type, RandomType) for v in ancestors([sda.errors]))
    assert any(isinstance(v.type, RandomType) for v in ancestors([cost]))


def test_max_norm_bounds_every_units_incoming_weights_after_a_step(float64):
    W = pytensor.shared(np.random.RandomState(0).normal(scale=3.0, size=(8, 5)))
    clipped = pytensor.function([], max_norm(W, 2.0), mode=MODE)()
    norms = np.linalg.norm(clipped, axis=0)
    assert norms.max() <= 2.0 + 1e-12
    small = np.linalg.norm(W.get_value(), axis=0) <= 2.0
    np.testing.assert_allclose(clipped[:, small], W.get_value()[:, small])  # already inside: unchanged
    # directions are kept
    np.testing.assert_allclose(clipped / norms, W.get_value() / np.linalg.norm(W.get_value(), axis=0))

    data = np.random.RandomState(4).uniform(size=(100, 12))
    sda, (train, _, _) = finetune(data, max_norm=0.5)
    for i in range(5):
        train(i)
    for W in [layer.W for layer in sda.sigmoid_layers] + [sda.logLayer.W]:
        assert np.linalg.norm(W.get_value(), axis=0).max() <= 0.5 + 1e-9


def test_weight_decay_adds_half_lambda_times_the_squared_weights(float64):
    data = np.random.RandomState(4).uniform(size=(40, 12))
    sda, (train_plain, _, _) = finetune(data)
    weights = [layer.W for layer in sda.sigmoid_layers] + [sda.logLayer.W]
    penalty = 0.5 * 0.01 * sum(np.sum(W.get_value() ** 2) for W in weights)
    sda2, (train_decay, _, _) = finetune(data, weight_decay=0.01)
    before = [W.get_value() for W in weights]
    got_plain, got_decay = float(train_plain(0)), float(train_decay(0))
    assert got_decay - got_plain == pytest.approx(penalty, rel=1e-9)
    # and the step shrinks the weights by lr * lambda * W beyond the plain step
    plain_after = [W.get_value() for W in weights]
    decayed_after = [layer.W.get_value() for layer in sda2.sigmoid_layers] + [sda2.logLayer.W.get_value()]
    for b, p, d in zip(before, plain_after, decayed_after):
        np.testing.assert_allclose(d, p - 0.5 * 0.01 * b, atol=1e-12)


def test_dropout_training_learns_a_separable_problem(float32):
    data = np.random.RandomState(5).uniform(size=(200, 12)).astype("float32")
    _, (train, valid, _) = finetune(data, dropout_input=0.1, dropout_hidden=0.2, max_norm=3.0)
    before = float(valid())
    for _ in range(60):
        for i in range(train.n_batches):
            train(i)
    assert float(valid()) < min(before, 0.2)


@pytest.mark.filterwarnings("ignore:SdAClassifier did not learn:sklearn.exceptions.ConvergenceWarning")  # 3 epochs
def test_every_regulariser_reaches_the_run_from_the_estimator_and_the_command_line(tiny_mnist_dir, tmp_path):
    pytest.importorskip("sklearn")
    from sda.cli import main
    from sda.estimators import SdAClassifier
    from sda.persistence import load_model
    from test_cli import TINY

    X = np.random.RandomState(0).uniform(size=(120, 10))
    y = (X[:, 0] > 0.5).astype(int)
    clf = SdAClassifier(hidden_layer_sizes=(8,), corruption_levels=0.2, corruption_type="salt_and_pepper",
                        pretraining_epochs=1, training_epochs=3, finetune_lr=1.0, finetune_max_norm=0.25,
                        finetune_dropout_hidden=0.3, finetune_weight_decay=1e-3, finetune_lr_schedule="linear",
                        mode="FAST_COMPILE", random_state=0).fit(X, y)
    weights = [layer.W for layer in clf.model_.sigmoid_layers] + [clf.model_.logLayer.W]
    assert all(np.linalg.norm(W.get_value(), axis=0).max() <= 0.25 + 1e-6 for W in weights)
    assert clf.model_.corruption_type == "salt_and_pepper"

    out = tmp_path / "out"
    assert main(TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--no-pictures",
                        "--finetune-max-norm", "0.25", "--corruption-type", "gaussian"]) == 0
    model, header = load_model(out / "best_model.safetensors")
    assert header["config"]["corruption_type"] == "gaussian"
    assert all(np.linalg.norm(W.get_value(), axis=0).max() <= 0.25 + 1e-6
               for W in [layer.W for layer in model.sigmoid_layers] + [model.logLayer.W])


def test_learning_rate_schedules():
    from sda.run import finetune_learning_rate
    linear = {"finetune_lr": 0.1, "finetune_lr_decay": 1.0, "finetune_lr_schedule": "linear", "training_epochs": 4}
    assert [finetune_learning_rate(linear, e) for e in range(5)] == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0])
    exponential = dict(linear, finetune_lr_schedule="exponential", finetune_lr_decay=0.5)
    assert [finetune_learning_rate(exponential, e) for e in range(3)] == pytest.approx([0.1, 0.05, 0.025])
