"""Pictures of what an SdA learned: filters, reconstructions of corrupted digits, learning curves.

Each picture has a function that returns an array or a matplotlib figure (for notebooks) and
:func:`save_run_pictures` writes them all as PNG files (for the script).

Filters of deeper layers.  A unit of layer :math:`k` has no image of its own; we show the
linear combination of first-layer filters that its weights make,
:math:`W^{(1)} W^{(2)} \\cdots W^{(k)}` (column :math:`j` for unit :math:`j`), which ignores the
sigmoids in between.  It is the simplest of the projections compared by Erhan, Bengio, Courville
and Vincent, "Visualizing higher-layer features of a deep network" (2009): cheap and
deterministic, though cruder than activation maximisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytensor.tensor as pt

from sda.modes import compile_function, resolve_mode
from sda.utils import atomic_write, tile_raster_images

__all__ = ["layer_filters", "filters_image", "corrupt_and_reconstruct", "reconstructions_image",
           "learning_curves_figure", "save_png", "save_run_pictures"]


def layer_filters(sda, layer: int) -> np.ndarray:
    """Input-space filters of the units of hidden ``layer``: shape (n_units, n_ins)."""
    if not 0 <= layer < sda.n_layers:
        raise ValueError(f"layer must be in 0 .. {sda.n_layers - 1}, got {layer}")
    product = np.asarray(sda.sigmoid_layers[0].W.get_value(), dtype=np.float64)
    for k in range(1, layer + 1):
        product = product @ np.asarray(sda.sigmoid_layers[k].W.get_value(), dtype=np.float64)
    return product.T


def filters_image(filters, img_shape=(28, 28), tile_shape=(10, 10)) -> np.ndarray:
    """uint8 image of the first ``tile_shape`` filters (rows of ``filters``), each scaled to [0, 255]."""
    return tile_raster_images(filters, img_shape, tile_shape, tile_spacing=(1, 1))


def corrupt_and_reconstruct(da, images, corruption_level: float, mode=None):
    """``(corrupted, reconstructed)``: ``images`` corrupted by the dA's own noise
    (:meth:`sda.dA.dA.get_corrupted_input`), and what the dA makes of them.

    ``da`` is a :class:`sda.dA.dA` whose input is the images (an SdA's ``dA_layers[0]``).  The
    mask is drawn from the dA's generator as it stands, which is left unchanged: training that
    follows draws exactly what it would have drawn.
    """
    images = np.asarray(images, dtype=da.W.dtype)
    x = pt.matrix("x", dtype=da.W.dtype)
    corrupted = da.get_corrupted_input(x, corruption_level)
    function = compile_function([x], [corrupted, da.get_reconstructed_input(da.get_hidden_values(corrupted))],
                                resolve_mode(mode))
    noisy, reconstructed = function(images)
    return np.asarray(noisy), np.asarray(reconstructed)


def reconstructions_image(images, corrupted, reconstructed, img_shape=(28, 28)) -> np.ndarray:
    """uint8 image with three rows: originals, corrupted versions, reconstructions."""
    rows = np.concatenate([images, corrupted, reconstructed])
    return tile_raster_images(rows, img_shape, (3, len(images)), tile_spacing=(1, 1),
                              scale_rows_to_unit_interval=False)


def learning_curves_figure(pretraining_costs, finetune_history):
    """matplotlib Figure: pretraining cost per layer per epoch (left) and validation / test
    error per fine-tuning epoch (right)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    for layer, costs in enumerate(pretraining_costs):
        if costs:
            left.plot(range(1, len(costs) + 1), np.asarray(costs) / costs[0], marker="o",
                      label=f"layer {layer} (first epoch {costs[0]:.1f})")
    left.set(title="pretraining", xlabel="epoch", ylabel="reconstruction cost / first epoch's")
    left.legend()
    epochs = [r["epoch"] for r in finetune_history if r["validation_error"] is not None]
    valid = [100 * r["validation_error"] for r in finetune_history if r["validation_error"] is not None]
    right.plot(epochs, valid, label="validation error")
    tests = [(r["epoch"], 100 * r["test_error"]) for r in finetune_history if r["test_error"] is not None]
    if tests:
        right.plot(*zip(*tests), "o", label="test error at a new best validation")
    right.set(title="fine-tuning", xlabel="epoch", ylabel="error (%)")
    right.legend()
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def save_png(array_or_figure, path) -> Path:
    """Write a uint8 image array or a matplotlib figure as a PNG, atomically."""
    from PIL import Image

    if isinstance(array_or_figure, np.ndarray):
        image = Image.fromarray(array_or_figure)
        return atomic_write(path, lambda f: image.save(f, format="PNG"))
    return atomic_write(path, lambda f: array_or_figure.savefig(f, format="png", dpi=100))


def save_run_pictures(sda, results: dict, images, output_dir, img_shape=None, mode=None,
                      log=None) -> list[Path]:
    """Write ``filters_layer<k>.png`` for each layer, ``reconstructions.png`` (10 test images
    at the first layer's corruption level) and, when matplotlib is installed,
    ``learning_curves.png``.  ``img_shape`` defaults to square images (28x28 for MNIST), or
    strips when the input size is not a square.  Returns the paths written."""
    output_dir = Path(output_dir)
    if img_shape is None:
        side = int(round(np.sqrt(sda.n_ins)))
        img_shape = (side, side) if side * side == sda.n_ins else (1, sda.n_ins)
    written = [save_png(filters_image(layer_filters(sda, k), img_shape), output_dir / f"filters_layer{k}.png")
               for k in range(sda.n_layers)]
    sample = np.asarray(images[:10])
    corrupted, reconstructed = corrupt_and_reconstruct(sda.dA_layers[0], sample,
                                                       sda.corruption_levels[0], mode=mode)
    written.append(save_png(reconstructions_image(sample, corrupted, reconstructed, img_shape),
                             output_dir / "reconstructions.png"))
    try:
        figure = learning_curves_figure(results["pretraining"]["costs"], results["finetuning"]["history"])
    except ImportError:
        if log:
            log("matplotlib is not installed: no learning_curves.png (pip install -e .[plot])")
    else:
        written.append(save_png(figure, output_dir / "learning_curves.png"))
    return written
