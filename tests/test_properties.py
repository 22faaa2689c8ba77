"""Property tests: the IDX reader and the model loader take any bytes without crashing,
hanging or allocating much; they return valid data or raise the library's own error."""

import gzip
import resource

import numpy as np
import pytest
from conftest import idx_bytes
from hypothesis import HealthCheck, given, settings
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
        return sda.save(tmp_path_factory.mktemp("m") / "m.npz").read_bytes()


@SETTINGS
@given(data=st.binary(max_size=256))
def test_model_loader_on_arbitrary_bytes(tmp_path, data):
    (tmp_path / "m.npz").write_bytes(data)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m.npz")


@SETTINGS
@given(st.data())
def test_model_loader_on_mutated_files(tmp_path, valid_model_bytes, data):
    blob = data.draw(mutated(valid_model_bytes))
    (tmp_path / "m.npz").write_bytes(blob)
    before = max_rss_mb()
    try:
        model, header = load_model(tmp_path / "m.npz")
    except ModelFileError:
        return
    finally:
        assert max_rss_mb() - before < 200
    assert header["class"] == "SdA" and model.hidden_layers_sizes == [4]
