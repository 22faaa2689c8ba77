"""Model files that can never run code: numpy ``.npz`` archives plus a JSON header.

A model file holds

* ``__header__``: a uint8 array with UTF-8 JSON: the format name and version, the model's
  class, its constructor arguments (layer sizes, corruption levels, ...), the dtype, the sda
  version, and any training state the caller adds;
* ``param_0``, ``param_1``, ...: every parameter, in the order of :func:`model_parameters`.

Loading never unpickles (``allow_pickle=False``) and accepts only plain numeric arrays whose
shapes match the architecture in the header; anything else raises :class:`ModelFileError`.
Sizes, shapes and the header's nesting are checked before anything large is read, so a
small forged file cannot take much time or memory either.
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytensor

from sda.archive import READ_ERRORS, check_zip_signature, npy_layout, npz_members, read_member
from sda.utils import MAX_JSON_DEPTH, atomic_write, json_depth
from sda.version import __version__

__all__ = ["ModelFileError", "FORMAT", "SaveLoadMixin", "model_config", "model_parameters",
           "save_model", "load_model", "read_model_file", "write_archive", "read_archive"]

FORMAT = "sda-model"
FORMAT_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER_BYTES = 1 << 20
_MAX_FILE_BYTES = 8 << 30  # a 3×4000 float64 network's checkpoint is under 2 GiB
_MAX_ENTRIES = 4096  # a model has 2 arrays per layer (3 per pretrained one); a checkpoint about twice that
# np.savez stores entries uncompressed, so real files inflate 1:1 (a checkpoint's momentum
# velocities too). 64x leaves room for files re-packed with np.savez_compressed, the slack
# for small ones of zeros (fresh biases), and still keeps a zip bomb (1000x) far off.
_MAX_INFLATION = 64
_INFLATION_SLACK = 16 << 20


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


def read_archive(path, expected_format: str, error=None, version: int = FORMAT_VERSION) -> tuple[dict, dict]:
    """``(header, arrays)`` of an archive written by :func:`write_archive`.

    Never unpickles: object arrays, pickles and anything that is not an .npz of numeric
    arrays with a JSON header of ``expected_format`` and ``version`` raise ``error`` (ModelFileError).
    A forged file cannot make reading slow or large either: every entry's size and shape
    are checked before any array is inflated (see :func:`_npz_entries`, :func:`sda.archive.npy_layout`).
    """
    error = error or ModelFileError
    path = Path(path)
    try:
        if not path.is_file():
            raise error(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise error(f"{path}: {path.stat().st_size} bytes, larger than any sda file ({_MAX_FILE_BYTES})")
        check_zip_signature(path, error)  # before a large file of something else is read whole
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    with _open_zip(path, data, error) as archive:
        try:
            entries = _npz_entries(path, archive, len(data), error)
            layouts = {name: npy_layout(path, archive, name, info, error) for name, info in entries.items()}
            _check_header_layout(path, layouts, error)
            header = _parse_header(path, read_member(archive, entries.pop(_HEADER)), expected_format, version, error)
            return header, {name: read_member(archive, info) for name, info in entries.items()}
        except error:
            raise
        except READ_ERRORS as exc:
            raise error(f"{path}: damaged .npz archive ({_one_line(exc)})") from None


def _one_line(exc: Exception, limit: int = 200) -> str:
    """``exc``'s message on one line, cut short: errors quote parts of the file, which a
    forger controls."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _open_zip(path, data: bytes, error) -> zipfile.ZipFile:
    """The zip archive in ``data``; anything else is refused as such (numpy would call it
    pickled data, which is misleading: random bytes are not a pickle)."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError) as exc:  # RuntimeError: zip versions
        raise error(f"{path}: not an .npz (zip) archive ({_one_line(exc)})") from None


def _npz_entries(path, archive: zipfile.ZipFile, archive_size: int, error) -> dict:
    """The archive's members by array name (:func:`sda.archive.npz_members`), refused before
    anything is inflated when their declared sizes add up to more than an .npz of this size
    could hold.

    zipfile never inflates a member beyond its declared ``file_size``, so bounding the sum
    of those bounds the memory that reading can take, whatever the compressed data hold.
    """
    entries = npz_members(path, archive, error, _MAX_ENTRIES)
    total = sum(info.file_size for info in entries.values())
    limit = _MAX_INFLATION * archive_size + _INFLATION_SLACK
    if total > limit:
        raise error(f"{path}: entries would inflate to {total} bytes, more than {limit} "
                    f"for a file of {archive_size} bytes")
    return entries


def _check_header_layout(path, layouts: dict, error) -> None:
    """The header entry must be a short byte string: refused by size before it is read."""
    if _HEADER not in layouts:
        raise error(f"{path}: not an sda file (no {_HEADER} entry)")
    dtype, shape = layouts[_HEADER]
    if dtype != np.uint8 or len(shape) != 1:
        raise error(f"{path}: malformed header entry ({dtype}, shape {shape})")
    if shape[0] > _MAX_HEADER_BYTES:
        raise error(f"{path}: header of {shape[0]} bytes is larger than {_MAX_HEADER_BYTES}")


def _parse_header(path, raw: np.ndarray, expected_format: str, version: int, error) -> dict:
    """The JSON header, refused if it nests too deeply (``json`` recurses once per level,
    so a header nested 100,000 deep would overflow the stack) or has the wrong format."""
    text = raw.tobytes()
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise error(f"{path}: header nests {depth} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        header = json.loads(text.decode("utf-8"))
    except ValueError as exc:  # also numbers longer than Python's int digit limit
        raise error(f"{path}: header is not valid JSON ({_one_line(exc)})") from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        found = header.get("format") if isinstance(header, dict) else None
        raise error(f"{path}: not an {expected_format} file (format {found!r:.80})")
    if header.get("format_version") != version:
        raise error(f"{path}: format version {header.get('format_version')!r:.80} is not supported "
                    f"(this sda reads version {version})")
    return header


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
    _check_param_entries(path, arrays, n_params)
    params = [arrays[f"param_{i}"] for i in range(n_params)]
    for i, array in enumerate(params):
        if array.dtype not in (np.float32, np.float64):  # what PyTensor computes in
            raise ModelFileError(f"{path}: param_{i} has dtype {array.dtype}, expected float32 or float64")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{path}: param_{i} holds NaN or infinite values")
    if not isinstance(header.get("config"), dict) or not isinstance(header.get("class"), str):
        raise ModelFileError(f"{path}: header lacks the model class or configuration")
    return header, params


def _check_param_entries(path, arrays: dict, n_params) -> None:
    """The entries must be exactly ``param_0`` .. ``param_{n_params-1}``.

    ``n_params`` is compared with the number of entries first, so the names built to
    compare them are never more than the file holds (a header claiming 10**12 would
    otherwise take minutes and gigabytes before failing).
    """
    if type(n_params) is not int or not 0 <= n_params <= len(arrays):  # type(): bools are ints
        raise ModelFileError(f"{path}: parameter entries do not match n_params={n_params!r:.40} "
                             f"(the file holds {len(arrays)} arrays)")
    odd = set(arrays) ^ {f"param_{i}" for i in range(n_params)}
    if odd:
        raise ModelFileError(f"{path}: parameter entries do not match n_params={n_params} "
                             f"(missing or unexpected: {sorted(odd)[:3]!r:.120})")


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
