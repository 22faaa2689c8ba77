"""Pictures of weights and digits, and writing files without ever leaving half a file.

``tile_raster_images`` lays out many small images (one per row of a matrix) in a grid, as
in the tutorial's ``utils.py``, so that the filters a layer learned can be looked at.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["scale_to_unit_interval", "tile_raster_images", "give_default_permissions", "atomic_write",
           "write_json", "format_duration", "tqdm"]

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
    X : array (n_images, rows * cols); row ``i`` goes to grid cell ``i`` (row-major).
        Cells beyond ``n_images`` stay black.
    img_shape : (rows, cols) of each image.
    tile_shape : (grid rows, grid columns).
    tile_spacing : pixels of black between cells (vertical, horizontal).
    scale_rows_to_unit_interval : rescale each image to [0, 1] on its own first.
    output_pixel_vals : return uint8 in 0..255 instead of floats in [0, 1].

    Returns a 2-d array of shape
    ``((rows + sv) * grid_rows - sv, (cols + sh) * grid_cols - sh)``.
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
