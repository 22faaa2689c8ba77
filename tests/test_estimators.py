"""scikit-learn estimators: the API contract (check_estimator), pipelines, grid search, learning."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogReg  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator, check_param_validation  # noqa: E402

from support import CPU_MODE
from sda.estimators import DenoisingAutoencoder, SdAClassifier  # noqa: E402

# small but able to learn scikit-learn's test problems; FAST_COMPILE keeps ~100 fits quick
SMALL_CLASSIFIER = dict(hidden_layer_sizes=(16,), corruption_levels=0.1, pretraining_epochs=2,
                        training_epochs=40, finetune_lr=0.5, finetune_batch_size=10,
                        mode="FAST_COMPILE", random_state=0)
SMALL_AUTOENCODER = dict(n_hidden=4, n_epochs=1, mode="FAST_COMPILE", random_state=0)


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
    clf = SdAClassifier(hidden_layer_sizes=(64,), corruption_levels=0.2, pretraining_epochs=2, finetune_lr=0.2,
                        mode=CPU_MODE, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clone(clf).partial_fit(X_train[:100], y_train[:100])
    batches = np.array_split(np.arange(1200), 4)  # equal batches: one compiled step serves them all
    clf.partial_fit(X_train[batches[0]], y_train[batches[0]], classes=np.arange(10))
    pretrained = [len(c) for c in clf.pretrain_result_.costs]
    first_score = clf.score(X_test, y_test)
    for _ in range(3):
        for batch in batches[1:]:
            clf.partial_fit(X_train[batch], y_train[batch])
    assert clf.n_finetune_epochs_ == 1 + 3 * 3
    assert [len(c) for c in clf.pretrain_result_.costs] == pretrained == [2]  # pretrained on the first call only
    assert clf.score(X_test, y_test) > max(first_score + 0.3, 0.75)  # 0.31 after the first call, 0.81 at the end
    clf.partial_fit(X_train[:37], y_train[:37])  # another size compiles its own step
    assert clf.n_finetune_epochs_ == 11
    with pytest.raises(ValueError, match="labels not in classes_"):
        clf.partial_fit(X_train[:10], y_train[:10] + 10)
    again = pickle.loads(pickle.dumps(clf))  # without compiled functions or the last batch
    np.testing.assert_array_equal(again.predict(X_test), clf.predict(X_test))
    assert again.partial_fit(X_train[:37], y_train[:37]).n_finetune_epochs_ == 12


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


def test_an_lbfgs_fit_continues_by_sgd_partial_fit():
    X, y = load_digits(return_X_y=True)
    clf = SdAClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs", pretraining_epochs=3, training_epochs=3,
                        corruption_levels=0.0, random_state=0, mode=CPU_MODE).fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="partial_fit trains by minibatch SGD"):
        clf.partial_fit(X[:200], y[:200])
    clf.set_params(optimizer="sgd").partial_fit(X[:200], y[:200])
    assert clf.n_finetune_epochs_ == clf.fit_result_.epochs + 1


@pytest.mark.parametrize("sizes, levels", [((20, 12), [0.1, 0.2]), ((9, 8, 7), [0.1, 0.2, 0.3]),
                                           ((6,) * 7, [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5])])
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
