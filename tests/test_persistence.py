"""Model files: round trips that predict identically, and refusal of anything that could run code."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from support import CPU_MODE
from sda.dA import dA
from sda.logistic_sgd import LogisticRegression
from sda.mlp import MLP
from sda.checkpoint import CheckpointError, load_checkpoint
from sda.persistence import ModelFileError, load_model, read_archive, read_model_file, save_model, write_archive
from sda.SdA import SdA


def small_sda(seed=0):
    sda = SdA(np.random.RandomState(seed), n_ins=6, hidden_layers_sizes=[5, 4], n_outs=3,
              corruption_levels=[0.1, 0.25])
    rng = np.random.RandomState(seed + 1)
    for p in sda.params + [d.b_prime for d in sda.dA_layers]:
        p.set_value(rng.normal(size=p.get_value().shape).astype(p.dtype))
    return sda


def test_sda_round_trip_predicts_bit_identically(tmp_path, float32):
    sda = small_sda()
    path = sda.save(tmp_path / "model.npz", training_state={"epoch": 3})
    loaded = SdA.load(path)
    assert loaded.hidden_layers_sizes == [5, 4] and loaded.corruption_levels == [0.1, 0.25]
    images = np.random.RandomState(2).uniform(size=(50, 6)).astype("float32")
    probs = lambda m: pytensor.function([m.x], m.logLayer.p_y_given_x, mode=CPU_MODE)(images)
    np.testing.assert_array_equal(probs(loaded), probs(sda))
    np.testing.assert_array_equal(loaded.predict_function(CPU_MODE)(images), sda.predict_function(CPU_MODE)(images))
    for a, b in zip(loaded.dA_layers, sda.dA_layers):  # pretraining state too
        np.testing.assert_array_equal(a.b_prime.get_value(), b.b_prime.get_value())
    header, _ = read_model_file(path)
    assert header["training_state"] == {"epoch": 3} and header["dtype"] == "float32"


@pytest.mark.parametrize("make", [
    lambda: dA(np.random.RandomState(0), n_visible=6, n_hidden=4),
    lambda: MLP(np.random.RandomState(0), pt.matrix(), 6, 5, 3, activation=pt.sigmoid),
    lambda: LogisticRegression(pt.matrix(), 6, 3, W=pytensor.shared(np.random.RandomState(0).normal(size=(6, 3)))),
])
def test_every_model_class_round_trips(make, tmp_path, float64):
    model = make()
    save_model(model, tmp_path / "m.npz")
    loaded, header = load_model(tmp_path / "m.npz")
    assert type(loaded) is type(model) and header["class"] == type(model).__name__
    for a, b in zip(loaded.params, model.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
        assert a.dtype == b.dtype == "float64"


def test_loading_the_wrong_class_is_refused(tmp_path, float32):
    small_sda().save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="holds a SdA, not a dA"):
        dA.load(tmp_path / "m.npz")


def write_npz(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def header_entry(header: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(header).encode(), np.uint8)


def valid_arrays(tmp_path):
    small_sda().save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as f:
        return {k: f[k] for k in f.files}


def test_pickled_object_array_is_refused_without_running_it(tmp_path, float32):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    arrays = valid_arrays(tmp_path)
    arrays["param_0"] = np.array([Boom()], dtype=object)
    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # numpy pickles object arrays
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError, match="refused|pickle|object"):
        load_model(path)
    assert not (tmp_path / "pwned").exists()


def test_a_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"W": np.zeros(3)}))
    with pytest.raises(ModelFileError, match="not an .npz .zip. archive"):
        load_model(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("__header__"), "no __header__"),
    (lambda a: a.update(__header__=np.frombuffer(b"{not json", np.uint8)), "not valid JSON"),
    (lambda a: a.update(__header__=a["__header__"].astype(np.float64)), "malformed header entry"),
    (lambda a: a.update(param_0=a["param_0"][:-1]), "has shape"),
    (lambda a: a.update(param_1=a["param_1"].astype(np.int64)), "dtype int64"),
    (lambda a: a.update(param_2=np.full_like(a["param_2"], np.nan)), "NaN"),
    (lambda a: a.pop("param_3"), "do not match n_params"),
])
def test_inconsistent_files_get_a_clear_error(mutate, message, tmp_path, float32):
    arrays = valid_arrays(tmp_path)
    mutate(arrays)
    with pytest.raises(ModelFileError, match=message):
        load_model(write_npz(tmp_path / "bad.npz", **arrays))


def test_n_params_must_be_a_plain_count(tmp_path, float32):
    arrays = valid_arrays(tmp_path)
    header = json.loads(arrays["__header__"].tobytes())
    one_param = {"param_0": arrays["param_0"], "__header__": header_entry({**header, "n_params": True})}
    path = write_npz(tmp_path / "bool.npz", **one_param)
    with pytest.raises(ModelFileError, match="do not match n_params=True"):
        read_model_file(path)


def npy(array, version=None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), version=version)
    return buf.getvalue()


def npy_claiming(shape) -> bytes:
    """A .npy header claiming ``shape`` of float64, followed by 16 bytes whatever it claims."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(16)


NPY_V3 = npy(np.zeros(2), (2, 0)).replace(b"NUMPY\x02", b"NUMPY\x03", 1)  # same layout as 2.0


@pytest.mark.parametrize("name, data, method, message", [
    ("extra.npy", npy(np.zeros(2)), zipfile.ZIP_BZIP2, "uses compression 12"),
    ("notes.txt", b"hello", zipfile.ZIP_STORED, "not a distinct .npy array"),
    ("param_0.npy", npy(np.zeros(2)), zipfile.ZIP_STORED, "not a distinct .npy array"),
    ("extra.npy", NPY_V3, zipfile.ZIP_STORED, r"format version \(3, 0\)"),
    ("extra.npy", npy(np.zeros(2, [("a", "<f8")])), zipfile.ZIP_STORED, "expected numbers"),
    ("extra.npy", npy_claiming((-1, -2)), zipfile.ZIP_STORED, "claims shape"),
    ("extra.npy", npy_claiming((3,)), zipfile.ZIP_DEFLATED, "claims shape"),
])
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_odd_archive_members_are_refused_before_reading(name, data, method, message, tmp_path, float32):
    path = write_npz(tmp_path / "odd.npz", **valid_arrays(tmp_path))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, data, compress_type=method)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_brackets_inside_header_strings_do_not_count_as_nesting(tmp_path, float32):
    state = {"note": '\\"' + "[{" * 100, "history": [[i] for i in range(100)]}  # in JSON: "\\\"[{[{..."
    small_sda().save(tmp_path / "m.npz", training_state=state)
    assert read_model_file(tmp_path / "m.npz")[0]["training_state"] == state


def test_nesting_after_a_string_ending_in_a_backslash_counts(tmp_path, float32):
    state = {"note": "ends in \\", "deep": json.loads("[" * 100 + "]" * 100)}
    small_sda().save(tmp_path / "m.npz", training_state=state)
    with pytest.raises(ModelFileError, match="nests 10. levels deep"):
        read_model_file(tmp_path / "m.npz")


def test_header_with_unknown_class_or_bad_config(tmp_path, float32):
    arrays = valid_arrays(tmp_path)
    header = json.loads(arrays["__header__"].tobytes())
    for change, message in (({"class": "os.system"}, "unknown model class"),
                            ({"config": {**header["config"], "hidden_layers_sizes": [0]}}, "invalid")):
        bad = dict(arrays, __header__=header_entry({**header, **change}))
        with pytest.raises(ModelFileError, match=message):
            load_model(write_npz(tmp_path / "bad.npz", **bad))


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, float32, monkeypatch):
    path = small_sda(0).save(tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        small_sda(5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_not_a_zip_and_truncated_zip(tmp_path, float32):
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="junk.npz: not an .npz .zip. archive"):
        load_model(tmp_path / "junk.npz")
    data = small_sda().save(tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "cut.npz")


def test_saved_files_get_the_usual_permissions(tmp_path, float32):
    import os
    import stat
    umask = os.umask(0o022)
    try:
        path = small_sda().save(tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def checkpoint_header_entry() -> np.ndarray:
    return header_entry({"format": "sda-checkpoint", "format_version": 1})


def test_full_size_model_and_checkpoint_load_within_the_size_limits(tmp_path, float64):
    """The tutorial's 784-1000-1000-1000-10 network, and a checkpoint with its momentum
    velocities, also when re-packed compressed (fresh velocities are zeros: ~1000x)."""
    sda = SdA(np.random.RandomState(0), n_ins=784, hidden_layers_sizes=[1000] * 3, n_outs=10,
              corruption_levels=[0.1, 0.2, 0.3])
    header, params = read_model_file(sda.save(tmp_path / "m.npz"))
    assert header["config"]["hidden_layers_sizes"] == [1000] * 3 and params[2].shape == (1000, 1000)
    values = [p.get_value() for p in sda.params]
    state = {f"state_{i}": v for i, v in enumerate(values + [np.zeros_like(v) for v in values])}
    write_archive(tmp_path / "stored.npz", {"format": "sda-checkpoint", "format_version": 1}, state)
    np.savez_compressed(tmp_path / "compressed.npz", __header__=checkpoint_header_entry(), **state)
    for name in ("stored.npz", "compressed.npz"):
        _, arrays = read_archive(tmp_path / name, "sda-checkpoint", CheckpointError)
        np.testing.assert_array_equal(arrays["state_2"], values[2])


def test_checkpoints_refuse_forged_sizes_with_their_own_error(tmp_path):
    zeros = np.zeros(24 << 20, np.uint8)  # deflates to 24 KiB
    np.savez_compressed(tmp_path / "bomb.npz", __header__=checkpoint_header_entry(), state_0=zeros)
    with pytest.raises(CheckpointError, match="bomb.npz: entries would inflate to"):
        load_checkpoint(tmp_path / "bomb.npz")


def test_files_that_no_model_can_be_are_refused_before_reading(tmp_path, float32):
    import os
    import time
    huge = tmp_path / "huge.npz"
    with open(huge, "wb") as f:  # sparse: 64 GB that take no disk
        f.truncate(64 << 30)
    many = tmp_path / "many.npz"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(5000):
            archive.writestr(f"e{i}.npy", b"")
    half = small_sda(0).save(tmp_path / "half.npz")
    header, arrays = read_archive(half, "sda-model")
    write_archive(tmp_path / "half.npz", header, {k: v.astype(np.float16) for k, v in arrays.items()})
    for path, message in ((huge, "larger than any sda file"), (many, "more than an sda file holds"),
                          (tmp_path / "half.npz", "expected float32 or float64"),
                          (tmp_path, "not a regular file"), (tmp_path / "absent.npz", "no such file")):
        start = time.process_time()
        with pytest.raises(ModelFileError, match=message):
            load_model(path)
        assert time.process_time() - start < 1.0
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFileError, match="not a regular file"):
            load_model("/dev/zero")


_MODELS = {"dA": (lambda: dA(np.random.RandomState(0), n_visible=6, n_hidden=4), "n_hidden"),
           "MLP": (lambda: MLP(np.random.RandomState(0), pt.matrix(), 6, 5, 3, activation=pt.sigmoid), "n_hidden"),
           "LogisticRegression": (lambda: LogisticRegression(pt.matrix(), 6, 3), "n_out"),
           "SdA": (lambda: small_sda(), "n_outs")}


@pytest.mark.parametrize("size", [float("inf"), float("nan"), 10 ** 400, 1e300, 4.0, 3.7, "4", True, -4, 2 ** 40])
@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_a_header_size_that_is_not_a_plain_count_is_refused(kind, size, tmp_path, float32):
    make, key = _MODELS[kind]
    path = save_model(make(), tmp_path / "m.npz")
    header, arrays = read_archive(path, "sda-model")
    header["config"][key] = size
    write_archive(path, header, arrays)
    with pytest.raises(ModelFileError, match="configuration is invalid"):
        load_model(path)
