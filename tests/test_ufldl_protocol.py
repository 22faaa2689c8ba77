"""UFLDL's protocol as its exercise ran it, one difference at a time: the last iterate kept, the
softmax trained alone first, fine-tuning's weight decay on the softmax only, minFunc's L-BFGS
memory, and no validation set."""

import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import sda.full_batch
from sda.cli import build_parser, main
from sda.config import PRESET_DATA, PRESETS, validate_config
from sda.data import load_mnist
from sda.full_batch import FullBatchObjective
from sda.run import TUTORIAL, train_SdA
from sda.SdA import SdA
from sda.training import fit_early_stopping, fit_lbfgs
from test_models import numeric_gradient_check

MODE = "FAST_COMPILE"
#: a tiny UFLDL-style run: 8-unit sparse layers, 3 L-BFGS iterations a phase
RUN = dict(hidden_layer_sizes=[8, 8], corruption_levels=[0.0, 0.0], criteria="sparse", optimizer="lbfgs",
           pretraining_epochs=3, training_epochs=3, n_outs=2)
THE_FOUR = {"keep_model": "last", "softmax_epochs": 100, "finetune_weight_decay_on": "softmax", "lbfgs_memory": 100}


def tiny_data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(200, 16).astype("float32")
    y = (X[:, :6].mean(axis=1) > 0.5).astype("int32")
    return [(X[:140], y[:140]), (X[140:170], y[140:170]), (X[170:], y[170:])]


def tiny_run(datasets=None, **kwargs):
    return train_SdA(datasets or tiny_data(), mode=MODE, progress=False, log=None, **{**RUN, **kwargs})


class Stop(Exception):
    """Raised by :func:`stopped_then_resumed`'s callback: the run stops there, its checkpoint kept."""


def stopped_then_resumed(tmp_path, monkeypatch, when, datasets=None, before_resume=None, **kwargs):
    """A tiny run with a checkpoint after every iteration, stopped after the first epoch where
    ``when(pretrain, state)`` holds, then resumed to its end."""
    import sda.run
    monkeypatch.setattr(sda.run, "LBFGS_SAVE_SECONDS", 0.0)

    def stop(pretrain, state):
        if when(pretrain, state):
            raise Stop
    with pytest.raises(Stop):
        tiny_run(datasets, output_dir=tmp_path, on_epoch_end=stop, **kwargs)
    if before_resume is not None:
        before_resume()
    return train_SdA(datasets or tiny_data(), output_dir=tmp_path, resume=True, mode=MODE, progress=False, log=None)


# --- keep_model: the best validation error's parameters, or the last ---

class FakeStep:
    """One SGD "minibatch" an epoch that moves ``w`` by one: what fit_early_stopping sees of a step."""

    n_batches = 1

    def __init__(self, w):
        self.w, self.updated = w, [w]

    def epoch(self, desc="", progress=True):
        self.w.set_value(self.w.get_value() + 1.0)
        yield 0, [1.0]


#: validation errors by epoch: the best (0.1) at epoch 2 of 4
ERRORS = [0.5, 0.1, 0.3, 0.4]


@pytest.mark.parametrize("keep, kept", [("best", 2.0), ("last", 4.0)])
def test_sgd_keeps_the_best_validation_errors_parameters_or_the_last(keep, kept):
    w = pytensor.shared(np.zeros(1), name="w")
    errors = iter(ERRORS)
    result = fit_early_stopping(FakeStep(w), lambda: next(errors), lambda: float(w.get_value()[0]) / 10,
                                n_epochs=4, patience=100, params=[w], log=None, keep=keep)
    assert w.get_value()[0] == kept and result.epochs == 4
    assert result.test_error == kept / 10  # the test error of the kept parameters
    assert result.best_validation_error == ERRORS[int(kept) - 1]


def test_keeping_the_last_ignores_patience_and_needs_no_validation_set():
    w = pytensor.shared(np.zeros(1), name="w")
    result = fit_early_stopping(FakeStep(w), None, None, n_epochs=6, patience=1, params=[w], log=None, keep="last")
    assert w.get_value()[0] == 6.0 and result.epochs == 6 and result.best_validation_error is None
    with pytest.raises(ValueError, match="without a validation set"):
        fit_early_stopping(FakeStep(w), None, None, n_epochs=2, patience=1, params=[w], log=None)


def quadratic(float64=True):
    """A convex objective whose L-BFGS iterates all differ: sum((w - 3)^2 * scale)."""
    w = pytensor.shared(np.zeros(4), name="w")
    cost = pt.sum(pt.sqr(w - 3.0) * pt.constant(np.array([1.0, 2.0, 5.0, 9.0])))
    return w, FullBatchObjective(cost, [w], {}, MODE)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_lbfgs_keeps_the_best_validation_errors_parameters_or_the_last(keep, float64):
    w, objective = quadratic()
    seen, errors, lines = [], iter(ERRORS), []
    result = fit_lbfgs(objective, lambda: next(errors), lambda: 0.25, n_iterations=4, params=[w], log=lines.append,
                       keep=keep, on_epoch_end=lambda state: seen.append(w.get_value().copy()))
    assert len(seen) == 4 and not np.array_equal(seen[1], seen[3])
    assert f"test error of {keep} model 25.00%" in lines[-1 if keep == "last" else 1]
    np.testing.assert_array_equal(w.get_value(), seen[1] if keep == "best" else seen[3])
    assert result.best_iteration == (2 if keep == "best" else 4)


def test_a_run_that_keeps_the_last_iterate_holds_and_saves_the_last_parameters(tmp_path):
    kept = []
    run = tiny_run(output_dir=tmp_path, keep_model="last", on_epoch_end=lambda pretrain, state: state and kept.append(
        [value.copy() for value in state.best_params]))
    assert len(kept) == 3 and not np.array_equal(kept[1][0], kept[2][0])  # each iteration's own parameters
    for value, p in zip(kept[-1], run.model.params):
        np.testing.assert_array_equal(value, p.get_value())
    history = run.finetuning.history
    assert run.finetuning.best_validation_error == history[-1]["validation_error"]
    saved = json.loads((tmp_path / "results.json").read_text())["finetuning"]
    assert saved["best_iteration"] == 3 and saved["test_error"] == history[-1]["test_error"]


# --- the softmax alone first ---

def test_the_softmax_first_leaves_the_hidden_layers_alone_then_fine_tuning_trains_them(monkeypatch):
    snapshots, holder = {}, {}

    def record(pretrain, state):
        model = holder.get("model")
        if model is None or len(pretrain.costs) < 3:
            return
        key = "fine-tuning" if state is not None else f"softmax {len(pretrain.costs[2])}"
        snapshots.setdefault(key, [p.get_value().copy() for p in model.params])

    original = SdA.softmax_objective

    def spy(self, *args, **kwargs):
        holder["model"] = self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SdA, "softmax_objective", spy)
    run = tiny_run(softmax_epochs=3, finetune_weight_decay=1e-4, on_epoch_end=record)
    assert [len(c) for c in run.pretraining.costs] == [3, 3, 3]
    assert run.pretraining.costs[2][-1] < run.pretraining.costs[2][0]  # the softmax learns alone
    first, last = snapshots["softmax 1"], snapshots["softmax 3"]
    for before, after in zip(first[:4], last[:4]):  # both hidden layers' W and b
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(first[4], last[4])  # the softmax's W moved
    tuned = [p.get_value() for p in run.model.params]
    assert not np.array_equal(tuned[0], last[0])  # fine-tuning then trains the hidden layers


def test_the_softmax_objectives_gradient_is_numerically_right(float64):
    X, y = tiny_data()[0]
    model = SdA(np.random.RandomState(1), n_ins=16, hidden_layers_sizes=[8, 5], n_outs=2,
                corruption_levels=[0.0, 0.0], criteria="sparse")
    rng = np.random.RandomState(2)
    for p in model.logLayer.params:
        p.set_value(rng.normal(0, 0.5, size=p.get_value().shape))
    objective = model.softmax_objective((X.astype("float64"), y), MODE, weight_decay=0.3)
    objective.prepare()
    theta = objective.get()
    cost, grad = objective(theta)
    sizes = [p.get_value().size for p in objective.params]
    grads = np.split(grad, np.cumsum(sizes)[:-1])
    numeric_gradient_check(lambda: objective(objective.get())[0],
                           [lambda g=g, p=p: g.reshape(p.get_value().shape) for g, p in zip(grads, objective.params)],
                           objective.params, rng)
    # the cost by hand: the softmax's mean negative log-likelihood on the codes, plus 0.3 / 2 |W|^2
    codes = model.encode(X.astype("float64"))
    logits = codes @ model.logLayer.W.get_value() + model.logLayer.b.get_value()
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -logp[np.arange(len(y)), y].mean() + 0.15 * np.sum(model.logLayer.W.get_value() ** 2)
    assert cost == pytest.approx(expected, rel=1e-10)


# --- fine-tuning's weight decay on the softmax only ---

def decayed_gradients(weight_decay, decay_on):
    model = SdA(np.random.RandomState(1), n_ins=16, hidden_layers_sizes=[8, 5], n_outs=2,
                corruption_levels=[0.0, 0.0], criteria="sparse")
    data = [(X.astype("float64"), y) for X, y in tiny_data()]
    objective, _, _ = model.finetune_objective(data, MODE, weight_decay, "all", decay_on)
    cost, grad = objective(objective.get())
    shapes = [p.get_value().shape for p in objective.params]
    parts = np.split(grad, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
    return model, cost, [g.reshape(s) for g, s in zip(parts, shapes)]


@pytest.mark.parametrize("decay_on", ["all", "softmax"])
def test_weight_decay_on_the_softmax_only_leaves_the_hidden_gradients_free_of_it(decay_on, float64):
    lam = 0.7
    model, plain_cost, plain = decayed_gradients(0.0, decay_on)
    _, cost, decayed = decayed_gradients(lam, decay_on)
    weights = [p.get_value() for p in model.params]  # W0 b0 W1 b1 Wsoftmax bsoftmax
    penalised = [4] if decay_on == "softmax" else [0, 2, 4]
    for k, (g0, g) in enumerate(zip(plain, decayed)):
        # the gradient of lambda/2 |W|^2 is lambda W, on the penalised matrices only
        np.testing.assert_allclose(g, g0 + (lam * weights[k] if k in penalised else 0), rtol=1e-9, atol=1e-12)
    assert cost == pytest.approx(plain_cost + lam / 2 * sum(np.sum(weights[k] ** 2) for k in penalised), rel=1e-10)


def test_sgd_fine_tuning_decays_the_softmax_only_too(float64):
    """Under SGD the cost a step reports (before its update) carries the softmax's decay alone."""
    model = SdA(np.random.RandomState(1), n_ins=16, hidden_layers_sizes=[8, 5], n_outs=2,
                corruption_levels=[0.0, 0.0])
    data = [(X.astype("float64"), y) for X, y in tiny_data()]
    costs = {}
    for decay_on in ("all", "softmax"):
        step, _, _ = model.build_finetune_functions(data, 140, 0.0, MODE, weight_decay=0.5, weight_decay_on=decay_on)
        costs[decay_on] = float(next(iter(step.epoch(progress=False)))[1][0])
    objective, _, _ = model.finetune_objective(data, MODE, 0.5, "all", "softmax")
    assert costs["softmax"] == pytest.approx(objective(objective.get())[0], rel=1e-10)
    assert costs["all"] > costs["softmax"]


# --- lbfgs_memory is scipy's maxcor ---

def test_lbfgs_memory_reaches_scipys_maxcor_in_every_phase(monkeypatch):
    real, seen = sda.full_batch.scipy.optimize.minimize, []

    def minimize(*args, options, **kwargs):
        seen.append(options["maxcor"])
        return real(*args, options=options, **kwargs)

    monkeypatch.setattr(sda.full_batch.scipy.optimize, "minimize", minimize)
    tiny_run(lbfgs_memory=7, softmax_epochs=2)
    assert seen == [7, 7, 7, 7]  # two layers, the softmax alone, fine-tuning
    seen.clear()
    tiny_run()
    assert seen == [10, 10, 10]


# --- no validation set: all the training images ---

def test_valid_size_0_trains_on_every_training_image_without_a_validation_set(tiny_mnist_dir):
    split = load_mnist(tiny_mnist_dir, n_valid=0, verify=False)
    assert split.valid is None and len(split.train[1]) == 300


def test_without_a_validation_set_the_run_keeps_the_last_model_or_is_refused(tmp_path, monkeypatch):
    train, _, test = tiny_data()
    with pytest.raises(ValueError, match="without a validation set nothing chooses the best model: set keep_model "
                                         "last"):
        tiny_run([train, None, test])
    # and stopped, then resumed: a checkpoint without a validation error continues
    run = stopped_then_resumed(tmp_path, monkeypatch, lambda pretrain, state: state is not None and state.epoch == 2,
                               [train, None, test], keep_model="last")
    assert run.finetuning.best_validation_error is None and run.finetuning.test_error is not None
    assert [record["validation_error"] for record in run.finetuning.history] == [None] * 3
    assert json.loads((tmp_path / "results.json").read_text())["finetuning"]["best_validation_error"] is None


def test_the_command_line_runs_ufldls_published_protocol(tiny_mnist_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--preset", "ufldl_published", "--hidden-layers", "8", "8", "--pretraining-epochs", "2",
                 "--training-epochs", "2", "--softmax-epochs", "2", "--data-dir", str(tiny_mnist_dir), "--no-verify",
                 "--mode", MODE, "--quiet", "--no-pictures", "--output-dir", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "no validation set, test error of the last model" in summary
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["valid_size"] == 0 and len(results["pretraining"]["costs"]) == 3
    assert {key: results["config"][key] for key in THE_FOUR} == {**THE_FOUR, "softmax_epochs": 2}
    assert main(["--preset", "ufldl_published", "--keep-model", "best", "--data-dir", str(tiny_mnist_dir),
                 "--no-verify", "--mode", MODE, "--quiet", "--output-dir", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert "set --keep-model last" in err and len(err.splitlines()) == 1


# --- the preset, and what validation refuses ---

def test_the_published_preset_is_ufldl_with_the_four_differences_and_no_validation_set():
    published, ufldl = validate_config(PRESETS["ufldl_published"]), validate_config(PRESETS["ufldl"])
    assert {k for k in published if published[k] != ufldl[k]} == set(THE_FOUR)
    assert {k: published[k] for k in THE_FOUR} == THE_FOUR
    assert PRESET_DATA["ufldl_published"] == {"valid_size": 0}
    from sda.cli import _data_source
    assert _data_source(build_parser().parse_args(["--preset", "ufldl_published"]), None)["valid_size"] == 0
    assert _data_source(build_parser().parse_args(["--preset", "ufldl"]), None)["valid_size"] is None
    given = build_parser().parse_args(["--preset", "ufldl_published", "--valid-size", "10"])
    assert _data_source(given, None)["valid_size"] == 10


@pytest.mark.parametrize("settings, message", [
    ({"keep_model": "worst"}, "keep_model must be one of best, last, got 'worst'"),
    ({"finetune_weight_decay_on": "hidden"}, "finetune_weight_decay_on must be one of all, softmax"),
    ({**RUN, "lbfgs_memory": 0}, "lbfgs_memory must be >= 1"),
    ({**RUN, "softmax_epochs": -1}, "softmax_epochs must be >= 0"),
    ({"softmax_epochs": 5}, "softmax_epochs belongs to optimizer lbfgs, not to sgd"),
    ({"lbfgs_memory": 100, "softmax_epochs": 5}, "softmax_epochs, lbfgs_memory belong to optimizer lbfgs"),
])
def test_bad_values_and_combinations_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError) as info:
        validate_config({**TUTORIAL, **settings})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_keep_last_and_the_softmax_decay_work_under_sgd_too():
    run = tiny_run(optimizer="sgd", pretrain_batch_size=20, finetune_batch_size=20, pretrain_lr=0.1,
                   pretraining_epochs=1, training_epochs=3, patience_epochs=0.01, keep_model="last",
                   finetune_weight_decay=1e-3, finetune_weight_decay_on="softmax")
    assert run.finetuning.epochs == 3 and run.finetuning.best_iteration == 3 * run.train_step.n_batches - 1


# --- resume through the softmax phase ---

def test_a_run_stopped_in_the_softmax_phase_resumes_to_its_full_count(tmp_path, monkeypatch):
    run = stopped_then_resumed(tmp_path, monkeypatch,
                               lambda pretrain, state: state is None and [len(c) for c in pretrain.costs] == [3, 3, 2],
                               softmax_epochs=4)
    assert [len(c) for c in run.pretraining.costs] == [3, 3, 4]
    assert run.results["config"]["softmax_epochs"] == 4 and run.finetuning.epochs == 3


def test_a_checkpoint_of_the_version_before_these_keys_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    import sda.checkpoint
    from sda.cli import main
    monkeypatch.setattr(sda.checkpoint, "CHECKPOINT_VERSION", 4)  # what a checkpoint of the last version wrote

    def stop(pretrain, state):
        raise Stop

    with pytest.raises(Stop):
        tiny_run(None, output_dir=tmp_path, on_epoch_end=stop)
    monkeypatch.undo()
    assert main(["--resume", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "format version 4 is not supported (this sda reads version 5)" in err and len(err.splitlines()) == 1, err
