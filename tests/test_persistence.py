"""Model files: round trips that predict identically, and refusal of anything forged, before
any tensor is read."""

import io
import json
import pickle

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import safetensors.numpy
from forgery import put_together, take_apart

from support import CPU_MODE
from sda.dA import dA
from sda.logistic_sgd import LogisticRegression
from sda.mlp import MLP
from sda.checkpoint import CHECKPOINT_VERSION, CheckpointError, load_checkpoint
from sda.persistence import (ModelFileError, load_model, read_model_file, read_tensor_file, save_model,
                             write_tensor_file)
from sda.SdA import SdA
from sda.sparse_autoencoder import SparseAutoencoder


def small_sda(seed=0):
    sda = SdA(np.random.RandomState(seed), n_ins=6, hidden_layers_sizes=[5, 4], n_outs=3,
              corruption_levels=[0.1, 0.25])
    rng = np.random.RandomState(seed + 1)
    for p in sda.params + [d.b_prime for d in sda.dA_layers]:
        p.set_value(rng.normal(size=p.get_value().shape).astype(p.dtype))
    return sda


def test_sda_round_trip_predicts_bit_identically(tmp_path, float32):
    sda = small_sda()
    path = sda.save(tmp_path / "model.safetensors", training_state={"epoch": 3})
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


def test_any_safetensors_reader_sees_the_tensors_by_name(tmp_path, float32):
    sda = small_sda()
    tensors = safetensors.numpy.load_file(sda.save(tmp_path / "m.safetensors"))
    assert sorted(tensors) == ["dA_layers.0.b_prime", "dA_layers.1.b_prime", "logLayer.W", "logLayer.b",
                               "sigmoid_layers.0.W", "sigmoid_layers.0.b", "sigmoid_layers.1.W", "sigmoid_layers.1.b"]
    np.testing.assert_array_equal(tensors["sigmoid_layers.1.W"], sda.sigmoid_layers[1].W.get_value())
    np.testing.assert_array_equal(tensors["logLayer.b"], sda.logLayer.b.get_value())
    np.testing.assert_array_equal(tensors["dA_layers.0.b_prime"], sda.dA_layers[0].b_prime.get_value())
    assert tensors["logLayer.W"].dtype == np.float32


@pytest.mark.parametrize("make, names", [
    (lambda: dA(np.random.RandomState(0), n_visible=6, n_hidden=4), ["W", "b", "b_prime"]),
    (lambda: MLP(np.random.RandomState(0), pt.matrix(), 6, 5, 3, activation=pt.sigmoid),
     ["hiddenLayer.W", "hiddenLayer.b", "logRegressionLayer.W", "logRegressionLayer.b"]),
    (lambda: LogisticRegression(pt.matrix(), 6, 3, W=pytensor.shared(np.random.RandomState(0).normal(size=(6, 3)))),
     ["W", "b"]),
])
def test_every_model_class_round_trips(make, names, tmp_path, float64):
    model = make()
    save_model(model, tmp_path / "m.safetensors")
    loaded, header = load_model(tmp_path / "m.safetensors")
    assert type(loaded) is type(model) and header["class"] == type(model).__name__
    for a, b in zip(loaded.params, model.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
        assert a.dtype == b.dtype == "float64"
    assert list(read_model_file(tmp_path / "m.safetensors")[1]) == names


def test_loading_the_wrong_class_is_refused(tmp_path, float32):
    small_sda().save(tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="holds a SdA, not a dA"):
        dA.load(tmp_path / "m.safetensors")


def valid_parts(tmp_path):
    """``(tensor entries, sda header, data)`` of a small SdA's model file."""
    return take_apart(small_sda().save(tmp_path / "ok.safetensors").read_bytes())


def refused(path, message, error=ModelFileError, load=load_model):
    """``load(path)`` raises ``error`` in one line that starts with the file and says ``message``."""
    with pytest.raises(error, match=message) as caught:
        load(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and "\n" not in text, text


def test_a_pickle_is_refused_without_running_it(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"W": Boom()}))
    refused(path, "not a safetensors file")
    assert not (tmp_path / "pwned").exists()


def tensors_of(tmp_path):
    header, tensors = read_tensor_file(small_sda().save(tmp_path / "ok.safetensors"), "sda-model")
    return header, dict(tensors)


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.update({"logLayer.W": t["logLayer.W"][:-1]}), r"logLayer.W has shape \(3, 3\), the architecture"),
    (lambda t: t.update({"logLayer.b": t["logLayer.b"].astype(np.float64)}), "dtype float64, the header says float32"),
    (lambda t: t.update({"sigmoid_layers.1.b": np.full_like(t["sigmoid_layers.1.b"], np.nan)}), "NaN"),
    (lambda t: t.pop("dA_layers.1.b_prime"), r"missing: \['dA_layers.1.b_prime'\]"),
    (lambda t: t.update(extra=np.zeros(2, np.float32)), r"unexpected: \['extra'\]"),
    (lambda t: t.update({"logLayer.W.": t.pop("logLayer.W")}), r"missing: \['logLayer.W'\]"),
])
def test_tensors_the_model_has_not_are_refused(mutate, message, tmp_path, float32):
    header, tensors = tensors_of(tmp_path)
    mutate(tensors)
    refused(write_tensor_file(tmp_path / "bad.safetensors", header, tensors), message)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("forge, message", [
    # the header's length and text
    (lambda e, h, d: (10 ** 6).to_bytes(8, "little") + b"{}", "claims a header of 1000000 bytes; the file has 2"),
    (lambda e, h, d: (2 ** 64 - 1).to_bytes(8, "little") + bytes(64), "claims a header of 18446744073709551615"),
    (lambda e, h, d: (40 << 20).to_bytes(8, "little") + bytes(64), "claims a header of"),
    (lambda e, h, d: put_together({}, header_text="{not json") + d, "not a safetensors file .* not valid JSON"),
    (lambda e, h, d: put_together({}, header_text='"a string"') + d, "its header is a str, not an object"),
    (lambda e, h, d: put_together({}, header_text="[" * 100_000 + "]" * 100_000), "JSON nested 100000 levels"),
    (lambda e, h, d: put_together({}, header_text="9" * 5000), "not valid JSON"),
    (lambda e, h, d: b"\x05\x00\x00", "too short for a safetensors file"),
    # the metadata
    (lambda e, h, d: put_together(e, data=d, metadata="sda"), "no 'sda' string in its safetensors metadata"),
    (lambda e, h, d: put_together(e, data=d, metadata={"format": "pt"}), "no 'sda' string"),
    (lambda e, h, d: put_together(e, data=d, metadata={"sda": {"format": "sda-model"}}), "no 'sda' string"),
    (lambda e, h, d: put_together(e, data=d, metadata={"sda": "[1, 2]"}), r"not an sda-model file \(format 'list'\)"),
    (lambda e, h, d: put_together(e, data=d, metadata={"sda": "{oops"}), "metadata: not valid JSON"),
    (lambda e, h, d: put_together(e, {**h, "format": "sda-checkpoint"}, d), "not an sda-model file"),
    (lambda e, h, d: put_together(e, {**h, "format_version": 1}, d), "format version 1 is not supported"),
    (lambda e, h, d: put_together(e, {**h, "format_version": "2"}, d), "format version '2' is not supported"),
    (lambda e, h, d: put_together(e, {**h, "format_version": 2.0}, d), "format version 2.0 is not supported"),
    (lambda e, h, d: put_together(e, {**h, "format_version": True}, d), "format version True is not supported"),
    (lambda e, h, d: put_together(e, {**h, "extra": {"x": 1}}, d), r"unknown keys \['extra'\]"),
    (lambda e, h, d: put_together(e, {k: v for k, v in h.items() if k != "sda_version"}, d),
     r"lacks \['sda_version'\]"),
    (lambda e, h, d: put_together(e, {**h, "training_state": [1]}, d), "training_state must be an object"),
    # the tensors' entries: dtype, shape, byte ranges
    (lambda e, h, d: put_together({**e, "logLayer.b": entry("F16", (3,), e["logLayer.b"]["data_offsets"])}, h, d),
     "dtype 'F16', expected F32 or F64"),
    (lambda e, h, d: put_together({**e, "logLayer.b": entry("I32", (3,), e["logLayer.b"]["data_offsets"])}, h, d),
     "dtype 'I32', expected F32 or F64"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "shape": [1.5, 2]}}, h, d), "not a list of counts"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "shape": [True, 3]}}, h, d), "not a list of counts"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "shape": [-3]}}, h, d), "not a list of counts"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "shape": "3"}}, h, d), "not a list of counts"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "shape": [2 ** 62, 2 ** 62]}}, h, d),
     "claims shape .* but spans 12 bytes"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "extra": 1}}, h, d), "is not described by"),
    (lambda e, h, d: put_together({**e, "logLayer.b": [3]}, h, d), "is not described by"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "data_offsets": [8, 4]}}, h, d),
     "not a byte range"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "data_offsets": [0]}}, h, d),
     "not a byte range"),
    (lambda e, h, d: put_together({**e, "logLayer.b": {**e["logLayer.b"], "data_offsets": [0.0, 12.0]}}, h, d),
     "not a byte range"),
    (lambda e, h, d: put_together({**e, "logLayer.b": entry("F32", (3,), (0, 12))}, h, d), "overlapping another"),
    (lambda e, h, d: put_together(e, h, d[:-4]), "the tensors span .* but the file holds"),
    (lambda e, h, d: put_together(e, h, d + bytes(8)), "the tensors span .* but the file holds"),
    (lambda e, h, d: put_together({k: {**v, "data_offsets": [o + 4 for o in v["data_offsets"]]}
                                   for k, v in e.items()}, h, bytes(4) + d), "leaving a gap"),
    (lambda e, h, d: put_together({**e, **{f"t{i}": entry("F32", (0,), (0, 0)) for i in range(5000)}}, h, d),
     "5008 tensors, more than an sda file holds"),
])
def test_forged_safetensors_files_are_refused_before_any_tensor_is_read(forge, message, tmp_path, float32,
                                                                        monkeypatch):
    entries, header, data = valid_parts(tmp_path)
    path = tmp_path / "forged.safetensors"
    path.write_bytes(forge(entries, header, data))
    monkeypatch.setattr("safetensors.safe_open", None)  # reading any tensor would fail otherwise
    refused(path, message)


def test_a_header_claiming_huge_layers_is_refused_by_the_shapes_it_implies(tmp_path, float32):
    entries, header, data = valid_parts(tmp_path)
    huge = {**header, "config": {**header["config"], "hidden_layers_sizes": [10 ** 6, 10 ** 6]}}
    path = tmp_path / "huge.safetensors"
    path.write_bytes(put_together(entries, huge, data))
    refused(path, r"sigmoid_layers.0.W has shape \(6, 5\), the architecture needs \(6, 1000000\)")


def test_a_file_changed_after_it_was_checked_is_refused(tmp_path, float32, monkeypatch):
    import sda.persistence as persistence
    path = small_sda().save(tmp_path / "m.safetensors")
    other = small_sda().save(tmp_path / "other.safetensors", training_state={"epoch": 1})
    checked = persistence._tensor_layout

    def replace_after_checking(*args):
        layout = checked(*args)
        path.write_bytes(other.read_bytes())
        return layout
    monkeypatch.setattr(persistence, "_tensor_layout", replace_after_checking)
    refused(path, "the file changed while it was read")


def old_npz(path, header: dict | None, **arrays):
    """An .npz file as sda 0.3 wrote its model files and checkpoints: a JSON ``__header__``."""
    if header is not None:
        arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def test_old_npz_model_files_and_checkpoints_are_refused_naming_what_they_are(tmp_path):
    model = old_npz(tmp_path / "best_model.npz", {"format": "sda-model", "format_version": 1,
                                                  "sda_version": "0.3.0", "class": "SdA"}, param_0=np.zeros(3))
    message = (r"best_model.npz is an sda 0.3.0 .npz model file \(format version 1\); "
               r"this sda \(0.4.0\) reads .safetensors model files only: retrain")
    refused(model, message)
    refused(model, message, CheckpointError, load_checkpoint)
    checkpoint = old_npz(tmp_path / "checkpoint.npz", {"format": "sda-checkpoint", "format_version": 3},
                         state_0=np.zeros(3))
    refused(checkpoint, r"checkpoint.npz is an .npz checkpoint \(format version 3\); this sda \(0.4.0\) reads "
                        r".safetensors checkpoints only: start the run again", CheckpointError, load_checkpoint)
    refused(checkpoint, "is an .npz checkpoint", ModelFileError, load_model)


def test_other_npz_files_are_refused_as_such_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    buf = io.BytesIO()
    np.savez(buf, __header__=np.array([Boom()], dtype=object))  # numpy pickles object arrays
    (tmp_path / "evil.npz").write_bytes(buf.getvalue())
    for path in (old_npz(tmp_path / "data.npz", None, X=np.zeros(3)),
                 old_npz(tmp_path / "deep.npz", json.loads("[" * 100 + "]" * 100)),
                 old_npz(tmp_path / "other.npz", {"format": "sda-sweep"}),
                 tmp_path / "evil.npz"):
        refused(path, "is an .npz archive, not a .safetensors sda file")
    assert not (tmp_path / "pwned").exists()


def test_brackets_inside_header_strings_do_not_count_as_nesting(tmp_path, float32):
    state = {"note": '\\"' + "[{" * 100, "history": [[i] for i in range(100)]}  # in JSON: "\\\"[{[{..."
    small_sda().save(tmp_path / "m.safetensors", training_state=state)
    assert read_model_file(tmp_path / "m.safetensors")[0]["training_state"] == state


def test_nesting_after_a_string_ending_in_a_backslash_counts(tmp_path, float32):
    state = {"note": "ends in \\", "deep": json.loads("[" * 100 + "]" * 100)}
    small_sda().save(tmp_path / "m.safetensors", training_state=state)
    refused(tmp_path / "m.safetensors", "metadata: JSON nested 10. levels deep", load=read_model_file)


def test_header_with_unknown_class_or_bad_config(tmp_path, float32):
    entries, header, data = valid_parts(tmp_path)
    for change, message in (({"class": "os.system"}, "unknown model class 'os.system'"),
                            ({"class": ["SdA"]}, "lacks the model class"),
                            ({"config": [1]}, "lacks the model class or configuration"),
                            ({"dtype": "float16"}, "dtype 'float16' is not float32 or float64"),
                            ({"config": {**header["config"], "hidden_layers_sizes": [0]}}, "invalid")):
        (tmp_path / "bad.safetensors").write_bytes(put_together(entries, {**header, **change}, data))
        refused(tmp_path / "bad.safetensors", message)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, float32, monkeypatch):
    import os
    path = small_sda(0).save(tmp_path / "m.safetensors")
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", full_disk)  # after the new file's bytes are written
    with pytest.raises(OSError, match="disk full"):
        small_sda(5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_junk_and_truncated_files(tmp_path, float32):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    refused(tmp_path / "junk.safetensors", "junk.safetensors: not a safetensors file")
    data = small_sda().save(tmp_path / "m.safetensors").read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 100, 9):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        refused(tmp_path / "cut.safetensors", "cut.safetensors")


def test_saved_files_get_the_usual_permissions(tmp_path, float32):
    import os
    import stat
    umask = os.umask(0o022)
    try:
        path = small_sda().save(tmp_path / "m.safetensors")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_full_size_model_and_checkpoint_load_within_the_size_limits(tmp_path, float64):
    """The tutorial's 784-1000-1000-1000-10 network, and a checkpoint's worth of tensors with
    its momentum velocities."""
    sda = SdA(np.random.RandomState(0), n_ins=784, hidden_layers_sizes=[1000] * 3, n_outs=10,
              corruption_levels=[0.1, 0.2, 0.3])
    header, params = read_model_file(sda.save(tmp_path / "m.safetensors"))
    assert header["config"]["hidden_layers_sizes"] == [1000] * 3 and params["sigmoid_layers.1.W"].shape == (1000, 1000)
    values = [p.get_value() for p in sda.params]
    state = {f"state_{i}": v for i, v in enumerate(values + [np.zeros_like(v) for v in values])}
    write_tensor_file(tmp_path / "c.safetensors", {"format": "sda-checkpoint", "format_version": 1}, state)
    _, tensors = read_tensor_file(tmp_path / "c.safetensors", "sda-checkpoint", CheckpointError, version=1)
    np.testing.assert_array_equal(tensors["state_2"], values[2])


def test_checkpoints_refuse_forged_files_with_their_own_error(tmp_path):
    header = {"format": "sda-checkpoint", "format_version": CHECKPOINT_VERSION}
    (tmp_path / "c.safetensors").write_bytes(put_together({"state_0": entry(shape=(10 ** 9,))}, header, bytes(8)))
    refused(tmp_path / "c.safetensors", "claims shape", CheckpointError, load_checkpoint)


def test_files_that_no_model_can_be_are_refused_before_reading(tmp_path, float32):
    import os
    import time
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as f:  # sparse: 64 GB that take no disk
        f.truncate(64 << 30)
    header, tensors = tensors_of(tmp_path)
    write_tensor_file(tmp_path / "half.safetensors", header, {k: v.astype(np.float16) for k, v in tensors.items()})
    for path, message in ((huge, "larger than any sda file"), (tmp_path / "half.safetensors", "expected F32 or F64"),
                          (tmp_path, "not a regular file"), (tmp_path / "absent.safetensors", "no such file")):
        start = time.process_time()
        refused(path, message)
        assert time.process_time() - start < 1.0
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFileError, match="not a regular file"):
            load_model("/dev/zero")


_MODELS = {"dA": (lambda: dA(np.random.RandomState(0), n_visible=6, n_hidden=4), "n_hidden"),
           "SparseAutoencoder": (lambda: SparseAutoencoder(np.random.RandomState(0), n_visible=6, n_hidden=4),
                                 "n_visible"),
           "MLP": (lambda: MLP(np.random.RandomState(0), pt.matrix(), 6, 5, 3, activation=pt.sigmoid), "n_hidden"),
           "LogisticRegression": (lambda: LogisticRegression(pt.matrix(), 6, 3), "n_out"),
           "SdA": (lambda: small_sda(), "n_outs")}


@pytest.mark.parametrize("size", [float("inf"), float("nan"), 10 ** 400, 1e300, 4.0, 3.7, "4", True, -4, 2 ** 40])
@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_a_header_size_that_is_not_a_plain_count_is_refused(kind, size, tmp_path, float32):
    make, key = _MODELS[kind]
    entries, header, data = take_apart(save_model(make(), tmp_path / "m.safetensors").read_bytes())
    header["config"][key] = size
    (tmp_path / "m.safetensors").write_bytes(put_together(entries, header, data))
    refused(tmp_path / "m.safetensors", "configuration is invalid")


@pytest.mark.parametrize("sparse, message", [({"sparsity_target": "0.1"}, "sparsity_target must be a number"),
                                             ({"sparsity_weight": -5}, "sparsity_weight"),
                                             ({"sparse_weight_decay": float("nan")}, "sparse_weight_decay")])
def test_an_sda_refuses_sparse_settings_it_would_save_even_without_sparse_layers(sparse, message, tmp_path, float32):
    from sda.SdA import SdA
    with pytest.raises((TypeError, ValueError), match=message):
        SdA(np.random.RandomState(0), n_ins=4, hidden_layers_sizes=[3], n_outs=2, corruption_levels=[0.1], **sparse)
