"""scikit-learn estimators: the API contract (check_estimator), pipelines, grid search, learning."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogReg  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator, check_param_validation  # noqa: E402

from support import CPU_MODE  # noqa: E402
from sda.estimator_parts import ESTIMATOR_VERSION  # noqa: E402
from sda.estimators import DenoisingAutoencoder, SdAClassifier  # noqa: E402

# small but able to learn scikit-learn's test problems (fifteen epochs pass check_classifiers_train); FAST_COMPILE
# keeps ~100 fits quick
SMALL_CLASSIFIER = dict(hidden_layer_sizes=(16,), corruption_levels=0.1, pretraining_epochs=2,
                        training_epochs=15, finetune_lr=0.5, finetune_batch_size=10,
                        mode="FAST_COMPILE", random_state=0)
SMALL_AUTOENCODER = dict(n_hidden=4, n_epochs=1, mode="FAST_COMPILE", random_state=0)

# fits kept a few epochs long on purpose, for tests of what a fit gives rather than of how well it
# learns: the ConvergenceWarning each rightly gets says so, and is the only warning they may hide
CUT_SHORT = pytest.mark.filterwarnings("ignore:SdAClassifier ran all:sklearn.exceptions.ConvergenceWarning")
NOT_MEANT_TO_LEARN = pytest.mark.filterwarnings("ignore:SdAClassifier did not learn:sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("estimator", [SdAClassifier(**SMALL_CLASSIFIER), DenoisingAutoencoder(**SMALL_AUTOENCODER)],
                         ids=["SdAClassifier", "DenoisingAutoencoder"])
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) > 40


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)  # 8x8 digits shipped with scikit-learn, pixels 0..16
    return train_test_split(X, y, test_size=0.3, random_state=0)


def test_classifier_learns_digits_and_transforms(digits):
    X_train, X_test, y_train, y_test = digits
    clf = SdAClassifier(hidden_layer_sizes=(100,), corruption_levels=0.2, pretraining_epochs=3,
                        training_epochs=30, finetune_lr=0.2, finetune_momentum=0.5,
                        validation_fraction=0.1, mode=CPU_MODE, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93
    proba = clf.predict_proba(X_test[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert clf.transform(X_test[:5]).shape == (5, 100)
    assert clf.fit_result_.best_validation_error < 0.1
    assert clf.pretrain_result_.costs[0][-1] < clf.pretrain_result_.costs[0][0]


@CUT_SHORT
def test_string_labels_and_reproducibility(digits):
    X_train, X_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    params = dict(SMALL_CLASSIFIER, mode=CPU_MODE, training_epochs=3)
    a = SdAClassifier(**params).fit(X_train, names[y_train])
    b = SdAClassifier(**params).fit(X_train, names[y_train])
    assert set(a.predict(X_test)) <= set(names)
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))


def test_autoencoder_in_a_pipeline_and_grid_search(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = Pipeline([("dae", DenoisingAutoencoder(n_hidden=64, n_epochs=5, learning_rate=0.1, mode=CPU_MODE,
                                                  random_state=0)),
                     ("clf", SkLogReg(max_iter=500))])
    search = GridSearchCV(pipe, {"dae__corruption_level": [0.0, 0.3]}, cv=2)
    search.fit(X_train, y_train)
    results = search.cv_results_
    assert list(results["param_dae__corruption_level"]) == [0.0, 0.3]  # both values were tried
    scores = results["mean_test_score"]
    assert scores[0] != scores[1]  # and each trained its own autoencoder
    best = [0.0, 0.3][int(np.argmax(scores))]
    assert search.best_params_["dae__corruption_level"] == best
    assert search.best_estimator_.named_steps["dae"].corruption_level == best
    assert search.score(X_test, y_test) > 0.85


def test_autoencoder_score_rises_with_training_and_reconstructs(digits):
    X_train, X_test, _, _ = digits
    short = DenoisingAutoencoder(n_hidden=32, n_epochs=1, mode=CPU_MODE, random_state=0).fit(X_train)
    long = DenoisingAutoencoder(n_hidden=32, n_epochs=15, mode=CPU_MODE, random_state=0).fit(X_train)
    assert long.score(X_test) > short.score(X_test)
    assert long.costs_[-1] < long.costs_[0]
    recon = long.inverse_transform(long.transform(X_test))
    assert recon.shape == X_test.shape and 0 <= recon.min() and recon.max() <= 1
    assert long.components_.shape == (32, 64)


class _PastValidation(Exception):
    """Raised by a stand-in for the first step of ``fit`` after the parameter checks."""


@pytest.fixture
def stop_after_validation(monkeypatch):
    """``fit`` stops where it would start reading the data: a test can tell that a bad
    parameter was refused before any training, and that a good one got past the checks."""
    def stop(*args, **kwargs):
        raise _PastValidation
    monkeypatch.setattr("sda.estimators.validate_data", stop)


INF, NAN = float("inf"), float("nan")
BAD_CLASSIFIER_PARAMS = [
    ("hidden_layer_sizes", (), ValueError), ("hidden_layer_sizes", (16, 0), ValueError),
    ("hidden_layer_sizes", (16.5,), TypeError), ("hidden_layer_sizes", "16", TypeError),
    ("hidden_layer_sizes", 16, TypeError),
    ("corruption_levels", -0.1, ValueError), ("corruption_levels", 1.0, ValueError),
    ("corruption_levels", (1.0,), ValueError), ("corruption_levels", (0.1, 0.2), ValueError),
    ("corruption_levels", "0.1", TypeError),
    ("pretraining_epochs", -1, ValueError), ("pretraining_epochs", 1.5, TypeError),
    ("pretrain_lr", 0, ValueError), ("pretrain_lr", -0.1, ValueError), ("pretrain_lr", INF, ValueError),
    ("pretrain_lr", NAN, ValueError), ("pretrain_batch_size", 0, ValueError),
    ("pretrain_batch_size", -5, ValueError), ("training_epochs", 0, ValueError),
    ("training_epochs", -1, ValueError), ("finetune_lr", -0.1, ValueError), ("finetune_lr", INF, ValueError),
    ("finetune_batch_size", 0, ValueError), ("finetune_batch_size", 2.0, TypeError),
    ("finetune_momentum", -0.1, ValueError), ("finetune_momentum", 1.0, ValueError),
    ("validation_fraction", -0.1, ValueError), ("validation_fraction", 1.0, ValueError),
    ("patience_epochs", 0, ValueError), ("patience_epochs", INF, ValueError),
    ("scale_inputs", "yes", TypeError), ("random_state", "seed", TypeError),
    ("mode", "GPU", ValueError), ("mode", 3, TypeError),
    ("verbose", -1, ValueError), ("verbose", "loud", TypeError),
    # beyond float32, where the graphs compute, or beyond float64, or a count no run can have
    ("finetune_lr", 1e39, ValueError), ("pretrain_lr", 10 ** 400, ValueError), ("finetune_lr", 1e-50, ValueError),
    ("training_epochs", 10 ** 400, ValueError), ("pretraining_epochs", 10 ** 400, ValueError),
    ("hidden_layer_sizes", (10 ** 400,), ValueError), ("hidden_layer_sizes", (2 ** 31,), ValueError),
    ("patience_epochs", 1e308, ValueError), ("patience_epochs", 10 ** 400, ValueError),
    ("finetune_weight_decay", 1e39, ValueError), ("sparsity_weight", 10 ** 400, ValueError),
    ("corruption_levels", 10 ** 400, ValueError), ("pretrain_batch_size", 10 ** 400, ValueError),
    # 1 once stored in float32; a Gaussian noise that overflows float32
    ("corruption_levels", 0.99999999, ValueError), ("finetune_momentum", np.float64(0.99999999), ValueError),
    ("finetune_dropout_hidden", 0.99999999, ValueError), ("sparsity_target", 0.99999999, ValueError),
    ("training_epochs", np.bool_(True), TypeError),
]
BAD_AUTOENCODER_PARAMS = [
    ("n_hidden", 0, ValueError), ("n_hidden", 4.0, TypeError), ("corruption_level", -0.1, ValueError),
    ("corruption_level", 1.0, ValueError), ("corruption_level", (0.1,), TypeError),
    ("learning_rate", -1, ValueError), ("learning_rate", 0, ValueError), ("learning_rate", NAN, ValueError),
    ("batch_size", 0, ValueError), ("batch_size", -1, ValueError), ("n_epochs", 0, ValueError),
    ("n_epochs", -1, ValueError), ("scale_inputs", None, TypeError), ("random_state", "seed", TypeError),
    ("mode", "GPU", ValueError), ("verbose", -1, ValueError),
    ("n_hidden", 10 ** 400, ValueError), ("n_epochs", 10 ** 400, ValueError), ("batch_size", 10 ** 400, ValueError),
    ("learning_rate", 1e39, ValueError), ("learning_rate", 10 ** 400, ValueError), ("learning_rate", 1e-50, ValueError),
    ("corruption_level", 1e-50, ValueError), ("corruption_level", 0.99999999, ValueError),
]


def _bad_params():
    for estimator, cases in ((SdAClassifier(**SMALL_CLASSIFIER), BAD_CLASSIFIER_PARAMS),
                             (DenoisingAutoencoder(**SMALL_AUTOENCODER), BAD_AUTOENCODER_PARAMS)):
        for name, value, error in cases:
            yield pytest.param(estimator, name, value, error, id=f"{type(estimator).__name__}-{name}={value!r}")


@pytest.mark.parametrize("estimator, name, value, error", list(_bad_params()))
def test_impossible_parameters_are_refused_before_training(stop_after_validation, estimator, name, value, error):
    estimator = clone(estimator).set_params(**{name: value})
    with pytest.raises(error, match=name):
        estimator.fit(np.zeros((4, 3)), [0, 1, 0, 1])


@pytest.mark.parametrize("estimator", [
    SdAClassifier(hidden_layer_sizes=np.array([3, 2]), corruption_levels=[0.0, 0.5], pretraining_epochs=0,
                  training_epochs=1, pretrain_batch_size=1, finetune_momentum=0.0, validation_fraction=0.0,
                  patience_epochs=0.5, scale_inputs=False, random_state=np.random.RandomState(0), mode="numba",
                  verbose=True),
    SdAClassifier(corruption_levels=np.float32(0.3), mode="Auto", pretrain_lr=np.float32(1e-3), verbose=2),
    DenoisingAutoencoder(n_hidden=np.int64(1), corruption_level=0, batch_size=10_000, mode="fast_compile"),
], ids=["SdAClassifier-edges", "SdAClassifier-numpy", "DenoisingAutoencoder"])
def test_possible_parameters_pass_the_checks(stop_after_validation, estimator):
    with pytest.raises(_PastValidation):
        estimator.fit(np.zeros((4, 3)), [0, 1, 0, 1])


@pytest.mark.parametrize("estimator", [SdAClassifier(**SMALL_CLASSIFIER), DenoisingAutoencoder(**SMALL_AUTOENCODER)],
                         ids=["SdAClassifier", "DenoisingAutoencoder"])
def test_scikit_learn_param_validation_check(stop_after_validation, estimator):
    """scikit-learn's own check: a constraint for every parameter, and bad types and values refused."""
    check_param_validation(type(estimator).__name__, estimator)


def test_standard_scaled_digits_score_like_min_max_scaled_ones(digits):
    """Each feature gets its own map onto [0, 1]: a StandardScaler before the classifier no longer
    squashes the inputs (one global min/max scored 0.204 against 0.885)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    X_train, X_test, y_train, y_test = digits
    params = dict(hidden_layer_sizes=(100,), corruption_levels=0.2, pretraining_epochs=3, training_epochs=30,
                  finetune_lr=0.2, finetune_momentum=0.5, validation_fraction=0.1, mode=CPU_MODE, random_state=0)
    scores = {scaler.__name__: make_pipeline(scaler(), SdAClassifier(**params)).fit(X_train, y_train).score(X_test, y_test)
              for scaler in (MinMaxScaler, StandardScaler)}
    assert scores["MinMaxScaler"] > 0.9
    assert abs(scores["StandardScaler"] - scores["MinMaxScaler"]) <= 0.02, scores


@CUT_SHORT
def test_decision_function_log_proba_and_the_features_of_each_layer(digits):
    X_train, X_test, y_train, _ = digits
    clf = SdAClassifier(**dict(SMALL_CLASSIFIER, hidden_layer_sizes=(20, 12), corruption_levels=(0.1, 0.2),
                               training_epochs=5, mode=CPU_MODE)).fit(X_train, y_train)
    scores, log_proba = clf.decision_function(X_test), clf.predict_log_proba(X_test)
    assert scores.shape == log_proba.shape == (len(X_test), 10)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(axis=1)], clf.predict(X_test))
    np.testing.assert_allclose(np.exp(log_proba), clf.predict_proba(X_test), rtol=1e-10)
    np.testing.assert_allclose(np.exp(log_proba).sum(axis=1), 1, rtol=1e-6)
    assert clf.transform(X_test).shape == (len(X_test), 12)
    first = clf.transform(X_test, layer=0)
    assert first.shape == (len(X_test), 20) and ((0 < first) & (first < 1)).all()
    np.testing.assert_array_equal(clf.transform(X_test, layer=-1), clf.transform(X_test))
    binary = SdAClassifier(**dict(SMALL_CLASSIFIER, mode=CPU_MODE)).fit(X_train, y_train > 4)
    margin = binary.decision_function(X_test)
    assert margin.shape == (len(X_test),)
    np.testing.assert_array_equal(binary.predict(X_test), margin > 0)


def test_partial_fit_pretrains_once_then_fine_tunes_batch_by_batch(digits):
    X_train, X_test, y_train, y_test = digits
    # batches of 20: 15 updates in the first call's epoch, which leaves the later calls room to improve on it
    clf = SdAClassifier(hidden_layer_sizes=(64,), corruption_levels=0.2, pretraining_epochs=2, finetune_lr=0.2,
                        pretrain_batch_size=20, finetune_batch_size=20, mode=CPU_MODE, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clone(clf).partial_fit(X_train[:100], y_train[:100])
    batches = np.array_split(np.arange(1200), 4)  # equal batches: one compiled step serves them all
    clf.partial_fit(X_train[batches[0]], y_train[batches[0]], classes=np.arange(10))
    pretrained = [len(c) for c in clf.pretrain_result_.costs]
    first_score = clf.score(X_test, y_test)
    for _ in range(3):
        for batch in batches[1:]:
            clf.partial_fit(X_train[batch], y_train[batch])
    assert clf.n_iter_ == 1 + 3 * 3
    assert [len(c) for c in clf.pretrain_result_.costs] == pretrained == [2]  # pretrained on the first call only
    assert clf.score(X_test, y_test) > max(first_score + 0.3, 0.75)  # 0.31 after the first call, 0.81 at the end
    clf.partial_fit(X_train[:37], y_train[:37])  # another size compiles its own step
    assert clf.n_iter_ == 11
    with pytest.raises(ValueError, match="labels not in classes_"):
        clf.partial_fit(X_train[:10], y_train[:10] + 10)
    again = pickle.loads(pickle.dumps(clf))  # without compiled functions or the last batch
    np.testing.assert_array_equal(again.predict(X_test), clf.predict(X_test))
    assert again.partial_fit(X_train[:37], y_train[:37]).n_iter_ == 12


@pytest.mark.skipif("JAX" not in __import__("sda.modes").modes.available_modes(), reason="needs jax")
def test_partial_fit_under_jax_keeps_the_models_noise_where_it_stands(digits):
    """Under JAX a compiled step draws its dropout masks from a copy of the generator: after each
    call the model's generator must hold where the noise stands, so that a step compiled for
    another batch size, or in an unpickled estimator, goes on from there instead of drawing
    from the keys of an earlier step's first calls again."""
    X_train, _, y_train, _ = digits
    clf = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=1, finetune_dropout_hidden=0.5, mode="JAX"))
    clf.fit(X_train[:200], y_train[:200])
    noise = lambda estimator: str(estimator.model_.dropout_rng.get_value().bit_generator.state)
    states = [noise(clf)]
    for n in (30, 40, 40):  # a step of its own for 30, another for 40, then that one again
        clf.partial_fit(X_train[:n], y_train[:n])
        states.append(noise(clf))
    assert len(set(states)) == 4  # the noise moved on at every call
    assert noise(pickle.loads(pickle.dumps(clf))) == states[-1]


@CUT_SHORT
def test_training_error_is_not_called_validation_error(digits, capsys):
    X_train, _, y_train, _ = digits
    SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=2, mode=CPU_MODE, verbose=1)).fit(X_train, y_train)
    printed = capsys.readouterr().out
    assert "fine-tuning epoch 2/2" in printed and "training error" in printed and "validation error" not in printed


def test_small_fits_choose_a_mode_that_compiles_fast():
    from sda.modes import JAX_MIN_FLOPS, available_modes, default_mode, training_phases
    digits_fit = training_phases(1131, [64, 100, 10], 3, 30, 20, 20)
    mnist_quick = training_phases(50_000, [784, 1000, 1000, 1000, 10], 1, 1, 20, 20)
    flops = lambda phases: sum(f for f, _ in phases.values())
    assert flops(digits_fit) < JAX_MIN_FLOPS < flops(mnist_quick)
    assert default_mode(digits_fit) != "JAX"
    if "JAX" in available_modes():
        assert default_mode(mnist_quick) == "JAX"


def test_partial_fit_of_a_top_only_classifier_never_trains_the_hidden_layers():
    X, y = load_digits(return_X_y=True)
    clf = SdAClassifier(hidden_layer_sizes=(10,), corruption_levels=0.1, pretraining_epochs=1, finetune_layers="top",
                        random_state=0,
                        mode=CPU_MODE)
    clf.partial_fit(X[:200], y[:200], classes=np.arange(10))
    hidden = clf.model_.sigmoid_layers[0].W.get_value().copy()
    clf.partial_fit(X[:100], y[:100])  # another batch size: the step is compiled again
    pickle.loads(pickle.dumps(clf)).partial_fit(X[:100], y[:100])
    np.testing.assert_array_equal(clf.model_.sigmoid_layers[0].W.get_value(), hidden)


@CUT_SHORT
def test_an_lbfgs_fit_continues_by_sgd_partial_fit():
    X, y = load_digits(return_X_y=True)
    clf = SdAClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs", pretraining_epochs=3, training_epochs=3,
                        corruption_levels=0.0, random_state=0, mode=CPU_MODE).fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="partial_fit trains by minibatch SGD"):
        clf.partial_fit(X[:200], y[:200])
    clf.set_params(optimizer="sgd").partial_fit(X[:200], y[:200])
    assert clf.n_iter_ == clf.fit_result_.epochs + 1


@pytest.mark.parametrize("sizes, levels", [((20, 12), [0.1, 0.2]), ((9, 8, 7), [0.1, 0.2, 0.3]),
                                           ((6,) * 7, [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5])])
@NOT_MEANT_TO_LEARN  # one epoch
def test_the_default_corruption_rises_with_the_layers_the_estimator_has(digits, sizes, levels):
    X_train, _, y_train, _ = digits
    params = dict(SMALL_CLASSIFIER, hidden_layer_sizes=sizes, training_epochs=1, pretraining_epochs=1, mode=CPU_MODE)
    del params["corruption_levels"]
    clf = SdAClassifier(**params).fit(X_train[:200], y_train[:200])
    np.testing.assert_allclose(clf.model_.corruption_levels, levels)
    assert clf.get_params()["corruption_levels"] is None  # the parameter itself stays as given


def test_an_autoencoder_too_large_for_memory_is_refused_before_allocating():
    with pytest.raises(ValueError, match="weight matrix would need .* GiB"):
        DenoisingAutoencoder(n_hidden=10 ** 9, mode="FAST_COMPILE").fit(np.zeros((4, 1000)))


@CUT_SHORT
@pytest.mark.parametrize("estimator", [SdAClassifier(**{**SMALL_CLASSIFIER, "training_epochs": 2}),
                                       DenoisingAutoencoder(**SMALL_AUTOENCODER)], ids=["SdAClassifier", "dA"])
def test_features_up_to_the_float64_limits_are_scaled_not_called_nan(estimator, digits):
    X, y = digits[0][:60].astype(np.float64), digits[2][:60]
    X[:, 5] = np.where(np.arange(60) % 2, 1.7e308, -1.7e308)
    fitted = estimator.fit(X, y)
    assert np.all(np.isfinite(fitted.transform(X)))


@pytest.mark.parametrize("estimator", [SdAClassifier(**SMALL_CLASSIFIER), DenoisingAutoencoder(**SMALL_AUTOENCODER)],
                         ids=["SdAClassifier", "dA"])
def test_examples_without_features_are_one_clear_error(estimator):
    with pytest.raises(ValueError, match="0 feature"):
        estimator.fit(np.zeros((6, 0)), [0, 1] * 3)


# ---------------------------------------------------------------- fitted attributes, as scikit-learn names them

@pytest.fixture(scope="module")
def held_out_fit(digits):
    """A small classifier that holds out a fifth of its 200 examples (and so has validation scores)."""
    X, y = digits[0][:200], digits[2][:200]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "SdAClassifier ran all", ConvergenceWarning)  # four epochs on purpose
        clf = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=4, validation_fraction=0.2, mode=CPU_MODE)).fit(X, y)
    return clf, X, y


def test_n_iter_counts_the_fine_tuning_epochs_partial_fit_included(digits):
    X, y = digits[0][:200], digits[2][:200]
    # patience of a fraction of an epoch: early stopping ends fit before training_epochs (pretrained in
    # batches of 20, whose features leave fine-tuning's training error without a big fall every epoch)
    clf = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=6, patience_epochs=0.5, pretrain_batch_size=20,
                               mode=CPU_MODE)).fit(X, y)
    assert clf.n_iter_ == len(clf.fit_result_.history) < 6
    clf.partial_fit(X[:50], y[:50])
    assert clf.n_iter_ == len(clf.fit_result_.history) + 1


def test_loss_curve_is_the_mean_minibatch_cost_of_each_epoch(digits):
    """With a rate too small to move the weights, each epoch's mean minibatch cost is the model's
    cross-entropy on the training data, which predict_log_proba gives independently."""
    X, y = digits[0][:200], digits[2][:200]
    with pytest.warns(ConvergenceWarning, match="did not learn"):
        clf = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=2, finetune_lr=1e-7, mode=CPU_MODE)).fit(X, y)
    cross_entropy = -np.mean(clf.predict_log_proba(X)[np.arange(len(y)), np.searchsorted(clf.classes_, y)])
    assert len(clf.loss_curve_) == clf.n_iter_ == 2
    np.testing.assert_allclose(clf.loss_curve_, cross_entropy, rtol=1e-4)
    clf.partial_fit(X, y)  # one more epoch, one more value
    assert len(clf.loss_curve_) == 3
    np.testing.assert_allclose(clf.loss_curve_[-1], cross_entropy, rtol=1e-4)


def _held_out_rows(clf, n):
    """The rows ``fit`` held out: the first ``validation_fraction`` of its permutation."""
    order = np.random.RandomState(clf.random_state).permutation(n)
    return order[:round(clf.validation_fraction * n)]


def test_validation_scores_are_the_accuracies_on_the_held_out_rows(held_out_fit):
    clf, _, _ = held_out_fit
    errors = [record["validation_error"] for record in clf.fit_result_.history]
    assert len(clf.validation_scores_) == clf.n_iter_ == 4
    np.testing.assert_allclose(clf.validation_scores_, 1 - np.asarray(errors))  # higher is better
    assert all(0 <= score <= 1 for score in clf.validation_scores_)


def test_best_validation_score_is_the_kept_models_accuracy_on_the_held_out_rows(held_out_fit):
    clf, X, y = held_out_fit
    held_out = _held_out_rows(clf, len(X))
    assert clf.best_validation_score_ == pytest.approx(clf.score(X[held_out], y[held_out]))
    assert clf.best_validation_score_ == max(clf.validation_scores_)


@CUT_SHORT
def test_without_a_held_out_split_there_are_no_validation_scores(digits):
    X, y = digits[0][:200], digits[2][:200]
    clf = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=2, mode=CPU_MODE)).fit(X, y)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    rounded_away = SdAClassifier(**dict(SMALL_CLASSIFIER, training_epochs=1, validation_fraction=0.002,
                                        mode=CPU_MODE)).fit(X, y)  # 0.4 of an example: none held out
    assert rounded_away.validation_scores_ is None and rounded_away.best_validation_score_ is None
    started = SdAClassifier(**dict(SMALL_CLASSIFIER, validation_fraction=0.2, mode=CPU_MODE))
    started.partial_fit(X, y, classes=np.arange(10))  # partial_fit holds nothing out
    assert started.validation_scores_ is None and started.best_validation_score_ is None


@NOT_MEANT_TO_LEARN  # the deep classifier's one epoch
def test_feature_names_out_name_what_transform_gives(held_out_fit, digits):
    clf, X, _ = held_out_fit
    names = clf.get_feature_names_out()
    assert list(names) == [f"sdaclassifier{i}" for i in range(16)] and len(names) == clf.transform(X).shape[1]
    dae = DenoisingAutoencoder(**dict(SMALL_AUTOENCODER, n_hidden=5, mode=CPU_MODE)).fit(X)
    assert list(dae.get_feature_names_out()) == [f"denoisingautoencoder{i}" for i in range(5)]
    deep = SdAClassifier(**dict(SMALL_CLASSIFIER, hidden_layer_sizes=(9, 7), corruption_levels=0.1,
                                training_epochs=1, mode=CPU_MODE)).fit(X, digits[2][:200])
    assert len(deep.get_feature_names_out()) == deep.transform(X).shape[1] == 7  # the top layer's units


def test_the_autoencoders_n_iter_and_loss_curve(digits):
    X = digits[0][:200]
    dae = DenoisingAutoencoder(**dict(SMALL_AUTOENCODER, n_hidden=8, n_epochs=3, mode=CPU_MODE)).fit(X)
    assert dae.n_iter_ == len(dae.loss_curve_) == 3
    assert dae.loss_curve_[-1] < dae.loss_curve_[0]  # reconstruction costs, falling as it learns
    assert all(cost > 0 for cost in dae.loss_curve_)
# --- save(path) / load(path): safetensors files, as model files are ---

@pytest.fixture(scope="module")
def saved_estimators(digits, tmp_path_factory):
    """A fitted classifier (string labels, a scaler that maps the pixels) and autoencoder, saved."""
    X_train, _, y_train, _ = digits
    folder = tmp_path_factory.mktemp("estimators")
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "SdAClassifier ran all", ConvergenceWarning)  # three epochs on purpose
        clf = SdAClassifier(**{**SMALL_CLASSIFIER, "training_epochs": 3, "mode": CPU_MODE}).fit(X_train,
                                                                                                labels[y_train])
    dae = DenoisingAutoencoder(**{**SMALL_AUTOENCODER, "mode": CPU_MODE}).fit(X_train)
    return {"SdAClassifier": (clf, clf.save(folder / "clf.safetensors")),
            "DenoisingAutoencoder": (dae, dae.save(folder / "dae.safetensors"))}


def test_a_saved_classifier_predicts_as_it_did_in_a_new_process(saved_estimators, digits):
    import subprocess
    import sys
    clf, path = saved_estimators["SdAClassifier"]
    X_test = digits[1]
    np.save(path.with_suffix(".X.npy"), X_test)
    script = ("import sys, numpy as np; from sda.estimators import SdAClassifier; "
              "clf = SdAClassifier.load(sys.argv[1]); X = np.load(sys.argv[2]); "
              "np.save(sys.argv[3], clf.predict_proba(X)); print(' '.join(clf.predict(X[:5])))")
    out = path.with_suffix(".proba.npy")
    done = subprocess.run([sys.executable, "-c", script, str(path), str(path.with_suffix(".X.npy")), str(out)],
                          check=True, capture_output=True, text=True, timeout=300)
    np.testing.assert_array_equal(np.load(out), clf.predict_proba(X_test))
    assert done.stdout.split() == list(clf.predict(X_test[:5]))


@pytest.mark.parametrize("kind", ["SdAClassifier", "DenoisingAutoencoder"])
def test_a_loaded_estimator_is_a_fresh_object_that_predicts_and_trains_as_the_saved_one(kind, saved_estimators,
                                                                                         digits):
    estimator, path = saved_estimators[kind]
    X_train, X_test = digits[0], digits[1]
    loaded = type(estimator).load(path)
    as_json = {"hidden_layer_sizes": [16]} if kind == "SdAClassifier" else {}  # JSON has lists, not tuples
    assert loaded is not estimator and loaded.get_params() == {**estimator.get_params(), **as_json}
    for a, b in zip(loaded.model_.saved_variables(), estimator.model_.saved_variables()):
        assert a is not b
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    if kind == "SdAClassifier":
        np.testing.assert_array_equal(loaded.predict_proba(X_test), estimator.predict_proba(X_test))
        np.testing.assert_array_equal(loaded.transform(X_test), estimator.transform(X_test))
        assert list(loaded.classes_) == list(estimator.classes_) and loaded.n_iter_ == 3
        assert loaded.fit_result_ == estimator.fit_result_ and loaded.pretrain_result_ == estimator.pretrain_result_
        y = estimator.classes_[np.arange(37) % 10]
        assert loaded.partial_fit(X_train[:37], y).n_iter_ == 4
    else:
        np.testing.assert_array_equal(loaded.transform(X_test), estimator.transform(X_test))
        np.testing.assert_array_equal(loaded.components_, estimator.components_)
        assert loaded.score(X_test) == estimator.score(X_test) and loaded.costs_ == estimator.costs_


def forged_estimator(path, tmp_path, forge):
    """The estimator file at ``path`` with ``forge(tensor entries, header, data)`` applied, as bytes."""
    from forgery import take_apart
    entries, header, data = take_apart(path.read_bytes())
    return forge(entries, header, data)


def _with(header, **changes):
    return {**header, **changes}


def _fitted(header, **changes):
    return {**header, "fitted": {**header["fitted"], **changes}}


@pytest.mark.parametrize("kind, forge, message", [
    ("SdAClassifier", lambda e, h, d: (e, _with(h, estimator="DenoisingAutoencoder"), d),
     "holds a DenoisingAutoencoder, not a SdAClassifier"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, model={**h["model"], "class": "dA"}), d), "lacks the SdA model"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, format_version=3), d), "format version 3 is not supported"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, format="sda-model"), d), "not an sda-estimator file"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, scaled=False), d), "are not the scaler's"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, n_features_in_=65), d), "are not the scaler's"),
    ("SdAClassifier", lambda e, h, d: ({k.replace("logLayer.b", "logLayer.c"): v for k, v in e.items()}, h, d),
     r"missing: \['model.logLayer.b'\]"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, params={**h["params"], "hidden_layer_sizes": [0]}), d),
     "inconsistent .*hidden_layer_sizes"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, params={**h["params"], "exec": "os.system"}), d),
     r"inconsistent .*unknown keys \['exec'\]"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes_dtype="<U99999"), d), "are not labels"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes_dtype="|O", classes=[{"a": 1}]), d),
     "numbers or strings"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes=list(map(str, range(11)))), d),
     "does not classify 64 features into 11 classes"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes=["one", "one"]), d), "distinct labels"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, mode="os.system"), d), "mode a compile mode"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, n_iter_=-1), d), "n_iter_"),
    ("DenoisingAutoencoder", lambda e, h, d: (e, _with(h, params={**h["params"], "n_hidden": 5}), d),
     "is not this autoencoder's"),
    ("DenoisingAutoencoder", lambda e, h, d: (e, _fitted(h, costs_="many"), d), "costs_ must be a list"),
    # what a forger may change that loading used to take as it came
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes_dtype="<U1"), d), "not what their dtype"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes_dtype="|i1", classes=list(range(0, 1000, 100))), d),
     "do not fit their dtype"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes_dtype="<i8", classes=[*range(9), 10 ** 30]), d),
     "do not fit their dtype"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, classes=list(map(str, range(9)))), d),
     "does not classify 64 features into 9 classes"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, params={**h["params"], "hidden_layer_sizes": [10 ** 9]}), d),
     "hidden_layers_sizes are not those the parameters give"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, params={**h["params"], "corruption_type": "gaussian"}), d),
     "corruption_type are not those"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, params={k: v for k, v in h["params"].items()
                                                            if k != "finetune_lr"}), d), r"lacks \['finetune_lr'\]"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, evil=1), d), r"unknown keys \['evil'\]"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, scaled=1), d), "are not the scaler's"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, n_iter_=10 ** 30), d), "the length of loss_curve_"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, pretrain_result_={**h["fitted"]["pretrain_result_"],
                                                                        "costs": "abc"}), d), "pretrain_result_"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, fit_result_={**h["fitted"]["fit_result_"], "epochs": -3}), d),
     "fit_result_"),
    ("SdAClassifier", lambda e, h, d: (e, _fitted(h, fit_result_={**h["fitted"]["fit_result_"], "history": "x"}), d),
     "fit_result_"),
    ("SdAClassifier", lambda e, h, d: (e, _with(h, format_version=1.0), d), "format version 1.0 is not supported"),
    ("DenoisingAutoencoder", lambda e, h, d: (e, _with(h, model={**h["model"], "config": {
        **h["model"]["config"], "corruption_type": "gaussian"}}), d), "not the masking dA"),
    ("DenoisingAutoencoder", lambda e, h, d: (e, _fitted(h, costs_=[]), d), "one cost per epoch"),
])
def test_a_forged_estimator_file_is_refused_in_one_line(kind, forge, message, saved_estimators, tmp_path):
    from forgery import put_together
    from sda.persistence import ModelFileError
    estimator, path = saved_estimators[kind]
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(put_together(*forged_estimator(path, tmp_path, forge)))
    with pytest.raises(ModelFileError, match=message) as refused:
        type(estimator).load(forged)
    assert str(refused.value).startswith(str(forged)) and "\n" not in str(refused.value)


@pytest.mark.parametrize("forge", [lambda t: t.pop("scaler.span"), lambda t: t.pop("scaler.low"),
                                   lambda t: t.update({"scaler.low": t["scaler.low"][:-1]}),
                                   lambda t: t.update({"scaler.low": t["scaler.low"].astype(np.float32)}),
                                   lambda t: t.update({"scaler.high": t["scaler.low"]})])
def test_an_estimator_file_without_its_scaler_is_refused(forge, saved_estimators, tmp_path):
    from sda.persistence import ModelFileError, read_tensor_file, write_tensor_file
    header, tensors = read_tensor_file(saved_estimators["SdAClassifier"][1], "sda-estimator", version=ESTIMATOR_VERSION)
    forge(tensors)
    with pytest.raises(ModelFileError, match="are not the scaler's"):
        SdAClassifier.load(write_tensor_file(tmp_path / "forged.safetensors", header, tensors))


def test_an_unfitted_estimator_is_not_saved(tmp_path):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        SdAClassifier().save(tmp_path / "clf.safetensors")
    assert not (tmp_path / "clf.safetensors").exists()


def test_at_its_defaults_the_classifier_learns_a_hundred_examples():
    # iris at batch 20 and a patience of 10 epochs predicted one class (accuracy 0.34)
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a good fit does not warn
        clf = SdAClassifier(mode=CPU_MODE, random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.9
    assert clf.n_iter_ >= clf.patience_epochs


@pytest.mark.parametrize("n_samples, batch_size", [(1, 1), (99, 1), (112, 2), (426, 8), (1000, 20), (10 ** 6, 20)])
def test_the_default_batch_size_gives_small_data_many_minibatches_an_epoch(n_samples, batch_size):
    from sda.estimator_parts import batch_size_for
    assert batch_size_for(None, n_samples) == batch_size
    assert batch_size_for(7, n_samples) == min(7, n_samples)  # one asked for is kept


@pytest.mark.parametrize("epochs, message", [(60, "hardly better than predicting the commonest class"),
                                             (5, "hardly better than predicting the commonest class")])
def test_a_fit_that_cannot_learn_warns(digits, epochs, message):
    X_train, _, y_train, _ = digits
    clf = SdAClassifier(hidden_layer_sizes=(16,), pretraining_epochs=0, training_epochs=epochs, finetune_lr=1e-7,
                        mode=CPU_MODE, random_state=0)
    with pytest.warns(ConvergenceWarning, match=message) as caught:
        clf.fit(X_train[:200], y_train[:200])
    assert caught[0].filename == __file__  # the warning names the line that called fit


def test_a_fit_that_runs_out_of_epochs_while_learning_warns(digits):
    X_train, _, y_train, _ = digits
    clf = SdAClassifier(hidden_layer_sizes=(16,), pretraining_epochs=0, training_epochs=12, finetune_lr=0.01,
                        mode=CPU_MODE, random_state=0)
    with pytest.warns(ConvergenceWarning, match="ran all 12 training_epochs while its error"):
        clf.fit(X_train, y_train)
    assert clf.score(X_train, y_train) > 0.2  # it learned something: not the other warning
