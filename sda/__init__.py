"""sda: the Deep Learning Tutorials' stacked denoising autoencoder on PyTensor.

The tutorial's modules keep their names: ``sda.logistic_sgd``, ``sda.mlp``, ``sda.dA`` and
``sda.SdA``.  The main classes are importable from the package itself; they are loaded on
first use, so that ``python -m sda.SdA`` does not import its own module twice.
"""

import warnings

from sda.version import __version__

# PyTensor looks for a BLAS the first time its configuration is read and, finding none, prints a
# five-line warning that recommends conda.  sda checks for a BLAS itself, chooses a mode that needs
# none (sda.modes) and says in one line how to get the C backend; the warning is only noise here.
# Installed before any sda module imports pytensor, and only for that message.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)

_EXPORTS = {
    "LogisticRegression": "sda.logistic_sgd",
    "HiddenLayer": "sda.mlp",
    "MLP": "sda.mlp",
    "dA": "sda.dA",
    "SdA": "sda.SdA",
    "load_data": "sda.datasets",
    "train_SdA": "sda.run",
    "load_mnist": "sda.data",
    "SdAClassifier": "sda.estimators",
    "DenoisingAutoencoder": "sda.estimators",
}

__all__ = ["__version__", *_EXPORTS]  # noqa: PLE0604 (a dict unpacks to its keys, the names)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sda' has no attribute {name!r}")
