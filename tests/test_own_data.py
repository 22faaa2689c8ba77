"""One's own data: an .npz file on the command line, a subset, and arrays straight into the model."""

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytensor
import pytest

from conftest import synthetic_digits
from support import CPU_MODE
from sda.checkpoint import load_checkpoint
from sda.cli import main
from sda.data import DataError
from sda.npz_data import read_npz
from sda.own_data import default_valid_size, load_own_data
from sda.SdA import SdA

TINY = ["--hidden-layers", "12", "8", "--corruption", "0.1", "0.2", "--pretraining-epochs", "1",
        "--training-epochs", "3", "--finetune-lr", "0.2", "--batch-size", "10", "--mode", CPU_MODE, "--quiet",
        "--no-pictures"]


@pytest.fixture
def digits_npz(tmp_path):
    """300 training and 100 test synthetic 8x8 digits as pixel bytes, in one .npz file."""
    x, y = synthetic_digits(300, seed=1)
    x_test, y_test = synthetic_digits(100, seed=2)
    path = tmp_path / "digits.npz"
    np.savez(path, X=x, y=y, X_test=x_test, y_test=y_test)
    return path


def test_npz_file_is_split_like_mnist(digits_npz):
    split = load_own_data(digits_npz, shuffle=False).split
    (x, y), (vx, vy), (tx, _) = split
    assert default_valid_size(300) == 50 and default_valid_size(600_000) == 10_000
    assert x.shape == (250, 64) and vx.shape == (50, 64) and tx.shape == (100, 64)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == np.int32
    raw = np.load(digits_npz)
    np.testing.assert_allclose(vx, raw["X"][250:].reshape(50, 64) / 255, rtol=1e-6)  # the last rows validate
    np.testing.assert_array_equal(vy, raw["y"][250:])
    assert load_own_data(digits_npz, n_valid=100).split.train[0].shape == (200, 64)
    assert split.with_train_size(20).train[0].shape == (20, 64) and split.with_train_size(20).valid is split.valid


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((4, 3))}, "lacks the array y"),
    ({"X": np.array([[0.5, np.nan]]), "y": np.zeros(1, int)}, "X holds NaN or infinite values"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(5, int)}, "y has 5 labels for 4 examples"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(4)}, "integer class labels"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(4, int), "X_test": np.zeros((2, 3))}, "both X_test and y_test"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(4, int), "X_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     "X_test has 5 features per example, X has 3"),
    ({"X": np.array([[0.5, None]], dtype=object), "y": np.zeros(1, int)}, "has dtype object, expected numbers"),
])
def test_bad_npz_files_are_refused_with_the_reason(arrays, message, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        read_npz(path)


def test_not_an_npz_file(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros((3, 3)))
    with pytest.raises(DataError, match="not an .npz .zip. archive"):
        read_npz(tmp_path / "one.npy")
    with pytest.raises(DataError, match="does not exist"):
        read_npz(tmp_path / "absent.npz")


def npz_bytes(members, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip archive of ``members``: (name, array or raw .npy bytes) pairs, duplicates allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        for name, value in members:
            if isinstance(value, np.ndarray):
                npy = io.BytesIO()
                np.save(npy, value)
                value = npy.getvalue()
            archive.writestr(name, value)
    return buffer.getvalue()


def patch_members(data: bytes, local_offset: int, central_offset: int, value: bytes) -> bytes:
    """``data`` with 2 bytes of every local and central member header replaced by ``value``."""
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        start = data.find(signature)
        while start >= 0:
            data[start + offset:start + offset + 2] = value
            start = data.find(signature, start + 4)
    return bytes(data)


GOOD = [("X.npy", np.zeros((6, 4), np.uint8)), ("y.npy", np.zeros(6, np.int64))]


def forged_rows_npy(rows: int) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (rows, 64)})
    return header.getvalue() + bytes(64)


@pytest.mark.parametrize("data, message", [
    (patch_members(npz_bytes(GOOD), 8, 10, (99).to_bytes(2, "little")), "uses compression 99"),
    (patch_members(npz_bytes(GOOD), 6, 8, (1).to_bytes(2, "little")), "is encrypted"),
    (npz_bytes([GOOD[0], ("X.npy", np.ones((6, 4), np.uint8)), GOOD[1]]), "two of that name"),
    (npz_bytes([("X.npy", forged_rows_npy(10 ** 12)), GOOD[1]]), r"claims shape \(1000000000000, 64\)"),
    (b"PK\x03\x04" + bytes(100), "not a readable .npz archive"),
    (npz_bytes(GOOD)[:-30], "not a readable .npz archive"),
])
def test_forged_npz_archives_are_one_line(data, message, tmp_path, capsys):
    path = tmp_path / "forged.npz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message):
        read_npz(path)
    assert main([*TINY, "--data", str(path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_damaged_deflate_stream_is_one_line(tmp_path):
    data = bytearray(npz_bytes([("X.npy", np.arange(4000, dtype=np.uint8).reshape(100, 40)), GOOD[1]],
                               zipfile.ZIP_DEFLATED))
    data[200:260] = bytes(range(60))  # inside X.npy's compressed data
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not a readable .npz archive"):
        read_npz(path)


def test_a_large_file_that_is_not_a_zip_archive_is_refused_unread(tmp_path):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.truncate(7 << 30)  # sparse: takes no disk
    with pytest.raises(DataError, match="not an .npz .zip. archive"):
        read_npz(path)


def test_cli_trains_on_an_npz_file_and_a_subset_and_resumes_on_them(digits_npz, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*TINY, "--data", str(digits_npz), "--train-size", "200", "--output-dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == {"data_file": str(digits_npz), "data_dir": None, "valid_size": 50,
                               "train_size": 200, "verify": True, "shuffle": True, "label_column": None,
                               "scaled": False}
    assert load_checkpoint(out / "checkpoint.safetensors").data["train_x"]["shape"] == [200, 64]
    assert results["finetuning"]["test_error"] is not None
    capsys.readouterr()
    # a resume takes the file and the subset from the checkpoint; other data is refused
    assert main(["--resume", str(out), "--quiet", "--mode", CPU_MODE]) == 0
    assert main(["--resume", str(out), "--quiet", "--mode", CPU_MODE, "--train-size", "100"]) == 2
    assert "trained on other data" in capsys.readouterr().err
    assert main(["--evaluate", str(out / "best_model.safetensors"), "--data", str(digits_npz), "--mode", CPU_MODE]) == 0
    assert f"test error {results['finetuning']['test_error']:.2%} on 100 examples" in capsys.readouterr().out


def test_cli_without_test_arrays_reports_no_test_error(tmp_path, capsys):
    x, y = synthetic_digits(120, seed=3)
    path = tmp_path / "train_only.npz"
    np.savez(path, X=x.reshape(120, -1) / 255.0, y=y)  # floats in [0, 1] this time
    assert main([*TINY, "--data", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    assert "no test set" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["finetuning"]["test_error"] is None and results["data"]["valid_size"] == 20


@pytest.mark.parametrize("flags, message", [
    (["--data", "{npz}", "--data-dir", "{npz}"], "give --data (an .npz file) or --data-dir"),
    (["--data", "{npz}", "--train-size", "251"], "--train-size must be between 1 and the 250 training examples"),
    (["--data", "{npz}", "--valid-size", "300"], "--valid-size must be between 1 and the examples less one (299)"),
    (["--data", "{npz}", "--download"], "--download fetches MNIST"),
])
def test_bad_data_flags_are_one_line(flags, message, digits_npz, tmp_path, capsys):
    flags = [f.format(npz=digits_npz) for f in flags]
    assert main([*TINY, *flags, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_model_takes_numpy_arrays_and_gives_the_features_of_any_layer(float32):
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, size=(40, 6))  # float64, as numpy makes them
    y = rng.randint(0, 3, size=40)
    sda = SdA(np.random.RandomState(1), n_ins=6, hidden_layers_sizes=[5, 4], n_outs=3, corruption_levels=[0.1, 0.2])
    steps = sda.pretraining_functions(x, batch_size=10, mode=CPU_MODE)
    assert np.isfinite(steps[0](0, 0.1, 0.1))
    train_step, validate, test = sda.build_finetune_functions([(x, y), (x, y), None], 10, 0.1, CPU_MODE)
    assert np.isfinite(train_step(0)) and 0 <= validate() <= 1 and test is None

    W0, b0, W1, b1 = (np.asarray(p.get_value(), dtype=np.float64) for p in sda.params[:4])
    first = 1 / (1 + np.exp(-(x @ W0 + b0)))
    np.testing.assert_allclose(sda.encode(x, layer=0, mode=CPU_MODE), first, rtol=1e-5)
    top = 1 / (1 + np.exp(-(first @ W1 + b1)))
    np.testing.assert_allclose(sda.encode(x, mode=CPU_MODE), top, rtol=1e-5)
    np.testing.assert_allclose(sda.encode(x, layer=-2, mode=CPU_MODE), first, rtol=1e-5)
    assert sda.predict_function(CPU_MODE)(x).shape == (40,)  # float64 in, no TypeError
    with pytest.raises(ValueError, match="layer must be in 0 .. 1"):
        sda.encode(x, layer=2)
    with pytest.raises(ValueError, match=r"X must have shape \(n_examples, 6\)"):
        sda.encode(x[:, :5])
    assert pytensor.config.floatX == "float32"


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((8, 3)), "y": np.array([0, 1, 0, 1, 0, 1, 0, 2 ** 32 + 1])}, r"found 0 \.\. 4294967297"),
    ({"X": np.zeros((8, 3)), "y": np.array([0, 1, 0, 1, 0, 1, 0, 2 ** 31])}, r"found 0 \.\. 2147483648"),
    ({"X": np.zeros((8, 3)), "y": np.full(8, 2 ** 64 - 1, np.uint64)}, "18446744073709551615"),
    ({"X": np.zeros((8, 0)), "y": np.zeros(8, int)}, r"X has no features: shape \(8, 0\)"),
    ({"X": np.zeros((8, 3, 0)), "y": np.zeros(8, int)}, "X has no features"),
    ({"X": np.full((8, 3), -0.0), "y": np.zeros(8, int), "X_test": np.zeros((2, 0)), "y_test": np.zeros(2, int)},
     "X_test has no features"),
])
def test_npz_numbers_are_checked_as_saved_before_any_cast(arrays, message, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        read_npz(path)


def test_npz_labels_beyond_int32_never_train_as_another_class(tmp_path, capsys):
    x, y = synthetic_digits(60, seed=1)
    y = y.astype(np.int64)
    y[7] = 2 ** 32 + 1  # int32 would wrap it into class 1
    np.savez(tmp_path / "d.npz", X=x, y=y)
    assert main([*TINY, "--data", str(tmp_path / "d.npz"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "4294967297" in err and len(err.splitlines()) == 1


def test_what_is_not_a_regular_file_is_refused_as_data_unread(tmp_path):
    with pytest.raises(DataError, match="is not a regular file"):
        read_npz(tmp_path)
    if os.path.exists("/dev/zero"):  # a device that never ends: never read
        with pytest.raises(DataError, match="/dev/zero is not a regular file"):
            read_npz("/dev/zero")


def _with_member(info: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, data)
        archive.writestr("y.npy", npz_member(GOOD[1][1]))
    return buffer.getvalue()


def npz_member(array) -> bytes:
    npy = io.BytesIO()
    np.save(npy, array)
    return npy.getvalue()


def _symlink_info() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("X.npy")
    info.external_attr = 0o120777 << 16  # a symbolic link, whose data is its target
    return info


def _forged_zip64_size() -> bytes:
    """X.npy's central entry states (through zip64) the size its forged 10**12-row header needs."""
    header = forged_rows_npy(10 ** 12)[:-64]
    buffer = io.BytesIO()
    archive = zipfile.ZipFile(buffer, "w")
    archive.writestr("X.npy", header + bytes(64))
    archive.writestr("y.npy", npz_member(GOOD[1][1]))
    archive.getinfo("X.npy").file_size = len(header) + 64 * 10 ** 12
    archive.close()
    return buffer.getvalue()


@pytest.mark.parametrize("data, message", [
    (_with_member(zipfile.ZipInfo("X.npy/"), b""), r"member 'X.npy/' is not a distinct .npy array"),
    (_with_member(_symlink_info(), b"/etc/passwd"), "not a readable .npz archive"),
    (_forged_zip64_size(), "its arrays take 59,604.6 GiB, more than the"),
])
def test_odd_members_are_one_line(data, message, tmp_path):
    path = tmp_path / "odd.npz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message):
        read_npz(path)
