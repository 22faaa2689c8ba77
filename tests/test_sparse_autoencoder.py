"""UFLDL's sparse autoencoder, full-batch L-BFGS, and what they add to the SdA and its runs:
per-layer criteria, optimizer "lbfgs", pretrain_size and finetune_layers."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.optimize
from pytensor.gradient import zero_grad

import sda.run
import sda.training
from numpy_reference import sparse_ae_cost_and_grads
from sda.cli import main
from sda.dA import dA
from sda.full_batch import LBFGS_MEMORY, FullBatchObjective, minimize_lbfgs
from sda.persistence import ModelFileError, load_model, read_tensor_file, write_tensor_file
from sda.run import TUTORIAL, train_SdA, validate_config
from sda.SdA import SdA
from sda.sparse_autoencoder import SparseAutoencoder
from sda.training import fit_lbfgs
from test_models import numeric_gradient_check

MODE = "FAST_COMPILE"  # every graph here is tiny: compiling dominates, so compile as little as possible
RHO, BETA, LAM = 0.1, 3.0, 3e-3


# --- the sparse autoencoder's maths ---

def sparse_problem(seed=0, m=9, n_visible=7, n_hidden=5, **settings):
    """(inputs, sparse autoencoder with random biases) in the current floatX."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(size=(m, n_visible))
    sa = SparseAutoencoder(rng, n_visible=n_visible, n_hidden=n_hidden, sparsity_target=RHO,
                           sparsity_weight=BETA, weight_decay=LAM, **settings)
    sa.b.set_value(rng.normal(scale=0.5, size=n_hidden))
    sa.b_prime.set_value(rng.normal(scale=0.5, size=n_visible))
    return x, sa


def values(sa):
    return [p.get_value() for p in sa.params]


def test_cost_and_gradients_equal_ufldls_backpropagation(float64):
    x, sa = sparse_problem()
    cost = sa.cost(sa.x)
    f = pytensor.function([], [cost, *pt.grad(cost, sa.params)], givens={sa.x: pytensor.shared(x)}, mode=MODE)
    got_cost, *got_grads = f()
    want_cost, want_grads = sparse_ae_cost_and_grads(x, *values(sa), RHO, BETA, LAM)
    assert got_cost == pytest.approx(want_cost, rel=1e-12)
    for name, got, want in zip(("W", "b", "W_prime", "b_prime"), got_grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14, err_msg=name)


def test_cost_gradient_matches_finite_differences(float64):
    # independent of the reference above: a shared mistake in both would not pass this
    x, sa = sparse_problem(seed=1)
    cost = sa.cost(sa.x)
    givens = {sa.x: pytensor.shared(x)}
    cost_fn = pytensor.function([], cost, givens=givens, mode=MODE)
    grad_fns = [pytensor.function([], g, givens=givens, mode=MODE) for g in pt.grad(cost, sa.params)]
    numeric_gradient_check(cost_fn, grad_fns, sa.params, np.random.RandomState(2), n_entries=5)


def sparsity_penalty_at(sa, x):
    return float(pytensor.function([], sa.sparsity_penalty(sa.get_hidden_values(sa.x)),
                                   givens={sa.x: pytensor.shared(x)}, mode=MODE)())


def test_sparsity_penalty_is_zero_exactly_at_the_target_activation(float64):
    x, sa = sparse_problem(seed=3)
    # with no weights every hidden unit outputs s(b) for every example: its mean activation is s(b)
    sa.W.set_value(np.zeros_like(sa.W.get_value()))
    sa.W_prime.set_value(np.zeros_like(sa.W_prime.get_value()))
    sa.b.set_value(np.full(5, np.log(RHO / (1 - RHO))))  # s(b) = rho
    assert sparsity_penalty_at(sa, x) == pytest.approx(0, abs=1e-12)
    sa.b.set_value(np.full(5, np.log(RHO / (1 - RHO))) + np.array([0, 0, 0.3, 0, 0]))  # one unit off target
    rho_hat = 1 / (1 + np.exp(-sa.b.get_value()[2]))
    kl = RHO * np.log(RHO / rho_hat) + (1 - RHO) * np.log((1 - RHO) / (1 - rho_hat))
    assert kl > 0 and sparsity_penalty_at(sa, x) == pytest.approx(kl, rel=1e-10)


def test_cost_adds_beta_times_the_sparsity_penalty(float64):
    x, sa = sparse_problem(seed=4)
    with_beta = pytensor.function([], sa.cost(sa.x), givens={sa.x: pytensor.shared(x)}, mode=MODE)()
    sa.sparsity_weight = 0.0
    without = pytensor.function([], sa.cost(sa.x), givens={sa.x: pytensor.shared(x)}, mode=MODE)()
    assert with_beta - without == pytest.approx(BETA * sparsity_penalty_at(sa, x), rel=1e-10)
    assert sparsity_penalty_at(sa, x) > 0


def test_a_dead_unit_costs_a_large_finite_penalty(float64):
    x, sa = sparse_problem(seed=5)
    sa.b.set_value(np.array([-1000.0, 0, 0, 0, 0]))  # unit 0 never fires: its mean activation is 0
    penalty = sparsity_penalty_at(sa, x)
    # the clip to 1e-6 bounds the dead unit's KL term: rho log(rho / 1e-6) + (1 - rho) log(1 - rho) ~ 1.06
    assert np.isfinite(penalty) and penalty > RHO * np.log(RHO / 1e-6) + (1 - RHO) * np.log(1 - RHO) - 1e-9


def test_sparsity_target_must_be_strictly_inside_0_1():
    for rho in (0.0, 1.0):
        with pytest.raises(ValueError, match="sparsity_target"):
            SparseAutoencoder(np.random.RandomState(0), n_visible=4, n_hidden=3, sparsity_target=rho)


# --- FullBatchObjective and minimize_lbfgs ---

def sparse_objective(x, sa):
    return FullBatchObjective(sa.cost(sa.x), sa.params, {sa.x: pytensor.shared(x)}, MODE)


def test_objective_get_and_set_round_trip_in_parameter_order(float64):
    x, sa = sparse_problem()
    objective = sparse_objective(x, sa)
    before = values(sa)
    theta = objective.get()
    np.testing.assert_array_equal(theta, np.concatenate([v.ravel() for v in before]))  # W, b, W', b' in turn
    objective.set(theta + np.arange(theta.size))
    np.testing.assert_array_equal(objective.get(), theta + np.arange(theta.size))
    np.testing.assert_array_equal(sa.b.get_value(), before[1] + np.arange(35, 40))  # b starts after W's 7 x 5


def reference_objective(x, shapes):
    """The numpy reference's cost and gradient as a function of the flat vector theta."""
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def f(theta):
        parts = [theta[a:b].reshape(s) for a, b, s in zip(bounds, bounds[1:], shapes)]
        cost, grads = sparse_ae_cost_and_grads(x, *parts, RHO, BETA, LAM)
        return cost, np.concatenate([g.ravel() for g in grads])
    return f


def test_objective_returns_the_cost_and_its_gradient_in_theta(float64):
    x, sa = sparse_problem(seed=6)
    objective = sparse_objective(x, sa)
    rng = np.random.RandomState(7)
    theta = objective.get() + rng.normal(scale=0.1, size=objective.get().size)
    cost, grad = objective(theta)
    want, _ = reference_objective(x, [p.get_value().shape for p in sa.params])(theta)
    assert cost == pytest.approx(want, rel=1e-12)
    eps = 1e-6
    for i in rng.choice(theta.size, size=8, replace=False):
        step = np.zeros_like(theta)
        step[i] = eps
        numeric = (objective(theta + step)[0] - objective(theta - step)[0]) / (2 * eps)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), i


def test_minimize_lbfgs_lowers_the_cost_and_equals_scipy_on_the_reference(float64):
    rng = np.random.RandomState(8)
    x = rng.uniform(size=(40, 12))
    sa = SparseAutoencoder(rng, n_visible=12, n_hidden=5, sparsity_target=RHO, sparsity_weight=BETA,
                           weight_decay=LAM)
    objective = sparse_objective(x, sa)
    start = objective.get()
    start_cost = objective(start)[0]
    costs = []
    result = minimize_lbfgs(objective, 15, costs.append)
    assert result.fun < 0.5 * start_cost and len(costs) == result.nit == 15
    np.testing.assert_array_equal(objective.get(), result.x)  # the parameters end at scipy's answer
    want = scipy.optimize.minimize(reference_objective(x, [p.get_value().shape for p in sa.params]), start,
                                   jac=True, method="L-BFGS-B", options={"maxiter": 15, "maxcor": LBFGS_MEMORY})
    assert result.fun == pytest.approx(want.fun, rel=1e-9)
    np.testing.assert_allclose(result.x, want.x, rtol=1e-6, atol=1e-8)


def test_on_iteration_sees_the_parameters_of_the_cost_it_is_given(float64):
    x, sa = sparse_problem(seed=9)
    objective = sparse_objective(x, sa)
    seen = []
    minimize_lbfgs(objective, 5, lambda cost: seen.append((cost, objective.function()[0])))
    assert len(seen) == 5
    for reported, at_current_parameters in seen:
        assert reported == pytest.approx(at_current_parameters, rel=1e-12)


def test_parameters_end_at_scipys_answer_when_its_line_search_gives_up(float64):
    # a gradient that hides part of the cost: no step along it lowers the cost, so scipy's line
    # search fails after trying points, and returns the start, not the last point it tried
    p = pytensor.shared(np.full(3, -0.25), name="p")
    objective = FullBatchObjective(pt.sum(pt.sqr(p)) + zero_grad(pt.sum(p)), [p], {}, MODE)
    result = minimize_lbfgs(objective, 10)
    assert result.nit == 0 and objective.n_evaluations > 1  # the failure this test is about
    np.testing.assert_array_equal(p.get_value(), result.x)
    np.testing.assert_array_equal(result.x, np.full(3, -0.25))


def test_fit_lbfgs_ends_with_the_parameters_of_the_best_validation_error(float64):
    x, sa = sparse_problem(seed=12)
    objective = sparse_objective(x, sa)
    scripted = iter([0.5, 0.3, 0.2, 0.4, 0.25])  # the best at the third iteration, then worse
    at_validation = []

    def validate():
        at_validation.append(values(sa))
        return next(scripted)
    result = fit_lbfgs(objective, validate, n_iterations=5, params=sa.params, log=None)
    assert (result.best_validation_error, result.best_iteration, result.epochs) == (0.2, 3, 5)
    assert not np.array_equal(at_validation[2][0], at_validation[4][0])  # L-BFGS moved on after the best
    for now, best in zip(values(sa), at_validation[2]):
        np.testing.assert_array_equal(now, best)


# --- the SdA with per-layer criteria ---

def mixed_sda(seed=0):
    return SdA(np.random.RandomState(seed), n_ins=20, hidden_layers_sizes=[15, 6], n_outs=3,
               corruption_levels=[0.0, 0.2], criteria=["sparse", "denoising"], sparsity_target=0.05,
               sparsity_weight=2.0, sparse_weight_decay=1e-3)


def test_each_layer_gets_the_autoencoder_its_criterion_names(float32):
    model = mixed_sda()
    assert type(model.dA_layers[0]) is SparseAutoencoder and type(model.dA_layers[1]) is dA
    sparse = model.dA_layers[0]
    assert (sparse.sparsity_target, sparse.sparsity_weight, sparse.weight_decay) == (0.05, 2.0, 1e-3)
    for autoencoder, layer in zip(model.dA_layers, model.sigmoid_layers):
        assert autoencoder.W is layer.W and autoencoder.b is layer.b  # pretraining trains the MLP's weights
    # the sparse decoder is its own matrix, the denoising one the encoder's transpose
    assert sparse.W_prime.get_value().shape == (15, 20) and sparse.W_prime is not sparse.W


def test_sparse_layers_start_from_ufldls_initial_weights(float32):
    model = mixed_sda()
    bound = np.sqrt(6 / (20 + 15 + 1))
    for W in (model.sigmoid_layers[0].W.get_value(), model.dA_layers[0].W_prime.get_value()):
        # uniform in +-bound: all within it, and 300 draws come close to its edge
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.95 * bound
    # the denoising layer keeps the tutorial's 4 sqrt(6 / (n_in + n_out)), far wider than UFLDL's
    assert np.abs(model.sigmoid_layers[1].W.get_value()).max() > np.sqrt(6 / (15 + 6 + 1))


def test_saved_variables_have_the_shapes_the_saved_config_implies(float32):
    model = mixed_sda()
    shapes = [v.get_value().shape for v in model.saved_variables()]
    assert shapes == list(SdA.variable_shapes(model.saved_config()).values())
    assert shapes[-3:] == [(15, 20), (20,), (15,)]  # the sparse decoder's W' and b', the dA's b'


def outputs(model, X):
    """(top layer's codes, predicted labels) of ``X``, after giving the softmax random weights
    centred on these codes, so that the labels vary (the fresh softmax is all zeros)."""
    codes = model.encode(X, mode=MODE)
    W = np.random.RandomState(11).normal(size=model.logLayer.W.get_value().shape).astype("float32")
    model.logLayer.W.set_value(W)
    model.logLayer.b.set_value(-codes.mean(axis=0) @ W)
    predictions = model.predict_function(MODE)(X)
    assert len(set(predictions)) > 1
    return codes, predictions


def assert_same_outputs(model, X, codes, predictions):
    np.testing.assert_array_equal(model.encode(X, mode=MODE), codes)
    np.testing.assert_array_equal(model.predict_function(MODE)(X), predictions)


def test_save_and_load_keep_criteria_decoders_and_predictions(tmp_path, float32):
    model = mixed_sda()
    X = np.random.RandomState(10).uniform(size=(50, 20)).astype("float32")
    codes, predictions = outputs(model, X)
    model.save(tmp_path / "m.safetensors")
    loaded = SdA.load(tmp_path / "m.safetensors")
    assert loaded.criteria == ["sparse", "denoising"]
    assert loaded.dA_layers[0].sparsity_target == 0.05 and loaded.dA_layers[0].weight_decay == 1e-3
    for saved, restored in zip(model.saved_variables(), loaded.saved_variables()):
        np.testing.assert_array_equal(saved.get_value(), restored.get_value())
    assert_same_outputs(loaded, X, codes, predictions)


def test_a_model_file_without_criteria_is_refused_in_one_line(tmp_path, float32):
    model = SdA(np.random.RandomState(0), n_ins=20, hidden_layers_sizes=[15, 6], n_outs=3,
                corruption_levels=[0.1, 0.2])
    model.save(tmp_path / "m.safetensors")
    header, arrays = read_tensor_file(tmp_path / "m.safetensors", "sda-model")
    write_tensor_file(tmp_path / "old.safetensors", {**header, "config": {k: v for k, v in header["config"].items()
                                                              if k != "criteria"}}, arrays)
    with pytest.raises(ModelFileError, match="configuration is invalid: 'criteria'"):
        load_model(tmp_path / "old.safetensors")


# --- runs: optimizer "lbfgs", finetune_layers, pretrain_size ---

def tiny_data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(300, 30).astype("float32")
    y = (X[:, :10].mean(axis=1) > 0.5).astype("int32")
    return [(X[:200], y[:200]), (X[200:250], y[200:250]), (X[250:], y[250:])]


#: a tiny UFLDL-style run: sparse layers, L-BFGS for both phases
LBFGS_RUN = dict(hidden_layer_sizes=[10, 8], corruption_levels=[0.0, 0.0], criteria="sparse", optimizer="lbfgs",
                 pretraining_epochs=5, training_epochs=15, n_outs=2)
#: the same with minibatch SGD, as short as it gets
SGD_RUN = dict(LBFGS_RUN, optimizer="sgd", pretraining_epochs=2, training_epochs=2, pretrain_batch_size=20,
               finetune_batch_size=20, pretrain_lr=0.1, finetune_lr=0.1)


def tiny_run(datasets=None, **kwargs):
    settings = {**LBFGS_RUN, **kwargs}
    return train_SdA(datasets or tiny_data(), mode=MODE, progress=False, log=None, **settings)


def validation_error(model, datasets):
    X, y = datasets[1]
    return float(np.mean(model.predict_function(MODE)(X) != y))


@pytest.fixture(scope="module")
def lbfgs_run(tmp_path_factory):
    """One tiny L-BFGS run with an output directory, which several tests below look at."""
    out = tmp_path_factory.mktemp("lbfgs") / "out"
    return tiny_run(output_dir=out), out


def test_lbfgs_pretraining_lowers_each_layers_cost(lbfgs_run):
    run, _ = lbfgs_run
    assert [len(costs) for costs in run.pretraining.costs] == [5, 5]
    for costs in run.pretraining.costs:
        assert np.all(np.diff(costs) <= 0) and costs[-1] < 0.5 * costs[0]


def test_lbfgs_finetuning_records_one_history_entry_per_iteration(lbfgs_run):
    run, _ = lbfgs_run
    assert run.finetuning.epochs == 15
    assert [record["epoch"] for record in run.finetuning.history] == list(range(1, 16))
    assert all(record["validation_error"] is not None for record in run.finetuning.history)


def test_lbfgs_run_returns_the_parameters_of_the_best_validation_error(lbfgs_run):
    run, _ = lbfgs_run
    errors = [record["validation_error"] for record in run.finetuning.history]
    assert run.finetuning.best_validation_error == min(errors)
    assert validation_error(run.model, tiny_data()) == run.finetuning.best_validation_error


def test_lbfgs_run_writes_results_and_the_best_model(lbfgs_run):
    run, out = lbfgs_run
    results = json.loads((out / "results.json").read_text())
    assert results["finetuning"]["best_validation_error"] == run.finetuning.best_validation_error
    assert results["config"]["optimizer"] == "lbfgs" and len(results["finetuning"]["history"]) == 15
    best, header = load_model(out / "best_model.safetensors")
    assert header["training_state"]["validation_error"] == run.finetuning.best_validation_error
    assert validation_error(best, tiny_data()) == run.finetuning.best_validation_error


@pytest.mark.parametrize("stop_at", [(0, 3), (1, 2), (None, 4)],
                         ids=["pretraining-layer-0", "pretraining-layer-1", "finetuning"])
def test_an_interrupted_lbfgs_run_resumes_to_the_full_number_of_iterations(stop_at, tmp_path):
    class Stop(Exception):
        pass

    def stop(pretrain, state):
        layer, iterations = stop_at
        if layer is None and state is not None and state.epoch == iterations:
            raise Stop
        if layer is not None and state is None and [len(c) for c in pretrain.costs] == [5] * layer + [iterations]:
            raise Stop
    with pytest.raises(Stop):
        tiny_run(output_dir=tmp_path, on_epoch_end=stop)
    assert not (tmp_path / "results.json").exists()
    run = train_SdA(tiny_data(), output_dir=tmp_path, resume=True, mode=MODE, progress=False, log=None)
    assert [len(costs) for costs in run.pretraining.costs] == [5, 5]
    assert [record["epoch"] for record in run.finetuning.history] == list(range(1, 16))
    assert json.loads((tmp_path / "results.json").read_text())["finetuning"]["epochs"] == 15
    assert validation_error(run.model, tiny_data()) == run.finetuning.best_validation_error


def run_recording_pretrained(monkeypatch, datasets, **config):
    """(run, every autoencoder parameter as pretraining left it): the model ``train_SdA`` builds is
    caught as it is built, and read after the last pretraining epoch."""
    built, pretrained = [], []

    def build(*args, **kwargs):
        built.append(SdA(*args, **kwargs))
        return built[-1]
    monkeypatch.setattr(sda.run, "SdA", build)

    def record(pretrain, state):
        if state is None:
            pretrained[:] = [p.get_value() for layer in built[-1].dA_layers for p in layer.params]
    return tiny_run(datasets, on_epoch_end=record, **config), pretrained


@pytest.mark.parametrize("config, layers", [(LBFGS_RUN, "top"), (SGD_RUN, "top"), (LBFGS_RUN, "all")],
                         ids=["lbfgs-top", "sgd-top", "lbfgs-all"])
def test_finetuning_trains_only_the_layers_it_names(config, layers, monkeypatch):
    run, pretrained = run_recording_pretrained(monkeypatch, tiny_data(), **{**config, "finetune_layers": layers})
    hidden = [p.get_value() for layer in run.model.sigmoid_layers for p in layer.params]
    after_pretraining = pretrained[:2] + pretrained[4:6]  # W and b of each sparse layer (then W', b')
    unchanged = [np.array_equal(now, then) for now, then in zip(hidden, after_pretraining)]
    assert unchanged == [layers == "top"] * 4
    assert np.abs(run.model.logLayer.W.get_value()).max() > 0  # the softmax starts at zero: it learnt


@pytest.mark.parametrize("config", [LBFGS_RUN, SGD_RUN], ids=["lbfgs", "sgd"])
def test_pretraining_sees_only_the_first_pretrain_size_rows(config, monkeypatch):
    clean = tiny_data()
    (X, y), valid, test = clean
    garbled = [(np.concatenate([X[:120], 1 - X[120:]]), y), valid, test]  # other rows, still in [0, 1]
    short = dict(config, training_epochs=1, pretrain_size=120)
    _, on_clean = run_recording_pretrained(monkeypatch, clean, **short)
    _, on_garbled = run_recording_pretrained(monkeypatch, garbled, **short)
    _, on_all_garbled = run_recording_pretrained(monkeypatch, garbled, **dict(short, pretrain_size=0))
    assert len(on_clean) == 8
    for a, b in zip(on_clean, on_garbled):
        np.testing.assert_array_equal(a, b)
    # without the limit the garbled rows do change pretraining: the comparison above means something
    assert not all(np.array_equal(a, b) for a, b in zip(on_clean, on_all_garbled))


# --- refusals ---

def config(**changes):
    return {**TUTORIAL, **changes}


#: (changes to the tutorial's configuration, what the error says)
REFUSALS = [
    (dict(optimizer="lbfgs", finetune_momentum=0.9),
     "finetune_momentum belongs to minibatch SGD, not to optimizer lbfgs"),
    (dict(optimizer="lbfgs", finetune_dropout_input=0.1, finetune_dropout_hidden=0.5),
     "finetune_dropout_input, finetune_dropout_hidden belong to minibatch SGD"),
    (dict(optimizer="lbfgs", finetune_corruption=0.1), "finetune_corruption belongs to minibatch SGD"),
    (dict(optimizer="lbfgs", finetune_max_norm=3.0), "finetune_max_norm belongs to minibatch SGD"),
    (dict(optimizer="adam"), "optimizer must be one of sgd, lbfgs, got 'adam'"),
    (dict(finetune_layers="middle"), "finetune_layers must be one of all, top"),
    (dict(criteria=["sparse", "sparse"]), "criteria must be one of denoising, sparse"),  # for three hidden layers
    (dict(criteria="contractive"), "criteria must be one of denoising, sparse"),
    (dict(sparsity_target=0.0), "sparsity_target"),
    (dict(sparsity_target=1.0), "sparsity_target"),
    (dict(sparsity_weight=-1.0), "sparsity_weight"),
    (dict(pretrain_size=-1), "pretrain_size"),
]


@pytest.mark.parametrize("changes, message", REFUSALS,
                         ids=[",".join(f"{k}={v}" for k, v in changes.items()) for changes, _ in REFUSALS])
def test_validate_config_refuses(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_config(config(**changes))


def test_lbfgs_without_sgds_settings_is_accepted():
    accepted = validate_config(config(optimizer="lbfgs", criteria=["sparse", "denoising", "sparse"]))
    assert accepted["optimizer"] == "lbfgs"


def test_a_pretrain_size_beyond_the_training_set_is_refused():
    with pytest.raises(ValueError, match="pretrain_size is 201, more than the 200 training examples"):
        tiny_run(pretrain_size=201)


#: a data folder that does not exist: a refusal that did not happen ends in a data error, not in training
NO_DATA = ["--data-dir", "/nonexistent/sda-test-data"]


def cli_error(capsys, *flags) -> str:
    """The one line the command line prints when it refuses ``flags`` (exit status 2)."""
    assert main([*flags, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_command_line_names_the_flags_lbfgs_refuses(capsys):
    err = cli_error(capsys, *NO_DATA, "--optimizer", "lbfgs", "--finetune-momentum", "0.9",
                    "--finetune-dropout-hidden", "0.5")
    assert "--finetune-momentum, --finetune-dropout-hidden belong to minibatch SGD, not to --optimizer lbfgs" in err


def test_the_command_line_names_criteria_of_the_wrong_length(capsys):
    err = cli_error(capsys, *NO_DATA, "--hidden-layers", "12", "8", "--corruption", "0.1", "0.2",
                    "--criteria", "sparse", "denoising", "sparse")
    assert "--criteria must be one of" in err and "(2)" in err


def test_the_command_line_refuses_a_pretrain_size_beyond_the_data(capsys, tiny_mnist_dir, tmp_path):
    from test_cli import TINY
    err = cli_error(capsys, *TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir", str(tmp_path / "out"),
                    "--pretrain-size", "251")
    assert "--pretrain-size is 251, more than the 250 training examples" in err


def test_an_unknown_optimizer_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "sda.SdA", "--optimizer", "adam"], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 2
    assert "invalid choice: 'adam'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_ufldl_preset_is_a_valid_lbfgs_configuration():
    from sda.run import PRESETS
    ufldl = validate_config(PRESETS["ufldl"])
    assert (ufldl["criteria"], ufldl["optimizer"], ufldl["hidden_layer_sizes"]) == ("sparse", "lbfgs", [200, 200])
    assert (ufldl["sparsity_target"], ufldl["sparsity_weight"], ufldl["sparse_weight_decay"]) == (RHO, BETA, LAM)


def test_the_new_flags_set_the_new_keys():
    from sda.cli import build_parser, config_from_args
    args = build_parser().parse_args(["--criteria", "sparse", "denoising", "--sparsity-target", "0.05",
                                      "--sparsity-weight", "2", "--sparse-weight-decay", "1e-4", "--optimizer", "lbfgs",
                                      "--pretrain-size", "100", "--finetune-layers", "top"])
    got = config_from_args(args)
    assert {k: got[k] for k in ("criteria", "sparsity_target", "sparsity_weight", "sparse_weight_decay", "optimizer",
                                "pretrain_size", "finetune_layers")} == {
        "criteria": ["sparse", "denoising"], "sparsity_target": 0.05, "sparsity_weight": 2.0,
        "sparse_weight_decay": 1e-4, "optimizer": "lbfgs", "pretrain_size": 100, "finetune_layers": "top"}
    # one name serves every layer
    assert config_from_args(build_parser().parse_args(["--criteria", "sparse"]))["criteria"] == "sparse"


# --- resumes, divergence, bad values and Ctrl-C under L-BFGS and the sparse criterion ---

def test_a_layer_where_lbfgs_converged_is_not_trained_again_on_resume(tmp_path, monkeypatch):
    # a strong weight decay makes each layer's cost well conditioned: both meet scipy's gradient
    # tolerance within a few dozen of their 400 iterations on these data
    data, out, settings = tiny_data(), tmp_path / "out", dict(pretraining_epochs=400, training_epochs=15,
                                                               sparse_weight_decay=0.3)
    first = tiny_run(data, output_dir=out, **settings)
    done = [len(costs) for costs in first.pretraining.costs]
    assert max(done) < 400 and first.pretraining.converged == [0, 1]
    weights = [p.get_value().copy() for p in first.model.saved_variables()]
    started = []  # a converged layer restarted would stop at once, unchanged: count the starts instead
    monkeypatch.setattr(sda.training, "minimize_lbfgs", lambda *args: started.append(args) or minimize_lbfgs(*args))
    again = tiny_run(data, output_dir=out, resume=True, **settings)
    assert started == [] and [len(costs) for costs in again.pretraining.costs] == done
    for before, after in zip(weights, again.model.saved_variables()):
        np.testing.assert_array_equal(before, after.get_value())


@pytest.mark.filterwarnings("ignore:divide by zero")  # the division by zero is the point
def test_an_infinite_cost_stops_lbfgs_as_a_divergence(float64):
    from sda.training import DivergenceError
    w = pytensor.shared(np.ones(3), name="w")
    objective = FullBatchObjective(pt.sum(w) / pt.constant(0.0), [w], {}, MODE)
    with pytest.raises(DivergenceError, match="the cost became (inf|nan)"):
        fit_lbfgs(objective, lambda: 0.5, n_iterations=3, params=[w], log=None)


@pytest.mark.parametrize("key", ["sparsity_weight", "sparse_weight_decay", "finetune_weight_decay"])
def test_a_penalty_weight_beyond_float32_is_refused(key):
    with pytest.raises(ValueError, match=f"{key} must be at most 1e\\+30"):
        validate_config({**TUTORIAL, **LBFGS_RUN, key: 1e300})


def test_criteria_given_per_layer_equal_one_name_on_resume(tmp_path):
    data, out = tiny_data(), tmp_path / "out"
    tiny_run(data, output_dir=out, pretraining_epochs=2, training_epochs=2)
    run = tiny_run(data, output_dir=out, resume=True, pretraining_epochs=2, training_epochs=2,
                   criteria=["sparse", "sparse"])
    assert run.results["config"]["criteria"] == "sparse"


def test_ctrl_c_says_in_one_line_what_was_kept(monkeypatch, capsys, tmp_path):
    import sda.cli

    def interrupted(args):
        args.output_dir = tmp_path
        raise KeyboardInterrupt

    monkeypatch.setattr(sda.cli, "train", interrupted)
    assert main(["--preset", "quick"]) == 130
    assert capsys.readouterr().err == "sda: interrupted; nothing was saved\n"
