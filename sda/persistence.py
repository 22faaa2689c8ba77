"""Model files that can never run code: `safetensors <https://github.com/huggingface/safetensors>`_
files of named tensors plus a JSON header.

A safetensors file is an 8-byte little-endian length *n*, *n* bytes of JSON naming every tensor
(its dtype, shape and ``data_offsets``, the byte range it takes in the data that follow) with a
``__metadata__`` object of strings, then the tensors' bytes, back to back.  An sda model file
(``best_model.safetensors``) holds

* one tensor per shared variable that defines the model, named by where it sits in the model,
  as the attributes that hold it are: a ``LogisticRegression``'s ``W`` and ``b``; a ``dA``'s
  ``W``, ``b``, ``b_prime`` (a ``SparseAutoencoder``'s ``W_prime`` too); an ``MLP``'s
  ``hiddenLayer.W`` .. ``logRegressionLayer.b``; an ``SdA``'s ``sigmoid_layers.0.W``,
  ``sigmoid_layers.0.b``, ..., ``logLayer.W``, ``logLayer.b``, then each autoencoder's decoder
  (``dA_layers.0.b_prime``, and ``dA_layers.0.W_prime`` for a sparse one), so that pretraining
  can resume too.  Each model class names them (``variable_shapes``, below);
* when the model's inputs were scaled onto [0, 1] (:class:`sda.scaling.UnitScaler`), the
  scaler's ``scaler.low`` and ``scaler.span``, float64, one per input, so that new data are
  scaled as the training data were (the header's ``scaled`` says whether they are there);
* in the metadata, under ``"sda"``, the header as a JSON string: the format name and version,
  the model's class, its constructor arguments (layer sizes, corruption levels, ...), the dtype,
  the sda version, and any training state the caller adds.

``safetensors.numpy.load_file(path)`` opens one as a dict of numpy arrays anywhere.  Loading
here trusts nothing in the file, and refuses with :class:`ModelFileError` (one line) before any
tensor is read: a file larger than any sda file, a header length beyond the file or above
:data:`_MAX_HEADER_BYTES`, a header or metadata that is not JSON, nests too deeply or is not
an object, an unknown format or version, and tensors whose names, dtypes (float32 or float64,
all the header's), shapes or byte ranges differ from what the header's class and configuration
imply or do not tile the data exactly.  So a small forged file can take neither much time nor
memory, and no code can run: the format holds numbers and JSON only, never a pickle.
Model files and checkpoints of sda 0.3 were ``.npz`` archives; they are refused naming what
they are, from their small JSON member alone.  Files are written to a temporary name and
renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytensor
import safetensors
import safetensors.numpy

from sda.archive import READ_ERRORS, npy_layout, npz_members, read_member
from sda.scaling import UnitScaler
from sda.utils import atomic_write, parse_json
from sda.version import __version__

__all__ = ["ModelFileError", "FORMAT", "FORMAT_VERSION", "SaveLoadMixin", "model_config", "model_parameters",
           "save_model", "load_model", "load_model_and_scaler", "read_model_file", "write_tensor_file", "read_tensor_file", "model_entry",
           "check_model_layout", "model_tensors", "build_model"]

FORMAT = "sda-model"
#: Version 3 records the scaling of the inputs; version 2 did not; version 1 was sda 0.3's ``.npz``.
FORMAT_VERSION = 3
_METADATA_KEY = "sda"
#: The bound on a file's JSON header: a checkpoint of an 800-epoch run takes about 100 KiB.
_MAX_HEADER_BYTES = 4 << 20
_MAX_FILE_BYTES = 8 << 30  # a 3×4000 float64 network's checkpoint is under 2 GiB
_MAX_TENSORS = 4096  # a model has 2 tensors per layer (3 per pretrained one); a checkpoint about twice that
#: The dtypes PyTensor computes in, as safetensors names them.
_DTYPES: dict[str, np.dtype] = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # how sda 0.3's .npz files start


class ModelFileError(ValueError):
    """A model file is unreadable, not an sda model, or inconsistent with its header."""


class SaveLoadMixin:
    """``model.save(path)`` and ``Class.load(path)``, for every model class that inherits this.

    A subclass registers itself under its class name (the name a file's header records) and
    describes itself to this module, which therefore imports no model:

    * ``saved_config()``: the constructor arguments that rebuild its architecture (JSON-ready);
    * ``saved_variables()``: the shared variables that define it, in a fixed order;
    * ``variable_shapes(config)`` (classmethod): ``{tensor name: shape}`` of those variables, in
      that order, for a configuration: a file's tensors are checked against it before any is
      read or any model built (so a forged header cannot make us allocate);
    * ``from_config(config, rng)`` (classmethod): a new model of that architecture.
    """

    registry: dict[str, type[SaveLoadMixin]] = {}
    params: list  # the model's trainable shared variables (each model class sets them)

    def saved_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def variable_shapes(cls, config: dict) -> dict:
        raise NotImplementedError

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
        return cls(rng, **config)  # type: ignore[call-arg]  # each model class has its own constructor

    def save(self, path, training_state: dict | None = None) -> Path:
        """Write this model's architecture and parameters to ``path`` (a ``.safetensors`` file)."""
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


def write_tensor_file(path, header: dict, tensors: dict) -> Path:
    """Atomically write ``tensors`` (float32 or float64 numpy arrays, by name) and a JSON
    ``header`` (in the metadata) as a safetensors file."""
    # safetensors copies each array's buffer as it lies in memory: it must be C-contiguous
    # (np.asarray, not np.ascontiguousarray, which makes a learning rate's 0-d array 1-d)
    arrays = {name: np.asarray(value, order="C") for name, value in tensors.items()}
    data = safetensors.numpy.save(arrays, metadata={_METADATA_KEY: json.dumps(header)})
    return atomic_write(path, lambda f: f.write(data))


def read_tensor_file(path, expected_format: str, error=None, version: int = FORMAT_VERSION,
                     check_layout=None) -> tuple[dict, dict]:
    """``(header, tensors)`` of a file written by :func:`write_tensor_file`.

    Everything but the tensors' bytes is checked first (the module docstring lists what):
    the file's size, its header's length, JSON and layout, the sda header's format and
    ``version``, then ``check_layout(header, layout)`` with ``layout`` = ``{name: (dtype,
    shape)}``, which raises ``error`` when the tensors are not the ones the header implies.
    Only then are the tensors read, by safetensors.  Anything wrong raises ``error``
    (:class:`ModelFileError` or a subclass), in one line naming the file.
    """
    error = error or ModelFileError
    path = Path(path)
    try:
        if not path.is_file():
            raise error(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise error(f"{path}: {size} bytes, larger than any sda file ({_MAX_FILE_BYTES})")
        with open(path, "rb") as f:
            start = f.read(8)
            if start[:4] in _ZIP_SIGNATURES:
                raise error(_old_npz_file(path, error))
            if len(start) < 8:
                raise error(f"{path}: {size} bytes, too short for a safetensors file")
            n = int.from_bytes(start, "little")
            if n > min(_MAX_HEADER_BYTES, size - 8):
                raise error(f"{path}: not a safetensors file (it claims a header of {n} bytes; the file "
                            f"has {size - 8} after the length, sda reads at most {_MAX_HEADER_BYTES})")
            raw = f.read(n)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    entries, metadata = _safetensors_header(path, raw, error)
    header = _sda_header(path, metadata, expected_format, version, error)
    layout = _tensor_layout(path, entries, size - 8 - n, error)
    if check_layout is not None:
        check_layout(header, layout)
    return header, _read_tensors(path, metadata, layout, error)


def _one_line(exc: Exception, limit: int = 200) -> str:
    """``exc``'s message on one line, cut short: errors quote parts of the file, which a
    forger controls."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _safetensors_header(path, raw: bytes, error) -> tuple[dict, str]:
    """The tensor entries and the sda metadata string of a safetensors header."""
    try:
        entries = parse_json(raw, "header")  # bounded in depth before json recurses
    except ValueError as exc:
        raise error(f"{path}: not a safetensors file ({_one_line(exc)})") from None
    if not isinstance(entries, dict):
        raise error(f"{path}: not a safetensors file (its header is a {type(entries).__name__}, not an object)")
    metadata = entries.pop("__metadata__", None)
    if not isinstance(metadata, dict) or not isinstance(metadata.get(_METADATA_KEY), str):
        raise error(f"{path}: not an sda file (no {_METADATA_KEY!r} string in its safetensors metadata)")
    if len(entries) > _MAX_TENSORS:
        raise error(f"{path}: {len(entries)} tensors, more than an sda file holds ({_MAX_TENSORS})")
    return entries, metadata[_METADATA_KEY]


def _sda_header(path, text: str, expected_format: str, version: int, error) -> dict:
    """The sda header in the metadata, refused if it nests too deeply (``json`` recurses once
    per level), is not a JSON object or has the wrong format or version."""
    try:
        header = parse_json(text, f"{path}: metadata")
    except ValueError as exc:
        raise error(_one_line(exc, 300)) from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise error(f"{path}: not an {expected_format} file (format {found!r:.80})")
    if type(header.get("format_version")) is not int or header["format_version"] != version:  # not 2.0 nor True
        raise error(f"{path}: format version {header.get('format_version')!r:.80} is not supported "
                    f"(this sda reads version {version})")
    return header


def _tensor_layout(path, entries: dict, data_bytes: int, error) -> dict:
    """``{name: (dtype, shape)}`` of the header's tensors, once each is float32 or float64 with a
    shape of plain counts whose size is its byte range, and the ranges tile the ``data_bytes``
    after the header exactly (no overlap, no gap, nothing beyond the file)."""
    layout, ranges = {}, []
    for name, entry in entries.items():
        if not isinstance(entry, dict) or set(entry) != _TENSOR_KEYS:
            raise error(f"{path}: tensor {name!r:.80} is not described by {sorted(_TENSOR_KEYS)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPES:
            raise error(f"{path}: tensor {name!r:.80} has dtype {dtype!r:.20}, expected F32 or F64")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):  # type(): not bools
            raise error(f"{path}: tensor {name!r:.80} has shape {shape!r:.80}, not a list of counts")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise error(f"{path}: tensor {name!r:.80} has data_offsets {offsets!r:.80}, not a byte range")
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise error(f"{path}: tensor {name!r:.80} claims shape {shape!r:.80} ({nbytes} bytes of {dtype}) "
                        f"but spans {offsets[1] - offsets[0]} bytes")
        layout[name] = (_DTYPES[dtype], tuple(shape))
        ranges.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(ranges):
        if begin != end:
            raise error(f"{path}: tensor {name!r:.80} starts at byte {begin} of the data, not at {end} "
                        f"({'overlapping another' if begin < end else 'leaving a gap'})")
        end = stop
    if end != data_bytes:
        raise error(f"{path}: the tensors span {end} bytes, but the file holds {data_bytes} after its header")
    return layout


def _read_tensors(path, metadata: str, layout: dict, error) -> dict:
    """The tensors, read by safetensors once :func:`_tensor_layout` has vouched for the file.
    safetensors opens it anew, so what it sees is compared with what was checked before any
    tensor is read: a file replaced in between is refused too."""
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            slices = {name: f.get_slice(name) for name in f.keys()}  # dtype and shape, no data
            seen = {name: (_DTYPES.get(view.get_dtype()), tuple(view.get_shape())) for name, view in slices.items()}
            if seen != layout or (f.metadata() or {}).get(_METADATA_KEY) != metadata:
                raise error(f"{path}: the file changed while it was read")
            return {name: f.get_tensor(name) for name in layout}
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{path}: damaged safetensors file ({_one_line(exc)})") from None


def _old_npz_file(path, error) -> str:
    """Why an ``.npz`` archive is refused, naming what it is (an sda 0.3 model file or
    checkpoint, and its version) from its small ``__header__`` member, the only one read."""
    what = f"{path} is an .npz archive, not a .safetensors sda file"
    try:
        with zipfile.ZipFile(path) as archive:
            info = npz_members(path, archive, error, _MAX_TENSORS).get("__header__")
            if info is None:
                return what
            dtype, shape = npy_layout(path, archive, "__header__", info, error)
            if dtype != np.uint8 or len(shape) != 1 or shape[0] > _MAX_HEADER_BYTES:
                return what
            old = parse_json(read_member(archive, info).tobytes(), str(path))
    except (error, *READ_ERRORS):  # READ_ERRORS include parse_json's ValueError
        return what
    kinds = {"sda-model": "model file", "sda-checkpoint": "checkpoint"}
    kind = kinds.get(str(old.get("format"))) if isinstance(old, dict) else None
    if kind is None:
        return what
    made_by = f"sda {old['sda_version']!s:.20} " if isinstance(old.get("sda_version"), str) else ""
    remedy = "retrain" if kind == "model file" else "start the run again"
    return (f"{path} is an {made_by}.npz {kind} (format version {old.get('format_version')!r:.20}); "
            f"this sda ({__version__}) reads .safetensors {kind}s only: {remedy}")


def model_entry(model, values=None, prefix: str = "") -> tuple[dict, dict]:
    """``(description, tensors)`` of ``model``: its class, configuration and dtype as a header
    holds them, and its parameters named as the class's ``variable_shapes`` says, each after ``prefix``.
    ``values`` replaces the parameters' current values (in :func:`model_parameters` order)."""
    params = model_parameters(model)
    config = model_config(model)
    description = {"class": type(model).__name__, "config": config, "dtype": str(params[0].dtype)}
    if values is None:
        values = [p.get_value() for p in params]
    if len(values) != len(params):
        raise ValueError(f"values has {len(values)} arrays for {len(params)} parameters")
    names = type(model).variable_shapes(config)
    return description, {prefix + name: value for name, value in zip(names, values, strict=True)}


def save_model(model, path, training_state: dict | None = None, values=None,
               scaler: UnitScaler | None = None) -> Path:
    """Write ``model`` (an SdA, dA, MLP or LogisticRegression) to ``path`` atomically.

    ``training_state`` (JSON-serialisable) is stored in the header, e.g. epochs and scores.
    ``values`` replaces the parameters' current values (in :func:`model_parameters` order),
    e.g. to save the best parameters seen while training goes on.  ``scaler``: how the inputs
    were scaled onto [0, 1] for training (None: they were not).
    """
    description, tensors = model_entry(model, values)
    scaling = scaler.tensors() if scaler is not None else {}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **description, "sda_version": __version__,
              "training_state": training_state or {}, "scaled": bool(scaling)}
    return write_tensor_file(path, header, {**tensors, **scaling})


def read_model_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the named parameters of a model file (in :func:`model_parameters` order),
    validated but not built into a model."""
    header, params, _ = _read_model_file(path)
    return header, params


def _read_model_file(path) -> tuple[dict, dict[str, np.ndarray], UnitScaler]:
    header, tensors = read_tensor_file(path, FORMAT, check_layout=lambda h, layout: _check_model_file(path, h, layout))
    scaling = {name: tensors[name] for name in _SCALER_TENSORS if name in tensors}
    for name, array in scaling.items():
        if not (np.all(np.isfinite(array)) and (name != "scaler.span" or np.all(array > 0))):
            raise ModelFileError(f"{path}: {name} holds {'spans not above 0' if name == 'scaler.span' else 'NaN'} "
                                 f"or infinite values")
    return header, model_tensors(path, header, tensors), UnitScaler.from_tensors(scaling)


_MODEL_HEADER_KEYS = {"format", "format_version", "class", "config", "dtype", "sda_version", "training_state",
                      "scaled"}
_SCALER_TENSORS = ("scaler.low", "scaler.span")


def _check_model_file(path, header: dict, layout: dict) -> None:
    """A model file's header holds the keys :func:`save_model` writes, each of its kind, and
    its tensors are the model's, with the scaler's when the header says the inputs were scaled:
    one float64 per input of the model."""
    if set(header) != _MODEL_HEADER_KEYS:
        raise ModelFileError(f"{path}: header has unknown keys {sorted(set(header) - _MODEL_HEADER_KEYS)!r:.80} "
                             f"and lacks {sorted(_MODEL_HEADER_KEYS - set(header))!r:.80}")
    if (not isinstance(header["training_state"], dict) or not isinstance(header["sda_version"], str)
            or type(header["scaled"]) is not bool):
        raise ModelFileError(f"{path}: header's training_state must be an object, sda_version a string and "
                             f"scaled true or false")
    model_layout = {name: entry for name, entry in layout.items() if name not in _SCALER_TENSORS}
    check_model_layout(path, header, model_layout)
    n_ins = next(iter(model_layout.values()))[1][0]  # every model's first tensor is its input weights
    scaling = {name: entry for name, entry in layout.items() if name in _SCALER_TENSORS}
    expected = {name: (np.dtype(np.float64), (n_ins,)) for name in _SCALER_TENSORS} if header["scaled"] else {}
    if scaling != expected:
        raise ModelFileError(f"{path}: tensors {sorted(scaling)!r} are not the scaler of {n_ins} inputs that the "
                             f"header's scaled={str(header['scaled']).lower()} implies")


def check_model_layout(path, description: dict, layout: dict, prefix: str = "", error=None) -> None:
    """The tensors named ``prefix...`` must be the ones ``description``'s class and configuration
    imply (:func:`model_entry`), by name, shape and dtype (the description's): checked before
    reading them, so that a header claiming huge layers, or tensors the model has not, are
    refused without allocating.  ``error``: the error to raise (:class:`ModelFileError`)."""
    error = error or ModelFileError
    if not isinstance(description.get("config"), dict) or not isinstance(description.get("class"), str):
        raise error(f"{path}: header lacks the model class or configuration")
    kind = description["class"]
    if kind not in SaveLoadMixin.registry:
        raise error(f"{path}: unknown model class {kind!r:.80} in header; expected one of "
                    f"{', '.join(SaveLoadMixin.registry)}")
    try:
        expected = {prefix + name: tuple(shape)
                    for name, shape in SaveLoadMixin.registry[kind].variable_shapes(description["config"]).items()}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise error(f"{path}: header's {kind} configuration is invalid: {_one_line(exc)}") from None
    odd = sorted(set(expected) ^ {name for name in layout if name.startswith(prefix)})
    if odd:
        missing = [name for name in odd if name in expected]
        raise error(f"{path}: the tensors are not a {kind}'s "
                    f"({'missing' if missing else 'unexpected'}: {(missing or odd)[:3]!r:.120})")
    if description.get("dtype") not in ("float32", "float64"):
        raise error(f"{path}: header's dtype {description.get('dtype')!r:.20} is not float32 or float64")
    dtype = np.dtype(description["dtype"])
    for name, shape in expected.items():
        if layout[name][1] != shape:
            raise error(f"{path}: {name} has shape {layout[name][1]}, the architecture needs {shape}")
        if layout[name][0] != dtype:
            raise error(f"{path}: {name} has dtype {layout[name][0]}, the header says {dtype}")


def model_tensors(path, description: dict, tensors: dict, prefix: str = "", error=None) -> dict:
    """The model's tensors of ``tensors`` (checked by :func:`check_model_layout`), in
    :func:`model_parameters` order and without ``prefix``, once each is finite."""
    names = SaveLoadMixin.registry[description["class"]].variable_shapes(description["config"])
    params = {name: tensors[prefix + name] for name in names}
    for name, array in params.items():
        if not np.all(np.isfinite(array)):
            raise (error or ModelFileError)(f"{path}: {prefix}{name} holds NaN or infinite values")
    return params


def build_model(path, description: dict, params: dict, seed: int = 0, error=None):
    """The model ``description`` describes, with the parameters ``params`` of :func:`model_tensors`:
    built in their dtype, so that it predicts exactly as the saved one did."""
    cls = SaveLoadMixin.registry[description["class"]]
    with pytensor.config.change_flags(floatX=description["dtype"]):
        try:
            model = cls.from_config(dict(description["config"]), np.random.RandomState(seed))
        except (TypeError, ValueError) as exc:
            raise (error or ModelFileError)(f"{path}: header's {description['class']} configuration is invalid: "
                                            f"{exc}") from None
    for shared, value in zip(model_parameters(model), params.values(), strict=True):
        shared.set_value(value.astype(shared.dtype, copy=False))
    return model


def load_model(path, seed: int = 0):
    """Rebuild the model saved in ``path``; returns ``(model, header)``.

    The model is built in the file's dtype, and its parameters are set to the saved values,
    so it predicts exactly as the saved one did.
    """
    model, header, _ = load_model_and_scaler(path, seed)
    return model, header


def load_model_and_scaler(path, seed: int = 0):
    """``(model, header, scaler)`` of ``path``: :func:`load_model`'s, and the scaler of its
    inputs (one that leaves them as they are, but for clipping to [0, 1], when they were not scaled)."""
    header, params, scaler = _read_model_file(path)
    return build_model(path, header, params, seed), header, scaler
