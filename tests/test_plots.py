"""Pictures: the arrays behind them, and the files the script writes."""

import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from PIL import Image

from support import CPU_MODE
from sda.plots import corrupt_and_reconstruct, filters_image, layer_filters, reconstructions_image
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
    with Image.open(out / "reconstructions.png") as image:  # 3 rows of 8x8 digits
        assert image.size == (10 * 9 - 1, 3 * 9 - 1)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    assert [r["phase"] for r in records].count("pretraining") == 2 * 2
    assert [r["phase"] for r in records].count("fine-tuning") == results["finetuning"]["epochs"]
    assert records[-1]["validation_error"] == results["finetuning"]["history"][-1]["validation_error"]
