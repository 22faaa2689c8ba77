"""Pictures: the arrays behind them, and the files the script writes."""

import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from PIL import Image

from support import CPU_MODE
from sda.plots import (corrupt_and_reconstruct, filters_figure, filters_image, layer_filters, learning_curves_figure,
                       reconstructions_figure, reconstructions_image, strongest_filters)
from sda.SdA import SdA
from sda.utils import scale_to_unit_interval, tile_raster_images


def test_tile_raster_images_layout():
    X = np.arange(6 * 4, dtype=float).reshape(6, 4)
    out = tile_raster_images(X, (2, 2), (2, 3), tile_spacing=(1, 1), scale_rows_to_unit_interval=False,
                             output_pixel_vals=False)
    assert out.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_array_equal(out[3:5, 3:5], X[4].reshape(2, 2))  # row 1, column 1 = image 4
    assert out[2].sum() == 0 and out[:, 2].sum() == 0  # spacing stays black
    assert tile_raster_images(X, (2, 2), (2, 3)).dtype == np.uint8
    np.testing.assert_allclose(scale_to_unit_interval(np.array([2.0, 4.0, 6.0])), [0, 0.5, 1], atol=1e-6)


def test_layer_filters_are_products_of_weights(float64):
    sda = SdA(np.random.RandomState(0), n_ins=16, hidden_layers_sizes=[6, 5], n_outs=2,
              corruption_levels=[0.1, 0.2])
    W0, W1 = (layer.W.get_value() for layer in sda.sigmoid_layers)
    np.testing.assert_allclose(layer_filters(sda, 0), W0.T)
    np.testing.assert_allclose(layer_filters(sda, 1), (W0 @ W1).T)
    assert filters_image(layer_filters(sda, 1), (4, 4), (2, 3)).shape == (2 * 5 - 1, 3 * 5 - 1)
    with pytest.raises(ValueError, match="layer must be in 0 .. 1"):
        layer_filters(sda, 2)


def test_reconstructions(float32):
    sda = SdA(np.random.RandomState(0), n_ins=16, hidden_layers_sizes=[6], n_outs=2, corruption_levels=[0.5])
    images = np.random.RandomState(1).uniform(0.1, 1, size=(4, 16)).astype("float32")
    corrupted, recon = corrupt_and_reconstruct(sda.dA_layers[0], images, 0.0, mode=CPU_MODE)
    np.testing.assert_array_equal(corrupted, images)
    da = sda.dA_layers[0]
    state = da.pytensor_rng.get_value().bit_generator.state
    corrupted, recon = corrupt_and_reconstruct(da, images, 0.5, mode=CPU_MODE)
    assert 0.3 < (corrupted == 0).mean() < 0.7
    # the picture shows the model's own noise (the mask its generator draws), and leaves the generator
    # where it was, so that training after a picture draws what it would have drawn
    x = pt.matrix("x")
    own_noise = pytensor.function([x], da.get_corrupted_input(x, 0.5), mode=CPU_MODE)
    np.testing.assert_array_equal(corrupted, own_noise(images))
    assert da.pytensor_rng.get_value().bit_generator.state == state
    assert recon.shape == images.shape and ((0 < recon) & (recon < 1)).all()
    assert reconstructions_image(images, corrupted, recon, (4, 4)).shape == (3 * 5 - 1, 4 * 5 - 1)


def test_script_writes_pictures_and_metrics(tiny_mnist_dir, tmp_path):
    from test_cli import TINY

    from sda.cli import main
    out = tmp_path / "out"
    assert main(TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(out)]) == 0
    for name in ("filters_layer0.png", "filters_layer1.png", "reconstructions.png", "learning_curves.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 10
    with Image.open(out / "filters_layer0.png") as image:  # tiles scaled up, room for a title
        assert image.size[0] >= 600
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    assert [r["phase"] for r in records].count("pretraining") == 2 * 2
    assert all(r["seconds"] > 0 for r in records)  # pretraining epochs are timed too
    assert [r["phase"] for r in records].count("fine-tuning") == results["finetuning"]["epochs"]
    assert records[-1]["validation_error"] == results["finetuning"]["history"][-1]["validation_error"]


def test_filters_figure_shows_the_strongest_units_and_says_so():
    filters = np.random.RandomState(0).normal(size=(150, 16))
    filters[7] *= 20
    filters[42] *= 10
    strongest = strongest_filters(filters, 100)
    assert len(strongest) == 100
    np.testing.assert_array_equal(strongest[:2], filters[[7, 42]])
    norms = np.linalg.norm(filters, axis=1)
    assert np.linalg.norm(strongest, axis=1).min() >= np.sort(norms)[-100]
    figure = filters_figure(filters, (4, 4), what="layer 0", note="after 3 pretraining epochs")
    assert figure._suptitle.get_text() == "layer 0: the 100 units of largest weight norm, of 150"
    assert "after 3 pretraining epochs" in figure.axes[0].get_title()
    assert filters_figure(filters[:6], (4, 4), what="layer 1")._suptitle.get_text() == "layer 1: all 6 units"


def test_reconstructions_figure_labels_its_rows_and_marks_the_changed_pixels():
    images = np.zeros((3, 16))
    images[:, :8] = 1.0
    corrupted = images.copy()
    corrupted[0, 0] = 0.0  # one of the 48 pixels changed
    figure = reconstructions_figure(images, corrupted, images, (4, 4), "masking", 0.1)
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert labels[0] == "original" and labels[2] == "reconstructed"
    assert "masking 10%" in labels[1] and f"{1 / 48:.1%} of pixels" in labels[1]
    marked = figure.axes[3].images[0].get_array()  # first corrupted image, in colour
    assert marked.shape == (4, 4, 3) and tuple(marked[0, 0]) == (1.0, 0.15, 0.1) and tuple(marked[0, 1]) == (1, 1, 1)


def test_learning_curves_show_a_single_epoch_and_the_training_cost():
    history = [{"epoch": 1, "cost": 0.7, "validation_error": 0.12, "test_error": 0.123, "seconds": 1.0}]
    figure = learning_curves_figure([[94.5], [574.3]], history)
    pretraining, cost, error = figure.axes[:3]
    assert [line.get_marker() for line in pretraining.lines] == ["o", "o"]  # a lone epoch is a visible dot
    assert cost.lines[0].get_ydata().tolist() == [0.7] and "training cost" in cost.get_title()
    assert pretraining.get_xlim() == (0.5, 1.5) and 1 in cost.get_xticks()
    assert error.lines[0].get_ydata().tolist() == [12.0] and error.lines[1].get_ydata().tolist() == [12.3]
