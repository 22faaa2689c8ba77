"""Pictures of what an SdA learned: filters, reconstructions of corrupted digits, learning curves.

Each picture is a matplotlib figure with a title and labels, so that it reads without the code
(for notebooks, and :func:`save_run_pictures` writes them as PNG files for the script); the
raw tiled arrays behind the first two are :func:`filters_image` and :func:`reconstructions_image`.

Filters of deeper layers.  A unit of layer :math:`k` has no image of its own; we show the
linear combination of first-layer filters that its weights make,
:math:`W^{(1)} W^{(2)} \\cdots W^{(k)}` (column :math:`j` for unit :math:`j`), which ignores the
sigmoids in between.  It is the simplest of the projections compared by Erhan, Bengio, Courville
and Vincent, "Visualizing higher-layer features of a deep network" (2009): cheap and
deterministic, though cruder than activation maximisation.  Of a layer's units we show those of
largest filter norm: the units whose weights grew most in training, where structure shows,
rather than the first ones, which may still be near their random start.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytensor.tensor as pt

from sda.modes import compile_function, resolve_mode
from sda.utils import atomic_write, tile_raster_images

__all__ = ["layer_filters", "strongest_filters", "filters_image", "filters_figure", "corrupt_and_reconstruct",
           "reconstructions_image", "reconstructions_figure", "learning_curves_figure", "save_png",
           "save_run_pictures", "image_shape"]

#: Filters shown per picture: a 10 x 10 grid.
N_FILTERS = 100
#: Screen pixels per image pixel in the saved filter picture (28 x 28 digits become 84 x 84 tiles).
_ZOOM = 3


def layer_filters(sda, layer: int) -> np.ndarray:
    """Input-space filters of the units of hidden ``layer``: shape (n_units, n_ins)."""
    if not 0 <= layer < sda.n_layers:
        raise ValueError(f"layer must be in 0 .. {sda.n_layers - 1}, got {layer}")
    product = np.asarray(sda.sigmoid_layers[0].W.get_value(), dtype=np.float64)
    for k in range(1, layer + 1):
        product = product @ np.asarray(sda.sigmoid_layers[k].W.get_value(), dtype=np.float64)
    return product.T


def strongest_filters(filters, n: int = N_FILTERS) -> np.ndarray:
    """The ``n`` rows of ``filters`` of largest Euclidean norm, the largest first."""
    filters = np.asarray(filters)
    order = np.argsort(-np.linalg.norm(filters, axis=1), kind="stable")
    return filters[order[:n]]


def filters_image(filters, img_shape=(28, 28), tile_shape=(10, 10)) -> np.ndarray:
    """uint8 image of the first ``tile_shape`` filters (rows of ``filters``), each scaled to [0, 255]."""
    return tile_raster_images(filters, img_shape, tile_shape, tile_spacing=(1, 1))


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid of ``n`` tiles, at most 10 wide."""
    columns = min(10, n)
    return -(-n // columns), columns


def filters_figure(filters, img_shape=(28, 28), what: str = "filters", note: str = ""):
    """matplotlib Figure of the :data:`N_FILTERS` filters of largest norm among the rows of
    ``filters``, titled "<what>: the 100 units of largest weight norm, of 1000"."""
    from matplotlib.figure import Figure

    shown = strongest_filters(filters)
    rows, columns = _grid(len(shown))
    image = filters_image(shown, img_shape, (rows, columns))
    height, width = image.shape
    inches = max(7.0, width * _ZOOM / 100)  # at 100 dpi, and wide enough for the title
    fig = Figure(figsize=(inches, inches * height / width + 1.1), layout="constrained")
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.set_axis_off()
    which = (f"all {len(shown)} units" if len(shown) == len(filters)
             else f"the {len(shown)} units of largest weight norm, of {len(filters)}")
    fig.suptitle(f"{what}: {which}", fontsize=12)
    ax.set_title("each unit's weights as an image, scaled on its own: black most negative, white most positive"
                 + (f"\n{note}" if note else ""), fontsize=9)
    return fig


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


#: The colour of the pixels that the noise changed, in the corrupted row.
_CHANGED_RGB = (1.0, 0.15, 0.1)


def _marked(image, changed) -> np.ndarray:
    """A grey ``image`` in [0, 1] as RGB, its ``changed`` pixels in :data:`_CHANGED_RGB`."""
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1)
    rgb[changed] = _CHANGED_RGB
    return rgb


def reconstructions_figure(images, corrupted, reconstructed, img_shape=(28, 28), noise: str = "masking",
                           level: float | None = None, autoencoder: str = "denoising autoencoder"):
    """matplotlib Figure: a row of ``images``, the row of their corrupted versions with every
    pixel the noise changed in red (except under Gaussian noise, which changes them all), and the
    row of the dA's reconstructions; each row labelled, the corrupted one with its noise, level
    and the share of pixels it changed."""
    from matplotlib.figure import Figure

    images, corrupted, reconstructed = (np.asarray(a, dtype=np.float64) for a in (images, corrupted, reconstructed))
    changed = ~np.isclose(images, corrupted, atol=1e-6)
    mark = noise != "gaussian"
    name = noise.replace("_", "-") + ("" if level is None else f" {level:.0%}" if mark else f" σ = {level:g}")
    share = f"{changed.mean():.1%} of pixels\nchanged" + (" (red)" if mark else "")
    labels = ["original", f"corrupted:\n{name},\n{share}", "reconstructed"]
    n = len(images)
    fig = Figure(figsize=(1.0 * n + 1.6, 4.2), layout="constrained")
    axes = np.asarray(fig.subplots(3, n, squeeze=False))
    for row, (data, label) in enumerate(zip((images, corrupted, reconstructed), labels)):
        for column in range(n):
            ax = axes[row, column]
            picture = data[column].reshape(img_shape)
            if row == 1 and mark:
                ax.imshow(_marked(picture, changed[column].reshape(img_shape)), interpolation="nearest")
            else:
                ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"test images, corrupted by the first layer's noise, and the first {autoencoder}'s "
                 "reconstructions", fontsize=10)
    return fig


def learning_curves_figure(pretraining_costs, finetune_history, validation_name: str = "validation error",
                           unit: str = "epoch", pretraining_cost: str = "mean cross-entropy per example"):
    """matplotlib Figure of a run's progress, with a marker at every epoch so that a run of one
    epoch shows too: the pretraining reconstruction cost of each layer (log scale: the layers'
    costs differ by orders of magnitude), the fine-tuning training cost, and the validation
    error with the test error measured at each new best validation error.  ``unit`` names the
    x axes' steps (``"L-BFGS iteration"`` for full-batch runs), ``pretraining_cost`` the cost."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter, MaxNLocator

    fig = Figure(figsize=(14, 4.8), layout="constrained")
    pretrain_ax, cost_ax, error_ax = fig.subplots(1, 3)
    for layer, costs in enumerate(pretraining_costs):
        if costs:
            pretrain_ax.plot(range(1, len(costs) + 1), costs, marker="o", label=f"layer {layer} (last {costs[-1]:.3g})")
    pretrain_ax.set(title="pretraining: reconstruction cost", xlabel=unit, ylabel=pretraining_cost)
    if any(pretraining_costs):
        pretrain_ax.set_yscale("log")
        # plain numbers (40, not 4 x 10^1), some minor ticks labelled when the range is narrow
        pretrain_ax.yaxis.set_major_formatter(LogFormatter())
        pretrain_ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        _legend_below(pretrain_ax)
    else:
        pretrain_ax.text(0.5, 0.5, "no pretraining", ha="center", va="center", transform=pretrain_ax.transAxes)
    epochs = [r["epoch"] for r in finetune_history]
    cost_ax.plot(epochs, [r["cost"] for r in finetune_history], marker="o", color="tab:purple",
                 label=f"training cost (last {finetune_history[-1]['cost']:.3g})" if finetune_history else None)
    cost_ax.set(title="fine-tuning: training cost", xlabel=unit, ylabel="mean negative log-likelihood")
    valid = [(r["epoch"], 100 * r["validation_error"]) for r in finetune_history if r["validation_error"] is not None]
    if valid:
        error_ax.plot(*zip(*valid), marker="o", label=f"{validation_name} (last {valid[-1][1]:.2f} %)")
    tests = [(r["epoch"], 100 * r["test_error"]) for r in finetune_history if r.get("test_error") is not None]
    if tests:
        error_ax.plot(*zip(*tests), "s", color="tab:red", markersize=7,
                      label=f"test error at a new best validation (last {tests[-1][1]:.2f} %)")
    error_ax.set(title="fine-tuning: error", xlabel=unit, ylabel="error (%)")
    for axis in (cost_ax, error_ax):
        if axis.lines:
            _legend_below(axis)
    last_epoch = {pretrain_ax: max((len(c) for c in pretraining_costs), default=1),
                  cost_ax: max(epochs, default=1), error_ax: max(epochs, default=1)}
    for axis, last in last_epoch.items():
        axis.set_xlim(0.5, last + 0.5)  # a lone first epoch sits mid-panel, on tick 1
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)
    return fig


def _legend_below(axis) -> None:
    """The legend under the panel, where it never hides a point."""
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=9, frameon=False)


def save_png(array_or_figure, path) -> Path:
    """Write a uint8 image array or a matplotlib figure as a PNG, atomically."""
    from PIL import Image

    if isinstance(array_or_figure, np.ndarray):
        image = Image.fromarray(array_or_figure)
        return atomic_write(path, lambda f: image.save(f, format="PNG"))
    return atomic_write(path, lambda f: array_or_figure.savefig(f, format="png", dpi=100))


def image_shape(n_pixels: int) -> tuple[int, int] | None:
    """Square images (28 x 28 for MNIST); None when ``n_pixels`` is not a square number: such
    inputs are not drawn as images."""
    side = math.isqrt(n_pixels)
    return (side, side) if side * side == n_pixels else None


#: Fewer pretraining epochs than this leave a first layer's filters close to their random start
#: (one epoch of ``--preset quick`` on MNIST does).
_FEW_EPOCHS = 5


def _filters_note(layer: int, epochs: int, unit: str = "epoch") -> str:
    """What a reader of layer ``layer``'s filters should know: how they were made, and whether
    training had the time to give them structure."""
    note = f"after {epochs} pretraining {unit}{'' if epochs == 1 else 's'}"
    if layer:
        note += f"; layer {layer}'s weights projected onto the input through the layers below"
    if epochs < _FEW_EPOCHS and layer == 0:  # deeper projections average the noise away
        note += ": so few leave the weights close to their random start, which looks like noise"
    return note


def save_run_pictures(sda, results: dict, images, output_dir, img_shape=..., mode=None,
                      log=None) -> list[Path]:
    """Write ``filters_layer<k>.png`` for each layer, ``reconstructions.png`` (10 test images
    at the first layer's corruption level) and ``learning_curves.png``; returns the paths written.

    ``img_shape``: one input's (rows, cols) as an image, by default :func:`image_shape`'s square;
    None when the inputs are not images (a CSV file's features, a count that is not a square):
    then only the learning curves are drawn, since filters and reconstructions would not read as
    pictures, and ``log`` says so."""
    output_dir = Path(output_dir)
    img_shape = image_shape(sda.n_ins) if img_shape is ... else img_shape
    unit = "L-BFGS iteration" if results.get("config", {}).get("optimizer") == "lbfgs" else "epoch"
    written = []
    if img_shape is None:
        if log:
            log(f"no filter or reconstruction pictures: the {sda.n_ins} inputs are not an image; "
                f"drawing the learning curves only")
    else:
        written += _image_pictures(sda, results, images, output_dir, img_shape, unit, mode)
    sparse = "sparse" in sda.criteria
    cost = ("mean cost per example (cross-entropy; sparse layers: UFLDL's J)" if sparse and "denoising" in sda.criteria
            else "mean UFLDL cost J per example" if sparse else "mean cross-entropy per example")
    figure = learning_curves_figure(results["pretraining"]["costs"], results["finetuning"]["history"], unit=unit,
                                    pretraining_cost=cost)
    written.append(save_png(figure, output_dir / "learning_curves.png"))
    return written


def _image_pictures(sda, results: dict, images, output_dir: Path, img_shape, unit: str, mode) -> list[Path]:
    """The filters of every layer and the reconstructions, as pictures."""
    written = []
    for k in range(sda.n_layers):
        figure = filters_figure(layer_filters(sda, k), img_shape, what=f"layer {k}",
                                note=_filters_note(k, len(results["pretraining"]["costs"][k]), unit))
        written.append(save_png(figure, output_dir / f"filters_layer{k}.png"))
    sample = np.asarray(images[:10])
    corrupted, reconstructed = corrupt_and_reconstruct(sda.dA_layers[0], sample,
                                                       sda.corruption_levels[0], mode=mode)
    figure = reconstructions_figure(sample, corrupted, reconstructed, img_shape, sda.corruption_type,
                                    sda.corruption_levels[0], f"{sda.criteria[0]} autoencoder")
    written.append(save_png(figure, output_dir / "reconstructions.png"))
    return written
