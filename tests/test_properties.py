"""Property tests: the IDX reader and the model loader take any bytes without crashing,
hanging or allocating much; they return valid data or raise the library's own error."""

import gzip
import json
import re
import resource
import tracemalloc

import numpy as np
import pytest
from conftest import idx_bytes
from forgery import put_together, take_apart
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sda.data import DataError, read_idx
from sda.persistence import ModelFileError, load_model

SETTINGS = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@st.composite
def mutated(draw, valid: bytes):
    """``valid`` with a few bytes flipped, cut short, or extended."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8)) if draw(st.booleans()) else bytes(data)


VALID_IDX = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))


def check_idx(tmp_path, data, gz):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(data) if gz else data)
    before = max_rss_mb()
    try:
        out = read_idx(path)
    except DataError:
        return
    finally:
        assert max_rss_mb() - before < 200
    assert isinstance(out, np.ndarray) and out.nbytes <= len(data)


@SETTINGS
@given(data=st.binary(max_size=64), gz=st.booleans())
def test_idx_reader_on_arbitrary_bytes(tmp_path, data, gz):
    check_idx(tmp_path, data, gz)


@SETTINGS
@given(data=mutated(VALID_IDX), gz=st.booleans())
def test_idx_reader_on_mutated_files(tmp_path, data, gz):
    check_idx(tmp_path, data, gz)


@SETTINGS
@given(dims=st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=4), gz=st.booleans())
def test_forged_dimensions_never_allocate(tmp_path, dims, gz):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    check_idx(tmp_path, header + b"\x01" * 32, gz)


@pytest.fixture(scope="module")
def valid_model_bytes(tmp_path_factory):
    import pytensor

    from sda.SdA import SdA
    with pytensor.config.change_flags(floatX="float32"):
        sda = SdA(np.random.RandomState(0), n_ins=5, hidden_layers_sizes=[4], n_outs=3, corruption_levels=[0.1])
        return sda.save(tmp_path_factory.mktemp("m") / "m.safetensors").read_bytes()


@SETTINGS
@given(data=st.binary(max_size=256))
def test_model_loader_on_arbitrary_bytes(tmp_path, data):
    (tmp_path / "m.safetensors").write_bytes(data)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m.safetensors")


@SETTINGS
@given(st.data())
def test_model_loader_on_mutated_files(tmp_path, valid_model_bytes, data):
    blob = data.draw(mutated(valid_model_bytes))
    (tmp_path / "m.safetensors").write_bytes(blob)
    before = max_rss_mb()
    try:
        model, header = load_model(tmp_path / "m.safetensors")
    except ModelFileError:
        return
    finally:
        assert max_rss_mb() - before < 200
    assert header["class"] == "SdA" and model.hidden_layers_sizes == [4]


# Forged model files: each is small, claims something huge, and must be refused quickly.
@pytest.fixture(scope="module")
def valid_model(valid_model_bytes):
    """The small valid model's tensor entries, header (a dict) and data, to forge from."""
    return take_apart(valid_model_bytes)


def with_pad(header, pad_json: str) -> str:
    """``header`` as JSON with one more key whose value is the JSON text ``pad_json``."""
    return json.dumps(header)[:-1] + ', "pad": ' + pad_json + "}"


def tensor(shape, offsets, dtype="F64"):
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


@st.composite
def forged_model_files(draw, entries, header, data):
    """``(file bytes, a pattern the error must match)`` for one kind of forged model file."""
    kind = draw(st.sampled_from(["many", "nesting", "big header", "length", "shape", "offsets", "random"]))
    if kind == "many":
        n = draw(st.integers(4100, 20_000))
        many = {**entries, **{f"t{i}": tensor([0], [0, 0]) for i in range(n)}}
        return put_together(many, header, data), "tensors, more than an sda file holds"
    if kind == "nesting":
        depth, (open_, close) = draw(st.integers(65, 150_000)), draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        nested = open_ * depth + "0" + close * depth
        if draw(st.booleans()):  # in the sda header, or in the safetensors header around it
            return put_together(entries, data=data, metadata={"sda": with_pad(header, nested)}), "levels deep"
        return put_together({}, header_text=nested), "levels deep"
    if kind == "big header":
        pad = {"sda": with_pad(header, json.dumps(" " * draw(st.integers(4 << 20, 8 << 20))))}
        return put_together(entries, data=data, metadata=pad), "claims a header of"
    if kind == "length":
        blob = put_together(entries, header, data)
        n = draw(st.integers(len(blob) - 7, 2 ** 64 - 1))
        return n.to_bytes(8, "little") + blob[8:], "claims a header of"
    if kind == "shape":
        shape = draw(st.lists(st.integers(0, 2 ** 64), min_size=1, max_size=3).filter(lambda s: np.prod(s, dtype=object) != 2))
        forged = {**entries, "huge": tensor(shape, [len(data), len(data) + 16])}
        return put_together(forged, header, data + bytes(16)), "claims shape"
    if kind == "offsets":
        name = draw(st.sampled_from(sorted(entries)))
        offsets = draw(st.lists(st.integers(-2 ** 64, 2 ** 64), min_size=2, max_size=2)
                       .filter(lambda o: o != entries[name]["data_offsets"]))
        forged = {**entries, name: {**entries[name], "data_offsets": offsets}}
        return put_together(forged, header, data), "byte range|claims shape|starts at byte|the tensors span"
    return draw(st.binary(max_size=4096)), "safetensors"


# No shrinking: the examples are already simple, and shrinking a regression's slow examples
# (each seconds long) would take minutes.
@settings(max_examples=120, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_forged_model_files_are_refused_in_one_line_and_in_little_memory(tmp_path, valid_model, data):
    blob, says = data.draw(forged_model_files(*valid_model))
    path = tmp_path / "forged.safetensors"
    path.write_bytes(blob)
    tracemalloc.start()  # numpy reports its arrays to tracemalloc too
    try:
        with pytest.raises(ModelFileError) as refused:
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, peak  # refused before the claimed tensors are read (timings belong in bench/)
    message = str(refused.value)
    assert re.search(says, message) and message.startswith(str(path)) and "\n" not in message, message
