"""Model files that can never run code: numpy ``.npz`` archives plus a JSON header.

A model file holds

* ``__header__``: a uint8 array with UTF-8 JSON: the format name and version, the model's
  class, its constructor arguments (layer sizes, corruption levels, ...), the dtype, the sda
  version, and any training state the caller adds;
* ``param_0``, ``param_1``, ...: every parameter, in the order of :func:`model_parameters`.

Loading uses ``numpy.load(allow_pickle=False)`` and accepts only plain numeric arrays whose
shapes match the architecture in the header; anything else raises :class:`ModelFileError`.
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt

from sda.utils import atomic_write

__all__ = ["ModelFileError", "FORMAT", "SaveLoadMixin", "model_config", "model_parameters",
           "save_model", "load_model", "read_model_file", "write_archive", "read_archive"]

FORMAT = "sda-model"
FORMAT_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER_BYTES = 1 << 20


class ModelFileError(ValueError):
    """A model file is unreadable, not an sda model, or inconsistent with its header."""


class SaveLoadMixin:
    """``model.save(path)`` and ``Class.load(path)`` for the four model classes."""

    def save(self, path, training_state: dict | None = None) -> Path:
        """Write this model's architecture and parameters to ``path`` (an ``.npz`` file)."""
        return save_model(self, path, training_state)

    @classmethod
    def load(cls, path):
        """A model of this class rebuilt from ``path``, predicting exactly as the saved one."""
        model, header = load_model(path)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path} holds a {header['class']}, not a {cls.__name__}")
        return model


def _classes():
    from sda.dA import dA
    from sda.logistic_sgd import LogisticRegression
    from sda.mlp import MLP
    from sda.SdA import SdA

    return {"SdA": SdA, "dA": dA, "MLP": MLP, "LogisticRegression": LogisticRegression}


def model_config(model) -> dict:
    """The constructor arguments that rebuild ``model``'s architecture."""
    kind = type(model).__name__
    if kind == "SdA":
        return {"n_ins": model.n_ins, "hidden_layers_sizes": list(model.hidden_layers_sizes),
                "n_outs": model.n_outs, "corruption_levels": list(model.corruption_levels)}
    if kind == "dA":
        return {"n_visible": model.n_visible, "n_hidden": model.n_hidden}
    if kind == "MLP":
        return {"n_in": model.hiddenLayer.n_in, "n_hidden": model.hiddenLayer.n_out,
                "n_out": model.logRegressionLayer.n_out, "activation": model.activation_name}
    if kind == "LogisticRegression":
        return {"n_in": model.n_in, "n_out": model.n_out}
    raise TypeError(f"cannot save a {kind}; sda saves {', '.join(_classes())}")


def model_parameters(model) -> list:
    """Every shared variable that defines ``model``: for an SdA, the MLP's parameters then
    each dA's decoder bias (so that pretraining can resume too)."""
    if type(model).__name__ == "SdA":
        return list(model.params) + [layer.b_prime for layer in model.dA_layers]
    return list(model.params)


def _build(kind: str, config: dict, seed: int = 0):
    """A new model of class ``kind`` with the architecture ``config`` (random weights)."""
    classes = _classes()
    if kind not in classes:
        raise ModelFileError(f"unknown model class {kind!r} in header; expected one of {', '.join(classes)}")
    config = dict(config)
    if kind == "MLP":
        activations = {"tanh": pt.tanh, "sigmoid": pt.sigmoid}
        if config.get("activation", "tanh") not in activations:
            raise ModelFileError(f"unknown activation {config['activation']!r} in header")
        config["activation"] = activations[config.get("activation", "tanh")]
    rng = np.random.RandomState(seed)
    try:
        if kind in ("SdA", "dA"):
            return classes[kind](rng, **config)
        if kind == "MLP":
            return classes[kind](rng, pt.matrix("x"), **config)
        return classes[kind](pt.matrix("x"), **config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"header's {kind} configuration {config} is invalid: {exc}") from None


def write_archive(path, header: dict, arrays: dict) -> Path:
    """Atomically write ``arrays`` (numeric numpy arrays) and a JSON ``header`` as an .npz."""
    entries = {name: np.asarray(value) for name, value in arrays.items()}
    entries[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **entries))


def read_archive(path, expected_format: str, error=None) -> tuple[dict, dict]:
    """``(header, arrays)`` of an archive written by :func:`write_archive`.

    Never unpickles: object arrays, pickles and anything that is not an .npz of numeric
    arrays with a JSON header of ``expected_format`` raise ``error`` (ModelFileError).
    """
    error = error or ModelFileError
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = set(archive.files)
            if _HEADER not in names:
                raise error(f"{path}: not an sda file (no {_HEADER} entry)")
            arrays = {}
            for name in names:
                info = archive.zip.getinfo(name + ".npy")
                if info.file_size > 1100 * len(data) + (1 << 20):  # more than deflate can expand
                    raise error(f"{path}: entry {name} claims {info.file_size} bytes")
                arrays[name] = archive[name]
    except error:
        raise
    except ValueError as exc:  # object arrays (pickles) land here with allow_pickle=False
        raise error(f"{path}: refused: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, RuntimeError, zlib.error) as exc:
        raise error(f"{path}: not a readable .npz file ({exc})") from None
    raw = arrays.pop(_HEADER)
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_HEADER_BYTES:
        raise error(f"{path}: malformed header entry")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        found = header.get("format") if isinstance(header, dict) else None
        raise error(f"{path}: not an {expected_format} file (format {found!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise error(f"{path}: format version {header.get('format_version')!r} is not supported")
    for name, array in arrays.items():
        if array.dtype.kind not in "fiub":
            raise error(f"{path}: entry {name} has dtype {array.dtype}, expected numbers")
    return header, arrays


def save_model(model, path, training_state: dict | None = None, values=None) -> Path:
    """Write ``model`` (an SdA, dA, MLP or LogisticRegression) to ``path`` atomically.

    ``training_state`` (JSON-serialisable) is stored in the header, e.g. epochs and scores.
    ``values`` replaces the parameters' current values (in :func:`model_parameters` order),
    e.g. to save the best parameters seen while training goes on.
    """
    import sda

    params = model_parameters(model)
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class": type(model).__name__,
        "config": model_config(model), "dtype": str(params[0].dtype), "sda_version": sda.__version__,
        "n_params": len(params), "training_state": training_state or {},
    }
    if values is None:
        values = [p.get_value() for p in params]
    if len(values) != len(params):
        raise ValueError(f"values has {len(values)} arrays for {len(params)} parameters")
    return write_archive(path, header, {f"param_{i}": v for i, v in enumerate(values)})


def read_model_file(path) -> tuple[dict, list[np.ndarray]]:
    """The header and parameter arrays of a model file, validated but not built into a model."""
    header, arrays = read_archive(path, FORMAT)
    n_params = header.get("n_params")
    if not isinstance(n_params, int) or set(arrays) != {f"param_{i}" for i in range(n_params)}:
        raise ModelFileError(f"{path}: parameter entries {sorted(arrays)} do not match n_params={n_params!r}")
    params = [arrays[f"param_{i}"] for i in range(n_params)]
    for i, array in enumerate(params):
        if array.dtype.kind != "f":
            raise ModelFileError(f"{path}: param_{i} has dtype {array.dtype}, expected floating point")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{path}: param_{i} holds NaN or infinite values")
    if not isinstance(header.get("config"), dict) or not isinstance(header.get("class"), str):
        raise ModelFileError(f"{path}: header lacks the model class or configuration")
    return header, params


def load_model(path, seed: int = 0):
    """Rebuild the model saved in ``path``; returns ``(model, header)``.

    The model is built in the file's dtype, and its parameters are set to the saved values,
    so it predicts exactly as the saved one did.
    """
    header, params = read_model_file(path)
    with pytensor.config.change_flags(floatX=str(params[0].dtype) if params else pytensor.config.floatX):
        model = _build(header["class"], header["config"], seed)
    targets = model_parameters(model)
    if len(targets) != len(params):
        raise ModelFileError(f"{path}: {len(params)} parameters for a model that has {len(targets)}")
    for i, (shared, value) in enumerate(zip(targets, params)):
        expected = shared.get_value(borrow=True).shape
        if value.shape != expected:
            raise ModelFileError(f"{path}: param_{i} has shape {value.shape}, the architecture needs {expected}")
        shared.set_value(value.astype(shared.dtype, copy=False))
    return model, header
