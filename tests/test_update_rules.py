"""Fine-tuning's update rules (SGD, Nesterov, Adam, AdamW) against numpy steps written out by
hand, the learning-rate schedules against their formulas, their refusals, and an exact resume
of Adam's state."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from support import CPU_MODE, HAS_CVM
from sda.cli import main
from sda.config import finetune_learning_rate, validate_config
from sda.hyperparameters import defaults
from sda.modes import available_modes, compile_function
from sda.SdA import SdA
from sda.steps import adam_updates, max_norm, sgd_updates, update_rule

B1, B2, EPS = 0.9, 0.999, 1e-8


def problem():
    """A least-squares fit ``0.5 * mean ||x W + b - t||^2`` of a (4, 3) matrix and a bias, whose
    gradients numpy writes out: ``dW = x^T r / n``, ``db = sum(r) / n`` with ``r = x W + b - t``."""
    rng = np.random.RandomState(0)
    x, t = rng.normal(size=(8, 4)), rng.normal(size=(8, 3))
    W0, b0 = rng.normal(size=(4, 3)), rng.normal(size=3)
    return x, t, W0, b0


def numpy_gradients(x, t, W, b):
    r = (x @ W + b - t) / len(x)
    return [x.T @ r, r.sum(axis=0)]


def numpy_project(W, limit):
    return W * np.minimum(1, limit / np.maximum(np.linalg.norm(W, axis=0, keepdims=True), 1e-12))


def numpy_steps(rule, k, lr, momentum=0.0, decay=0.0, limit=0.0):
    """``k`` steps of ``rule`` in numpy, as the docstrings of :mod:`sda.steps` write them."""
    x, t, W, b = problem()
    params = [W.copy(), b.copy()]
    state = [[np.zeros_like(p) for p in params] for _ in range(2)]
    for step in range(1, k + 1):
        for i, g in enumerate(numpy_gradients(x, t, *params)):
            p = params[i]
            if rule in ("sgd", "nesterov"):
                v = state[0][i] = momentum * state[0][i] - lr * g
                p = p + momentum * v - lr * g if rule == "nesterov" else p + v
            else:
                m = state[0][i] = B1 * state[0][i] + (1 - B1) * g
                v = state[1][i] = B2 * state[1][i] + (1 - B2) * g ** 2
                direction = (m / (1 - B1 ** step)) / (np.sqrt(v / (1 - B2 ** step)) + EPS)
                if rule == "adamw" and p.ndim == 2:
                    direction = direction + decay * p
                p = p - lr * direction
            params[i] = numpy_project(p, limit) if limit and p.ndim == 2 else p
    return params


def pytensor_steps(rule, k, lr, momentum=0.0, decay=0.0, limit=0.0, mode="FAST_COMPILE"):
    x, t, W0, b0 = problem()
    with pytensor.config.change_flags(floatX="float64"):
        W, b = pytensor.shared(W0.copy(), name="W"), pytensor.shared(b0.copy(), name="b")
        xs, ts = pt.dmatrix("x"), pt.dmatrix("t")
        cost = 0.5 * pt.mean(pt.sum(pt.sqr(pt.dot(xs, W) + b - ts), axis=1))
        constraint = (lambda p, value: max_norm(value, limit) if p.ndim == 2 else value) if limit else None
        updates = update_rule(rule, cost, [W, b], lr, momentum, decay, constraint)
        step = compile_function([xs, ts], cost, mode, updates=updates)
        for _ in range(k):
            step(x, t)
    return [W.get_value(), b.get_value()]


@pytest.mark.parametrize("rule, settings", [
    ("sgd", dict(momentum=0.0)),
    ("sgd", dict(momentum=0.8)),
    ("nesterov", dict(momentum=0.8)),
    ("adam", {}),
    ("adamw", dict(decay=0.3)),
    ("adam", dict(limit=0.9)),  # the max-norm projection after each step
    ("nesterov", dict(momentum=0.7, limit=0.9)),
], ids=["sgd", "momentum", "nesterov", "adam", "adamw", "adam-max-norm", "nesterov-max-norm"])
def test_each_rule_takes_the_numpy_steps(rule, settings):
    lr = 0.05 if rule in ("adam", "adamw") else 0.1
    want = numpy_steps(rule, 6, lr, **settings)
    got = pytensor_steps(rule, 6, lr, **settings)
    W0 = problem()[2]
    assert not np.allclose(want[0], W0, atol=1e-2)  # the steps moved the weights
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)
    if settings.get("limit"):
        assert np.linalg.norm(got[0], axis=0).max() <= settings["limit"] + 1e-12


@pytest.mark.parametrize("mode", [m for m in ("NUMBA", "JAX") if m in available_modes()])
def test_adamw_takes_the_numpy_steps_in_the_compiled_modes(mode):
    want = numpy_steps("adamw", 4, 0.05, decay=0.3, limit=0.9)
    for g, w in zip(pytensor_steps("adamw", 4, 0.05, decay=0.3, limit=0.9, mode=mode), want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


def test_adams_state_is_shared_and_starts_at_step_one():
    """Adam's first step is ``lr * g / (|g| + eps)`` per coordinate (the bias correction undoes
    the moments' start at 0); its moments and beta powers are shared variables that the step updates."""
    with pytensor.config.change_flags(floatX="float64"):
        p = pytensor.shared(np.array([1.0, -2.0, 3.0]), name="p")
        updates = adam_updates(pt.sum(pt.sqr(p)), [p], 0.01)
        targets = [target.name for target, _ in updates]
        assert targets == ["adam_beta1_power", "adam_beta2_power", "adam_m_p", "adam_v_p", "p"]
        compile_function([], [], "FAST_COMPILE", updates=updates)()
    np.testing.assert_allclose(p.get_value(), [0.99, -1.99, 2.99], rtol=1e-7)
    assert [target.get_value().tolist() for target, _ in updates[:2]] == [B1, B2]


def test_the_momentum_rules_need_momentum_and_adam_takes_none():
    cost_and_params = lambda: (pt.sum(pt.sqr(p)), [p])
    p = pytensor.shared(np.ones(2), name="p")
    with pytest.raises(ValueError, match="needs momentum > 0"):
        sgd_updates(*cost_and_params(), 0.1, 0.0, nesterov=True)
    with pytest.raises(ValueError, match="first moment takes its place"):
        update_rule("adam", *cost_and_params(), 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="must be one of"):
        update_rule("rmsprop", *cost_and_params(), 0.1)


# --- each rule learns: a loss that falls, with dropout and max-norm beside it ---

def tiny_data():
    rng = np.random.RandomState(3)
    images = rng.uniform(size=(60, 10)).astype(pytensor.config.floatX)
    labels = (images[:, :5].sum(axis=1) > images[:, 5:].sum(axis=1)).astype("int32")  # learnable
    return [(images[:40], labels[:40]), (images[40:], labels[40:]), None]


@pytest.mark.parametrize("update, lr, extra", [
    ("sgd", 0.5, dict(momentum=0.9)),
    ("nesterov", 0.5, dict(momentum=0.9)),
    ("adam", 0.01, {}),
    ("adamw", 0.03, dict(weight_decay=0.01, max_norm=2.0, dropout_hidden=0.2)),
])
def test_each_rule_lowers_the_training_cost(update, lr, extra):
    model = SdA(np.random.RandomState(1), n_ins=10, hidden_layers_sizes=[8], n_outs=2, corruption_levels=[0.0])
    step, _, _ = model.build_finetune_functions(tiny_data(), 10, lr, "FAST_COMPILE", update=update, **extra)
    costs = [float(np.mean([c for _, c in step.epoch(progress=False)])) for _ in range(15)]
    assert costs[-1] < 0.8 * costs[0], costs


def test_adamw_takes_the_weight_decay_out_of_the_cost():
    """AdamW's step minimises the cross-entropy alone (its weight decay is decoupled); Adam's with
    the same weight decay adds the penalty :math:`\\tfrac{λ}{2}\\sum\\|W\\|^2` to the cost."""
    model = SdA(np.random.RandomState(1), n_ins=10, hidden_layers_sizes=[8], n_outs=2, corruption_levels=[0.0])
    data = tiny_data()
    adamw, _, _ = model.build_finetune_functions(data, 10, 0.1, "FAST_COMPILE", update="adamw", weight_decay=0.5)
    adam, _, _ = model.build_finetune_functions(data, 10, 0.1, "FAST_COMPILE", update="adam", weight_decay=0.5)
    before = [p.get_value() for p in model.params]
    penalty = 0.25 * sum(float(np.sum(p.get_value() ** 2)) for p in model.params if p.ndim == 2)
    cost_w = float(adamw(0))
    for p, value in zip(model.params, before):
        p.set_value(value)
    assert float(adam(0)) == pytest.approx(cost_w + penalty, rel=1e-5)
    assert penalty > 0.01


# --- the schedules ---

def schedule(**settings):
    return {**defaults(), "finetune_lr": 0.4, "training_epochs": 10, **settings}


@pytest.mark.parametrize("settings, epoch, want", [
    (dict(finetune_lr_schedule="cosine"), 0, 0.4),
    (dict(finetune_lr_schedule="cosine"), 5, 0.2),
    (dict(finetune_lr_schedule="cosine"), 10, 0.0),
    (dict(finetune_lr_schedule="cosine"), 3, 0.2 * (1 + math.cos(0.3 * math.pi))),
    (dict(finetune_lr_schedule="cosine", finetune_warmup_epochs=2), 0, 0.4 / 3),
    (dict(finetune_lr_schedule="cosine", finetune_warmup_epochs=2), 1, 0.8 / 3),
    (dict(finetune_lr_schedule="cosine", finetune_warmup_epochs=2), 2, 0.4),
    (dict(finetune_lr_schedule="cosine", finetune_warmup_epochs=2), 6, 0.2),  # halfway through epochs 2 .. 10
    (dict(finetune_lr_schedule="linear", finetune_warmup_epochs=2), 8, 0.1),
    (dict(finetune_lr_schedule="linear", finetune_warmup_epochs=2), 12, 0.0),  # past the end (partial_fit)
    (dict(finetune_lr_schedule="exponential", finetune_warmup_epochs=3, finetune_lr_decay=0.5), 1, 0.4 * 0.5 * 2 / 4),
    (dict(finetune_lr_schedule="exponential", finetune_warmup_epochs=3), 7, 0.4),
    (dict(finetune_lr_schedule="linear", finetune_warmup_epochs=10), 12, 0.4),  # all warm-up
])
def test_the_schedules_follow_their_formulas(settings, epoch, want):
    assert finetune_learning_rate(schedule(**settings), epoch) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_without_warm_up_the_linear_and_exponential_rates_are_the_earlier_ones_bit_for_bit():
    for epoch in range(0, 14):
        linear = schedule(finetune_lr_schedule="linear", finetune_lr_decay=0.97)
        assert finetune_learning_rate(linear, epoch) == 0.4 * 0.97 ** epoch * max(0.0, 1 - epoch / 10)
        assert finetune_learning_rate(schedule(finetune_lr_decay=0.97), epoch) == 0.4 * 0.97 ** epoch


# --- refusals ---

@pytest.mark.parametrize("settings, message", [
    (dict(finetune_update="nesterov"), "finetune_update nesterov needs finetune_momentum > 0"),
    (dict(finetune_update="adam", finetune_momentum=0.9), "finetune_update adam takes no finetune_momentum"),
    (dict(finetune_update="adamw"), "finetune_update adamw is adam with a decoupled finetune_weight_decay"),
    (dict(finetune_update="rmsprop"), "finetune_update must be one of sgd, nesterov, adam, adamw"),
    (dict(finetune_update=None), "finetune_update must be one of"),
    (dict(finetune_warmup_epochs=-1), "finetune_warmup_epochs must be >= 0"),
    (dict(finetune_warmup_epochs=1.5), "finetune_warmup_epochs"),
    (dict(finetune_lr_schedule="one-cycle"), "finetune_lr_schedule must be one of exponential, linear, cosine"),
    (dict(optimizer="lbfgs", finetune_update="adam"), "finetune_update belongs to minibatch SGD"),
    (dict(optimizer="lbfgs", finetune_warmup_epochs=3), "finetune_warmup_epochs belongs to minibatch SGD"),
])
def test_settings_that_make_no_sense_are_refused(settings, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        validate_config({**defaults(), **settings})


def test_the_rules_settings_pass_when_they_fit():
    checked = validate_config({**defaults(), "finetune_update": "adamw", "finetune_weight_decay": 1e-4,
                               "finetune_warmup_epochs": 5, "finetune_lr_schedule": "cosine"})
    assert (checked["finetune_update"], checked["finetune_warmup_epochs"]) == ("adamw", 5)


@pytest.mark.parametrize("flags, message", [
    (["--finetune-update", "nesterov"], "--finetune-update nesterov needs --finetune-momentum > 0"),
    (["--finetune-update", "adam", "--finetune-momentum", "0.5"], "--finetune-update adam takes no --finetune-momentum"),
    (["--finetune-warmup-epochs", "-2"], "--finetune-warmup-epochs"),
])
def test_the_command_line_refuses_them_in_one_line(flags, message, tiny_mnist_dir, tmp_path, capsys):
    args = ["--hidden-layers", "8", "--corruption", "0.1", "--data-dir", str(tiny_mnist_dir), "--valid-size", "50",
            "--no-verify", "--quiet", "--output-dir", str(tmp_path / "out"), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "results.json").exists()


# --- Adam's state goes into checkpoints: a stopped run resumes bit for bit ---

RESUME_MODES = [pytest.param(mode, marks=pytest.mark.skipif(
    mode not in available_modes() or (mode == "CVM" and not HAS_CVM), reason=f"mode {mode} is not available here"))
    for mode in dict.fromkeys([CPU_MODE, "NUMBA", "JAX", "CVM"])]


class Stop(Exception):
    """Stops a run after an epoch, as a kill would."""


def stop_after_two_epochs(datasets, output_dir, **settings):
    """Run ``train_SdA`` into ``output_dir`` and stop it after its second fine-tuning epoch."""
    from sda.run import train_SdA

    def stop(pretrain, state):
        if state is not None and state.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_SdA(datasets, output_dir=output_dir, on_epoch_end=stop, **settings)


def three_class_data(n_train, n_valid):
    rng = np.random.RandomState(0)
    n = n_train + n_valid
    images, labels = rng.uniform(size=(n, 12)).astype("float32"), rng.randint(3, size=n).astype("int32")
    return [(images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:]), None]


@pytest.mark.parametrize("mode", RESUME_MODES)
def test_a_run_stopped_in_adam_fine_tuning_resumes_bit_for_bit(mode, tmp_path):
    from sda.checkpoint import load_checkpoint
    from sda.run import RunError, train_SdA

    datasets = three_class_data(60, 20)
    config = dict(hidden_layer_sizes=[7], corruption_levels=[0.2], n_outs=3, pretraining_epochs=0,
                  pretrain_batch_size=10, training_epochs=4, finetune_lr=0.01, finetune_batch_size=10,
                  finetune_update="adamw", finetune_weight_decay=1e-3, finetune_warmup_epochs=1,
                  finetune_lr_schedule="cosine", finetune_max_norm=1.5, patience_epochs=100, seed=4)
    quiet = dict(mode=mode, progress=False, log=None)
    fresh = train_SdA(datasets, output_dir=tmp_path / "fresh", **quiet, **config)
    stop_after_two_epochs(datasets, tmp_path / "stopped", **quiet, **config)
    stopped = load_checkpoint(tmp_path / "stopped" / "checkpoint.safetensors")
    with pytest.raises(RunError, match=r"keeps its configuration; the checkpoint's differs in finetune_update"):
        train_SdA(datasets, output_dir=tmp_path / "stopped", resume=True, finetune_update="adam", **quiet)
    resumed = train_SdA(datasets, output_dir=tmp_path / "stopped", resume=True, **quiet)
    assert [r["cost"] for r in resumed.finetuning.history] == [r["cost"] for r in fresh.finetuning.history]
    want, got = (load_checkpoint(tmp_path / name / "checkpoint.safetensors").state for name in ("fresh", "stopped"))
    assert len(got) == len(want) == len(stopped.state)
    for g, w in zip(got, want):  # parameters, Adam's moments and beta powers, the learning rate
        np.testing.assert_array_equal(g, w)
    # the checkpoint holds Adam's beta powers after 2 epochs of 6 steps, beta ** 12, then the learning rate
    scalars = [float(a) for a in stopped.state[:-1] if a.shape == ()]
    assert scalars == pytest.approx([0.9 ** 12, 0.999 ** 12], rel=1e-5)


def test_the_estimator_warms_up_adam_across_partial_fit_calls():
    """``partial_fit``'s first call runs a one-epoch run, its later ones go on with the schedule of
    ``training_epochs``: the warm-up carries over (lr / 4, then 2 lr / 4 with 3 warm-up epochs)."""
    from sda.estimators import SdAClassifier

    (images, labels), _, _ = tiny_data()
    clf = SdAClassifier(hidden_layer_sizes=(6,), pretraining_epochs=1, training_epochs=10, finetune_lr=0.02,
                        finetune_update="adam", finetune_warmup_epochs=3, finetune_lr_schedule="cosine",
                        mode="FAST_COMPILE", random_state=0)
    clf.partial_fit(images, labels, classes=[0, 1])
    clf.partial_fit(images, labels)
    assert clf.n_iter_ == 2
    assert float(clf._continuation[1].get_value()) == pytest.approx(0.02 * 2 / 4, rel=1e-6)
    assert clf.get_params()["finetune_update"] == "adam"
    with pytest.raises(ValueError, match="finetune_update nesterov needs finetune_momentum > 0"):
        SdAClassifier(finetune_update="nesterov").fit(images, labels)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # two epochs: a file, not a fit
def test_an_estimator_file_of_the_version_before_the_update_rules_is_refused_naming_it(tmp_path):
    from forgery import put_together, take_apart
    from sda.estimators import SdAClassifier
    from sda.persistence import ModelFileError

    (images, labels), _, _ = tiny_data()
    clf = SdAClassifier(hidden_layer_sizes=(6,), pretraining_epochs=1, training_epochs=2, mode="FAST_COMPILE",
                        random_state=0).fit(images, labels)
    path, older = tmp_path / "clf.safetensors", tmp_path / "older.safetensors"
    clf.save(path)
    entries, header, data = take_apart(path.read_bytes())
    header["format_version"] = 1  # written before finetune_update and finetune_warmup_epochs existed
    header["params"] = {key: value for key, value in header["params"].items()
                        if key not in ("finetune_update", "finetune_warmup_epochs")}
    older.write_bytes(put_together(entries, header, data))
    with pytest.raises(ModelFileError, match="format version 1 is not supported"):
        SdAClassifier.load(older)
