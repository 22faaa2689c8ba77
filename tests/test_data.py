import gzip
import hashlib
import os

import numpy as np
import pytest
from conftest import idx_bytes, synthetic_digits, write_idx

from sda.data import MNIST_FILES, DataError, download_mnist, find_idx_file, load_mnist, read_idx
from sda.datasets import minibatch, n_batches


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_read_idx_checks_sha256_of_decompressed_payload(tmp_path):
    array = np.ones((5, 2), np.uint8)
    path = write_idx(tmp_path / "a", array)
    good = hashlib.sha256(idx_bytes(array)).hexdigest()
    np.testing.assert_array_equal(read_idx(path, sha256=good), array)
    with pytest.raises(DataError, match="sha256"):
        read_idx(path, sha256="0" * 64)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file_is_refused(tmp_path, gz):
    data = idx_bytes(np.ones((10, 10), np.uint8))[:-7]
    path = tmp_path / "t"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match="truncated|holds"):
        read_idx(path)


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((100, 100), np.uint8)))[:-20])
    with pytest.raises(DataError, match="gzip|truncated"):
        read_idx(path)


def test_wrong_magic_is_refused(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x00")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_trailing_bytes_are_refused(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.ones(4, np.uint8)) + b"junk")
    with pytest.raises(DataError, match="more than"):
        read_idx(path)


def test_forged_huge_header_fails_fast_without_allocating(tmp_path):
    path = tmp_path / "forged.gz"
    header = bytes([0, 0, 0x08, 3]) + (60000).to_bytes(4, "big") * 3  # 216 TB declared
    path.write_bytes(gzip.compress(header + b"\x00" * 100))
    with pytest.raises(DataError, match="more than a"):
        read_idx(path)


def test_load_mnist_builds_the_tutorial_split(tiny_mnist_dir):
    split = load_mnist(tiny_mnist_dir, n_valid=50, verify=False)
    raw_x, raw_y = synthetic_digits(300, seed=1)
    (tx, ty), (vx, vy), (sx, _) = split
    assert tx.shape == (250, 64) and vx.shape == (50, 64) and sx.shape == (100, 64)
    assert tx.dtype == np.float32 and ty.dtype == np.int32
    # train = the first images, valid = the last ones, pixels / 255
    np.testing.assert_allclose(tx, raw_x[:250].reshape(250, -1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(vx, raw_x[250:].reshape(50, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ty, raw_y[:250])
    np.testing.assert_array_equal(vy, raw_y[250:])
    assert 0.0 <= tx.min() and tx.max() <= 1.0


def test_load_mnist_verifies_checksums_by_default(tiny_mnist_dir):
    with pytest.raises(DataError, match="sha256"):
        load_mnist(tiny_mnist_dir, n_valid=50)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    for name in MNIST_FILES.values():
        assert name in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_image_label_count_mismatch(tiny_mnist_dir):
    os.remove(tiny_mnist_dir / (MNIST_FILES["test_labels"] + ".gz"))
    write_idx(tiny_mnist_dir / MNIST_FILES["test_labels"], np.zeros(99, np.uint8))
    with pytest.raises(DataError, match="100 images but 99 labels"):
        load_mnist(tiny_mnist_dir, n_valid=50, verify=False)


def test_valid_size_must_fit(tiny_mnist_dir):
    for n_valid in (300, -1):
        with pytest.raises(DataError, match=rf"n_valid \(--valid-size\) must be between 0 \(no validation set\) and "
                                            rf".* \(299\), got {n_valid}"):
            load_mnist(tiny_mnist_dir, n_valid=n_valid, verify=False)


def test_real_mnist_when_present():
    from sda.data import DEFAULT_DATA_DIR
    if find_idx_file(DEFAULT_DATA_DIR, MNIST_FILES["test_labels"]) is None:
        pytest.skip("data/mnist not present")
    labels = read_idx(find_idx_file(DEFAULT_DATA_DIR, MNIST_FILES["test_labels"]),
                      sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")
    assert labels.shape == (10000,) and labels[:4].tolist() == [7, 2, 1, 0]


def test_download_from_a_mirror_with_checksums(tiny_mnist_dir, tmp_path_factory):
    mirror = tiny_mnist_dir
    target = tmp_path_factory.mktemp("downloaded")
    sums = {name: hashlib.sha256(gzip.decompress((mirror / f"{name}.gz").read_bytes())).hexdigest()
            for name in MNIST_FILES.values()}
    fetched = download_mnist(target, mirrors=["file:///nonexistent/", mirror.as_uri() + "/"],
                             checksums=sums, progress=False)
    assert len(fetched) == 4
    np.testing.assert_array_equal(read_idx(target / "t10k-labels-idx1-ubyte.gz"),
                                  read_idx(mirror / "t10k-labels-idx1-ubyte.gz"))
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no temporary left


def test_failed_download_never_replaces_or_leaves_a_file(tiny_mnist_dir, tmp_path_factory):
    target = tmp_path_factory.mktemp("downloaded")
    bad_sums = {name: "0" * 64 for name in MNIST_FILES.values()}
    with pytest.raises(DataError, match="could not download"):
        download_mnist(target, mirrors=[tiny_mnist_dir.as_uri() + "/"], checksums=bad_sums,
                       progress=False)
    assert list(target.iterdir()) == []


def test_minibatch_takes_rows_by_index_with_static_shape(float32):
    import pytensor
    import pytensor.tensor as pt

    from sda.datasets import shared_dataset
    data = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    sx, sy = shared_dataset((data, np.arange(23)))
    assert n_batches(sx, 5) == 4
    index = pt.iscalar()
    batch = minibatch(sx, index, 5)
    assert batch.type.shape == (5, 3)
    f = pytensor.function([index], [batch, minibatch(sy, index, 5)], mode="FAST_COMPILE")
    xb, yb = f(2)
    np.testing.assert_array_equal(xb, data[10:15])
    np.testing.assert_array_equal(yb, np.arange(10, 15))
    with pytest.raises(ValueError, match="batch_size"):
        n_batches(sx, 24)


def test_checksum_error_says_how_to_turn_verification_off(tiny_mnist_dir):
    with pytest.raises(DataError, match=r"pass --no-verify \(verify=False in Python\)"):
        load_mnist(tiny_mnist_dir, n_valid=50)


def test_train_and_test_images_of_different_shapes_are_refused(tiny_mnist_dir):
    write_idx(tiny_mnist_dir / MNIST_FILES["test_images"], synthetic_digits(100, side=6, seed=2)[0])
    with pytest.raises(DataError, match=r"shape \(8, 8\) but .* holds \(6, 6\)"):
        load_mnist(tiny_mnist_dir, n_valid=50, verify=False)


@pytest.mark.parametrize("part", ["train", "test"])
def test_negative_labels_are_refused(tiny_mnist_dir, part):
    n = 300 if part == "train" else 100
    labels = np.arange(n) % 10
    labels[3] = -1
    write_idx(tiny_mnist_dir / MNIST_FILES[f"{part}_labels"], labels, dtype=np.int8)
    with pytest.raises(DataError, match=MNIST_FILES[f"{part}_labels"] + r".*>= 0, found -1"):
        load_mnist(tiny_mnist_dir, n_valid=50, verify=False)


def test_float_idx_images_in_range_load(tiny_mnist_dir):
    images = synthetic_digits(300, seed=1)[0]
    write_idx(tiny_mnist_dir / MNIST_FILES["train_images"], images, dtype=np.float32)
    split = load_mnist(tiny_mnist_dir, n_valid=50, verify=False)
    np.testing.assert_allclose(split.train[0], images[:250].reshape(250, -1) / 255.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad, found", [(np.nan, "1 NaN and 0 infinite"), (np.inf, "0 NaN and 1 infinite"),
                                        (510.0, r"\[0, 1\], found 0 \.\. 2"),
                                        (-255.0, r"\[0, 1\], found -1 \.\. 1")])
def test_float_idx_images_outside_0_1_are_refused(tiny_mnist_dir, dtype, bad, found):
    images = synthetic_digits(100, seed=2)[0].astype(dtype)
    images[7, 2, 3] = bad
    write_idx(tiny_mnist_dir / MNIST_FILES["test_images"], images, dtype=dtype)
    with pytest.raises(DataError, match=MNIST_FILES["test_images"] + ".*" + found):
        load_mnist(tiny_mnist_dir, n_valid=50, verify=False)


@pytest.mark.parametrize("labels, message", [(np.array([1.5, 2.0]), "found 1.5"), (np.array([1e10, 1.0]), r"found 1e\+10")])
def test_labels_that_are_not_whole_class_numbers_are_refused(labels, message, tmp_path):
    images = np.zeros((2, 4, 4), np.uint8)
    for key, array in (("train_images", images), ("test_images", images)):
        write_idx(tmp_path / MNIST_FILES[key], array)
    for key in ("train_labels", "test_labels"):
        write_idx(tmp_path / MNIST_FILES[key], labels.astype(">f4"), dtype=">f4")
    with pytest.raises(DataError, match=message):
        load_mnist(tmp_path, n_valid=1, verify=False)


@pytest.mark.parametrize("label", [2 ** 32 + 1, 2 ** 31, -2 ** 31 - 1, 2 ** 63])
def test_shared_dataset_refuses_labels_an_int32_cast_would_wrap(label):
    from sda.datasets import shared_dataset
    labels = np.array([0, 1, label], dtype=np.uint64 if label >= 2 ** 63 else np.int64)
    with pytest.raises(ValueError, match=str(label)):
        shared_dataset((np.zeros((3, 2)), labels))


@pytest.mark.parametrize("replacement", ["device", "folder", "dangling link"])
def test_an_mnist_file_that_is_not_a_regular_file_is_named_as_such(replacement, tiny_mnist_dir):
    path = find_idx_file(tiny_mnist_dir, MNIST_FILES["test_images"])
    path.unlink()
    if replacement == "device":
        path.symlink_to("/dev/zero")
    elif replacement == "folder":
        path.mkdir()
    else:
        path.symlink_to(tiny_mnist_dir / "nowhere")
    with pytest.raises(DataError, match=f"^{path} is not a regular file"):
        load_mnist(tiny_mnist_dir, verify=False)
