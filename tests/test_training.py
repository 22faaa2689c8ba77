"""The early-stopping rule on scripted validation curves, and divergence detection."""

import math

import numpy as np
import pytest

from sda.steps import Step
from sda.training import DivergenceError, EarlyStopping, fit_early_stopping, pretrain_layers, time_left


def run_scripted(curve, patience, n_train_batches, n_epochs=100):
    """Drive fit_early_stopping with a validation error read from ``curve`` (one per validation)."""
    values = iter(curve)
    validations = []

    def validate():
        value = next(values)
        validations.append(value)
        return value

    result = fit_early_stopping(Step(lambda i: 1.0, n_train_batches), validate, lambda: -1.0,
                                n_epochs=n_epochs, patience=patience, progress=False, log=None)
    return result, validations


def test_validation_frequency_is_min_of_epoch_and_half_patience():
    assert EarlyStopping(patience=100, n_train_batches=30).validation_frequency == 30
    assert EarlyStopping(patience=40, n_train_batches=30).validation_frequency == 20


def test_stops_when_patience_runs_out_without_improvement():
    # patience 20 iterations, 10 batches/epoch: validate at iterations 9, 19; stop at 20
    result, validations = run_scripted([0.5, 0.6, 0.7, 0.8], patience=20, n_train_batches=10)
    assert validations == [0.5, 0.6]
    assert result.best_validation_error == 0.5 and result.best_iteration == 9
    assert result.epochs == 3  # iteration 20 is the first of epoch 3


def test_significant_improvement_extends_patience():
    # 0.5 at iteration 9 -> patience max(20, 18) = 20; 0.4 at 19 -> patience 38
    curve = [0.5, 0.4, 0.45, 0.45, 0.45, 0.45]
    result, validations = run_scripted(curve, patience=20, n_train_batches=10)
    assert validations == [0.5, 0.4, 0.45]  # validations at 9, 19, 29; stop at 38
    assert result.epochs == 4
    assert result.best_iteration == 19
    assert result.test_error == -1.0


def test_insignificant_improvement_is_kept_but_does_not_extend_patience():
    rule = EarlyStopping(patience=20, n_train_batches=10, improvement_threshold=0.995)
    assert rule.report(9, 0.5)
    assert rule.patience == 20
    assert rule.report(15, 0.4999)  # better, by less than 0.5 %
    assert rule.patience == 20 and rule.best_loss == 0.4999
    assert rule.report(19, 0.3)
    assert rule.patience == 38
    assert not rule.report(25, 0.3)


def test_runs_all_epochs_while_improving():
    curve = [1.0 / (k + 1) for k in range(50)]
    result, validations = run_scripted(curve, patience=20, n_train_batches=10, n_epochs=7)
    assert result.epochs == 7 and len(validations) == 7
    assert result.best_validation_error == pytest.approx(1 / 7)


def test_nan_cost_stops_with_a_message_naming_phase_epoch_and_learning_rate():
    costs = iter([1.0] * 15 + [math.nan] * 100)
    with pytest.raises(DivergenceError, match=r"fine-tuning, epoch 2.*learning rate 0.5"):
        fit_early_stopping(Step(lambda i: next(costs), 10), lambda: 0.5, n_epochs=5, patience=100,
                           learning_rate=0.5, progress=False, log=None)
    with pytest.raises(DivergenceError, match="pretraining layer 1, epoch 1"):
        pretrain_layers([Step(lambda *a: 1.0, 3), Step(lambda *a: np.inf, 3)], 2, [0.1, 0.2], 0.3,
                        progress=False, log=None)


def test_best_parameters_are_restored():
    import pytensor

    param = pytensor.shared(np.zeros(1))
    curve = iter([0.3, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2])

    def train(i):
        param.set_value(param.get_value() + 1)
        return 0.0

    fit_early_stopping(Step(train, 1), lambda: next(curve), n_epochs=7, patience=2, params=[param],
                       progress=False, log=None)
    assert param.get_value()[0] == 2  # the value after the second step, where validation was best


@pytest.fixture
def slow_clock(monkeypatch):
    """A clock that moves one second each time it is read: epochs take seconds, and the estimates
    of the time left show (under a second they are left out)."""
    clock = iter(range(1_000_000))
    monkeypatch.setattr("sda.training.time.perf_counter", lambda: float(next(clock)))


def test_log_lines_count_epochs_and_estimate_the_time_left(slow_clock):
    lines = []
    fit_early_stopping(Step(lambda i: 1.0, 4), lambda: 0.5, None, n_epochs=5, patience=1000,
                       progress=False, log=lines.append, validation_name="training error")
    assert lines[0].startswith("fine-tuning epoch 1/5: cost 1.00000, training error 50.00% (")
    assert all(f"epoch {k}/5" in line for k, line in enumerate(lines, start=1))
    # epoch 2 took as long as every later one: 3 epochs left at that pace
    seconds = float(lines[1].split("(")[1].split(" s")[0])
    assert lines[1].endswith(f"; about {3 * seconds:.0f} s left)") and "left" not in lines[-1]
    pretrain_lines = []
    pretrain_layers([Step(lambda i, c, lr: 2.0, 3)] * 2, 2, [0.1, 0.2], 0.1, progress=False,
                    log=pretrain_lines.append)
    assert pretrain_lines[0].startswith("pretraining layer 0 epoch 1/2: cost 2.0000")
    assert "pretraining ends in about" in pretrain_lines[0] and "ends" not in pretrain_lines[-1]
    assert len(pretrain_lines) == 4 and pretrain_lines[3].startswith("pretraining layer 1 epoch 2/2")


def test_the_time_left_follows_the_typical_epoch_not_a_paused_one():
    # the first epoch (compiling) is left out; one epoch stretched by a pause does not count
    assert time_left([30.0, 6.0, 6.0, 1100.0, 6.0], 10) == pytest.approx(60.0)
    assert time_left([5.0], 3) == pytest.approx(15.0) and time_left([], 3) == 0.0


def test_patience_bounds_the_estimate(slow_clock):
    lines = []
    fit_early_stopping(Step(lambda i: 1.0, 10), lambda: 0.5, None, n_epochs=100, patience=30,
                       progress=False, log=lines.append)
    assert ", to epoch 4 as patience stands)" in lines[0]  # iteration 30 is in epoch 4


def test_no_estimate_under_a_second():
    lines = []
    fit_early_stopping(Step(lambda i: 1.0, 4), lambda: 0.5, None, n_epochs=3, patience=1000, progress=False,
                       log=lines.append)
    assert not any("left" in line for line in lines)
