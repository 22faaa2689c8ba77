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

from sda.utils import atomic_write
from sda.version import __version__

__all__ = ["ModelFileError", "FORMAT", "SaveLoadMixin", "model_config", "model_parameters",
           "save_model", "load_model", "read_model_file", "write_archive", "read_archive"]

FORMAT = "sda-model"
FORMAT_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER_BYTES = 1 << 20


class ModelFileError(ValueError):
    """A model file is unreadable, not an sda model, or inconsistent with its header."""


class SaveLoadMixin:
    """``model.save(path)`` and ``Class.load(path)``, for every model class that inherits this.

    A subclass registers itself under its class name (the name a file's header records) and
    describes itself to this module, which therefore imports no model:

    * ``saved_config()``: the constructor arguments that rebuild its architecture (JSON-ready);
    * ``saved_variables()``: the shared variables that define it, in a fixed order;
    * ``variable_shapes(config)`` (classmethod): their shapes for a configuration, checked
      against a file's arrays before any model is built (so a forged header cannot make us
      allocate);
    * ``from_config(config, rng)`` (classmethod): a new model of that architecture.
    """

    registry: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__ != "__main__":  # a script's copy of a model module is not the model
            SaveLoadMixin.registry[cls.__name__] = cls

    def saved_variables(self) -> list:
        """The shared variables that define the model: by default its ``params``."""
        return list(self.params)

    @classmethod
    def from_config(cls, config: dict, rng):
        """A new model of the architecture ``config`` (random weights from ``rng``)."""
        return cls(rng, **config)

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


def model_config(model) -> dict:
    """The constructor arguments that rebuild ``model``'s architecture."""
    if not isinstance(model, SaveLoadMixin):
        raise TypeError(f"cannot save a {type(model).__name__}; sda saves {', '.join(SaveLoadMixin.registry)}")
    return model.saved_config()


def model_parameters(model) -> list:
    """Every shared variable that defines ``model`` (an SdA's include each dA's decoder bias,
    so that pretraining can resume too)."""
    return list(model.saved_variables())


def _model_class(header: dict, path):
    kind = header["class"]
    if kind not in SaveLoadMixin.registry:
        raise ModelFileError(f"{path}: unknown model class {kind!r} in header; expected one of "
                             f"{', '.join(SaveLoadMixin.registry)}")
    return SaveLoadMixin.registry[kind]


def _check_shapes(cls, header: dict, params, path) -> None:
    """The file's arrays must have the shapes its header's architecture implies: checked before
    building the model, so that a header claiming huge layers is refused without allocating."""
    try:
        expected = [tuple(shape) for shape in cls.variable_shapes(header["config"])]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{path}: header's {header['class']} configuration is invalid: {exc}") from None
    if len(expected) != len(params):
        raise ModelFileError(f"{path}: {len(params)} parameters for a {header['class']} that has {len(expected)}")
    for i, (shape, value) in enumerate(zip(expected, params)):
        if value.shape != shape:
            raise ModelFileError(f"{path}: param_{i} has shape {value.shape}, the architecture needs {shape}")


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
    params = model_parameters(model)
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class": type(model).__name__,
        "config": model_config(model), "dtype": str(params[0].dtype), "sda_version": __version__,
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
    cls = _model_class(header, path)
    _check_shapes(cls, header, params, path)
    with pytensor.config.change_flags(floatX=str(params[0].dtype) if params else pytensor.config.floatX):
        try:
            model = cls.from_config(dict(header["config"]), np.random.RandomState(seed))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: header's {header['class']} configuration is invalid: {exc}") from None
    for shared, value in zip(model_parameters(model), params):
        shared.set_value(value.astype(shared.dtype, copy=False))
    return model, header
