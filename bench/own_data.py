"""SdAClassifier at its defaults on scikit-learn's small datasets, beside MLPClassifier and
LogisticRegression: test accuracy and fit seconds, the mean over seeds.

Each dataset is split 75/25, stratified; a seed is both the split's and the estimators'
random_state.  SdAClassifier runs alone in its pipeline (it scales its inputs itself); the other
two behind a StandardScaler, as they need.  Prints one row per dataset::

    python bench/own_data.py                       # iris, wine, breast_cancer, digits; seeds 0, 1, 2
    python bench/own_data.py --datasets digits --seeds 0   # a first fit on digits, compiling included
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sda import SdAClassifier

DATASETS = ("iris", "wine", "breast_cancer", "digits")
ESTIMATORS = {
    "sda": lambda seed: make_pipeline(SdAClassifier(random_state=seed)),
    "MLPClassifier": lambda seed: make_pipeline(StandardScaler(), MLPClassifier(random_state=seed)),
    "LogisticRegression": lambda seed: make_pipeline(StandardScaler(), LogisticRegression(random_state=seed)),
}


def measure(name: str, seeds) -> dict[str, tuple[float, list[float], int]]:
    """Each estimator's mean test accuracy, fit seconds (one per seed) and number of fits that warned."""
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    results = {}
    for estimator, make in ESTIMATORS.items():
        scores, seconds, warned = [], [], 0
        for seed in seeds:
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
            model = make(seed)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                start = time.perf_counter()
                model.fit(X_train, y_train)
                seconds.append(time.perf_counter() - start)
            warned += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            scores.append(model.score(X_test, y_test))
        results[estimator] = (float(np.mean(scores)), seconds, warned)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    print(f"test accuracy / fit seconds, mean over seeds {', '.join(map(str, args.seeds))} "
          f"(w: fits that raised a ConvergenceWarning)")
    print(f"{'dataset':<14}" + "".join(f"{name:>24}" for name in ESTIMATORS))
    first_fit = None
    for name in args.datasets:
        row = measure(name, args.seeds)
        first_fit = first_fit or (name, row["sda"][1][0])
        cells = [f"{acc:.3f} / {np.mean(secs):5.2f} s" + (f" {w}w" if w else "   ") for acc, secs, w in row.values()]
        print(f"{name:<14}" + "".join(f"{cell:>24}" for cell in cells), flush=True)
    # the first fit of a process compiles the model's functions (from PyTensor's cache on disk)
    print(f"the process's first SdAClassifier fit ({first_fit[0]}, seed {args.seeds[0]}): {first_fit[1]:.2f} s")


if __name__ == "__main__":
    main()
