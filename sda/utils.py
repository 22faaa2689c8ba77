"""Pictures of weights and digits, and writing files without ever leaving half a file.

``tile_raster_images`` lays out many small images (one per row of a matrix) in a grid, as
in the tutorial's ``utils.py``, so that the filters a layer learned can be looked at.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["scale_to_unit_interval", "tile_raster_images", "give_default_permissions", "atomic_write",
           "write_json", "format_duration", "tqdm", "MAX_JSON_DEPTH", "MAX_JSON_BYTES", "json_depth", "parse_json",
           "read_bounded", "read_json", "read_json_lines"]

#: The deepest nesting any JSON sda reads may have: its own files nest about 5 deep, and ``json``
#: recurses once per level (a file nested 100,000 deep would overflow the stack).
MAX_JSON_DEPTH = 64
#: The largest JSON file sda reads (a run's results of 1,000 epochs take under 1 MiB).
MAX_JSON_BYTES = 256 << 20
_BRACKET_STEPS = np.zeros(256, np.int32)  # by byte: +1 opens an array or object, -1 closes one
_BRACKET_STEPS[list(b"[{")], _BRACKET_STEPS[list(b"]}")] = 1, -1

# Progress bars: tqdm.auto draws a widget in a notebook, but only where ipywidgets is installed;
# without it, it warns in every notebook ("IProgress not found") and falls back to the text bar,
# which tqdm itself gives without the warning.
if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm import tqdm


def scale_to_unit_interval(ndar, eps: float = 1e-8) -> np.ndarray:
    """Affinely map ``ndar`` to [0, 1]: ``(x - min) / (max - min + eps)``."""
    ndar = np.asarray(ndar, dtype=np.float64)
    ndar = ndar - ndar.min()
    return ndar / (ndar.max() + eps)


def tile_raster_images(X, img_shape, tile_shape, tile_spacing=(0, 0),
                       scale_rows_to_unit_interval: bool = True, output_pixel_vals: bool = True):
    """Arrange the rows of ``X`` as ``img_shape`` images on a ``tile_shape`` grid.

    Parameters
    ----------
    X
        array (n_images, rows * cols); row ``i`` goes to grid cell ``i`` (row-major).
        Cells beyond ``n_images`` stay black.
    img_shape
        (rows, cols) of each image.
    tile_shape
        (grid rows, grid columns).
    tile_spacing
        pixels of black between cells (vertical, horizontal).
    scale_rows_to_unit_interval
        rescale each image to [0, 1] on its own first.
    output_pixel_vals
        return uint8 in 0..255 instead of floats in [0, 1].

    Returns
    -------
    numpy.ndarray
        A 2-d array of shape ``((rows + sv) * grid_rows - sv, (cols + sh) * grid_cols - sh)``.
    """
    X = np.asarray(X)
    (h, w), (th, tw), (sv, sh) = img_shape, tile_shape, tile_spacing
    if X.ndim != 2 or X.shape[1] != h * w:
        raise ValueError(f"X must have shape (n, {h * w}) for images of {img_shape}, got {X.shape}")
    out = np.zeros(((h + sv) * th - sv, (w + sh) * tw - sh), dtype=np.float64)
    for i in range(min(th * tw, X.shape[0])):
        image = X[i].reshape(h, w).astype(np.float64)
        if scale_rows_to_unit_interval:
            image = scale_to_unit_interval(image)
        r, c = divmod(i, tw)
        out[r * (h + sv): r * (h + sv) + h, c * (w + sh): c * (w + sh) + w] = image
    if output_pixel_vals:
        return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    return out


def give_default_permissions(path) -> None:
    """mkstemp makes files readable by their owner only; give ``path`` the permissions a
    plain ``open(path, "w")`` would have (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over
    ``path``: a crash never leaves a partial file, and an old file stays until the new one is whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        give_default_permissions(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def format_duration(seconds: float) -> str:
    """A duration as a person reads it: "45 s", "12 min", "2.1 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def json_depth(text: bytes) -> int:
    """How deeply JSON ``text`` nests arrays and objects (0 when it cannot pass
    :data:`MAX_JSON_DEPTH`), found without recursing.

    Brackets count only outside strings, which run between quotes not escaped by an odd
    run of backslashes. Vectorised, as a forged megabyte holds a million brackets; past
    json's first error this may misread the text, but json stops there anyway.
    """
    if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:  # the usual file: no scan needed
        return 0
    chars = np.frombuffer(text, dtype=np.uint8)
    position = np.arange(len(chars), dtype=np.int64)
    last_other = np.maximum.accumulate(np.where(chars == ord("\\"), -1, position))
    backslashes_before = position - 1 - np.concatenate(([-1], last_other[:-1]))
    quotes = (chars == ord('"')) & (backslashes_before % 2 == 0)
    outside = np.cumsum(quotes, dtype=np.int64) % 2 == 0
    return int(np.cumsum(_BRACKET_STEPS[chars] * outside).max(initial=0))


def parse_json(text: bytes | str, where: str):
    """The value of JSON ``text``, refused with ValueError naming ``where`` when it nests deeper
    than :data:`MAX_JSON_DEPTH` (checked before ``json`` parses), is not JSON, or names a key of
    an object twice.  For text a caller already holds, too (a model file's header)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: JSON nested {depth} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(raw, object_pairs_hook=_distinct_keys)
    except _DuplicateKey as exc:
        raise ValueError(f"{where}: JSON object holds the key {str(exc)[:80]!r} twice (which one counts?)") from None
    except (ValueError, RecursionError) as exc:  # ValueError: also invalid UTF-8, over-long integers
        raise ValueError(f"{where}: not valid JSON ({' '.join(str(exc).split())[:120]})") from None


class _DuplicateKey(Exception):
    """A JSON object names a key twice: ``json`` would keep the last silently."""


def _distinct_keys(pairs: list) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        keys = [key for key, _ in pairs]
        raise _DuplicateKey(next(key for k, key in enumerate(keys) if key in keys[:k]))
    return value


def read_bounded(path, max_bytes: int, what: str = "JSON file") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them: refused with
    ValueError, naming ``path``, when it is larger (checked before reading, and by reading no
    more than one byte past the bound, as a file may grow or a device claim size 0) or is not a
    regular file (a device such as ``/dev/zero`` never ends, a FIFO blocks: it is opened without
    waiting and refused). OSError as opening raises it (a missing file, no permission)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise ValueError(f"{path}: not a regular file, so not a {what} sda reads")
    with os.fdopen(fd, "rb") as f:
        if status.st_size > max_bytes:
            raise ValueError(f"{path}: {status.st_size} bytes, more than the {max_bytes} of any {what} sda reads")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: more than the {max_bytes} bytes of any {what} sda reads")
    return data


def read_json(path, max_bytes: int = MAX_JSON_BYTES):
    """The JSON value in file ``path``, bounded in size and depth (ValueError, or OSError)."""
    return parse_json(read_bounded(path, max_bytes), str(path))


def read_json_lines(path, max_bytes: int = MAX_JSON_BYTES) -> list:
    """The JSON values of a file of one per line (``metrics.jsonl``), bounded as :func:`read_json`."""
    return [parse_json(line, f"{path}, line {k}")
            for k, line in enumerate(read_bounded(path, max_bytes).splitlines(), start=1) if line.strip()]
