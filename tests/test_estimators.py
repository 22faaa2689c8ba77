"""scikit-learn estimators: the API contract (check_estimator), pipelines, grid search, learning."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogReg  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from support import CPU_MODE
from sda.estimators import DenoisingAutoencoder, SdAClassifier  # noqa: E402

# small but able to learn scikit-learn's test problems; FAST_COMPILE keeps ~100 fits quick
SMALL_CLASSIFIER = dict(hidden_layers_sizes=(16,), corruption_levels=0.1, pretraining_epochs=2,
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
    clf = SdAClassifier(hidden_layers_sizes=(100,), corruption_levels=0.2, pretraining_epochs=3,
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
    assert search.best_params_["dae__corruption_level"] in (0.0, 0.3)
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
