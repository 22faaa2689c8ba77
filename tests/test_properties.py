"""Property tests: the IDX reader and the model loader take any bytes without crashing,
hanging or allocating much; they return valid data or raise the library's own error."""

import functools
import gzip
import io
import json
import resource
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from conftest import idx_bytes
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


# Forged model files: each is small, claims something huge, and must be refused quickly.
def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_header(shape, descr="<f8") -> bytes:
    """A .npy header alone, claiming ``shape``; the data that should follow is up to the caller."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def raw_deflate(data: bytes, flush=zlib.Z_FINISH) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # zip members are raw deflate streams
    return packer.compress(data) + packer.flush(flush)


def member(data: bytes):
    """An honest zip member: (deflated data, inflated size, CRC-32)."""
    return raw_deflate(data), len(data), zlib.crc32(data)


@functools.lru_cache
def deflated_mebibyte() -> bytes:
    """1 MiB of zeros as a self-contained deflate segment (~1 KB): repeating it k times
    inflates to k MiB, a zip bomb built without ever holding the inflated data."""
    return raw_deflate(bytes(1 << 20), zlib.Z_FULL_FLUSH)


def bomb_member(mebibytes: int):
    """A member whose .npy header honestly declares the ``mebibytes`` of zeros it inflates to.

    Its CRC is left wrong: computing it would mean inflating everything, and a loader that
    inflates before checking sizes has paid the memory before the CRC could stop it."""
    head = npy_header((mebibytes << 17,))
    packed = raw_deflate(head, zlib.Z_FULL_FLUSH) + deflated_mebibyte() * mebibytes + raw_deflate(b"")
    return packed, len(head) + (mebibytes << 20), 0


def zip_bytes(members: dict) -> bytes:
    """A zip archive of deflated members given as ``name: (packed, inflated size, crc)``,
    written by hand so that sizes and contents can disagree as a forger's would."""
    out, central = bytearray(), bytearray()
    for name, (packed, size, crc) in members.items():
        fname = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(packed), size, len(fname), 0)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, len(out)) + fname
        out += b"PK\x03\x04" + fields + fname + packed
    n = len(members)
    return bytes(out + central + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(central), len(out), 0))


@pytest.fixture(scope="module")
def valid_model(valid_model_bytes):
    """The small valid model's header (a dict) and parameter arrays, to forge from."""
    with np.load(io.BytesIO(valid_model_bytes)) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(arrays.pop("__header__").tobytes()), arrays


def model_zip(header, arrays, header_text=None, extra=None) -> bytes:
    """A model file of ``arrays`` with ``header`` (or its JSON text), plus ``extra`` members."""
    text = (header_text or json.dumps(header)).encode()
    members = {f"{name}.npy": member(npy_bytes(a)) for name, a in arrays.items()}
    members["__header__.npy"] = member(npy_bytes(np.frombuffer(text, np.uint8)))
    return zip_bytes({**members, **(extra or {})})


def with_pad(header, pad_json: str) -> str:
    """``header`` as JSON with one more key whose value is the JSON text ``pad_json``."""
    return json.dumps(header)[:-1] + ', "pad": ' + pad_json + "}"


# Counts whose names alone take seconds, yet not so many that a loader which builds them
# would hang the test run instead of failing it (a forged file may claim 10**12).
HUGE_COUNT = st.integers(10 ** 6, 4 * 10 ** 6)
NOT_A_COUNT = st.one_of(st.integers(-10 ** 15, 64), st.booleans(), st.floats(allow_nan=False),
                        st.text(max_size=5), st.none())


@st.composite
def forged_model_files(draw, header, arrays):
    """``(file bytes, what the error must say)`` for one kind of forged model file."""
    kind = draw(st.sampled_from(["n_params", "nesting", "big header", "bomb", "shape", "random"]))
    if kind == "n_params":
        n = draw(HUGE_COUNT if draw(st.booleans()) else NOT_A_COUNT.filter(lambda n: n != len(arrays)))
        return model_zip({**header, "n_params": n}, arrays), "do not match n_params"
    if kind == "nesting":
        depth, (open_, close) = draw(st.integers(65, 150_000)), draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return model_zip(header, arrays, with_pad(header, open_ * depth + "0" + close * depth)), "levels deep"
    if kind == "big header":
        pad = json.dumps(" " * draw(st.integers(1 << 20, 8 << 20)))
        return model_zip(header, arrays, with_pad(header, pad)), "larger than"
    if kind == "bomb":
        return model_zip(header, arrays, extra={"bomb.npy": bomb_member(draw(st.integers(256, 1024)))}), "inflate to"
    if kind == "shape":
        shapes = st.lists(st.integers(0, 2 ** 40), min_size=1, max_size=3)
        shape = draw(shapes.filter(lambda s: np.prod(s, dtype=object) != 2))
        data = npy_header(shape) + bytes(16)  # room for two float64s whatever the header claims
        return model_zip(header, arrays, extra={"huge.npy": member(data)}), "claims shape"
    data = draw(st.binary(max_size=4096).filter(lambda b: b"PK\x05\x06" not in b))
    return data, "not an .npz (zip) archive"


# No shrinking: the examples are already simple, and shrinking a regression's slow examples
# (each seconds long) would take minutes.
@settings(max_examples=120, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_forged_model_files_are_refused_quickly_and_in_little_memory(tmp_path, valid_model, data):
    blob, says = data.draw(forged_model_files(*valid_model))
    path = tmp_path / "forged.npz"
    path.write_bytes(blob)
    tracemalloc.start()  # numpy reports its arrays to tracemalloc too
    start = time.process_time()  # CPU time: a busy test machine must not fail the bound
    try:
        with pytest.raises(ModelFileError) as refused:
            load_model(path)
        seconds, (_, peak) = time.process_time() - start, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 1 and peak < 200 << 20, (seconds, peak)
    message = str(refused.value)
    assert says in message and message.startswith(str(path)) and "\n" not in message, message
