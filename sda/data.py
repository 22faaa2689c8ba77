"""MNIST on disk: reading IDX files, checking them, downloading them, splitting them (numpy only;
:mod:`sda.datasets` turns the arrays into the shared variables that compiled functions read).

The IDX format (http://yann.lecun.com/exdb/mnist/) is a tiny header followed by a
C-ordered array::

    bytes 0-1   zero
    byte  2     element type (0x08 = unsigned byte, ...)
    byte  3     number of dimensions, d
    next 4*d    the size of each dimension, big-endian uint32
    rest        the data, big-endian

The files are usually gzipped; :func:`read_idx` reads either form.  Everything that
can be wrong with a file (truncated, wrong magic, sizes that disagree, a checksum
that does not match) raises :class:`DataError` with a message naming the file.

The tutorial split (Deep Learning Tutorials, ``logistic_sgd.load_data``) is
train = the first 50,000 training images, valid = the last 10,000 training images,
test = the 10,000 test images, pixels scaled to [0, 1] and labels as int32.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sda.resources import shipped

__all__ = [
    "DataError",
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_MIRRORS",
    "DEFAULT_DATA_DIR",
    "Split",
    "Examples",
    "class_count",
    "read_idx",
    "find_idx_file",
    "download_mnist",
    "load_mnist",
]

#: The four files of MNIST (and of every drop-in replacement such as Fashion-MNIST).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: sha256 of each *decompressed* MNIST file (see data/README.md).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Public mirrors holding ``<name>.gz`` for each file, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The four files as sda ships them (``data/mnist`` of a checkout, or inside the installed package).
DEFAULT_DATA_DIR = shipped("mnist")

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file or directory is missing, unreadable, malformed or not the expected one."""


def _idx_header(head: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse the IDX header at the start of ``head``: (dtype, shape, header length)."""
    if len(head) < 4:
        raise DataError(f"{where}: truncated IDX header ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DataError(
            f"{where}: not an IDX file (magic bytes {head[:4].hex()}, expected 0000tt0d "
            f"with type tt in {sorted(f'{t:02x}' for t in _IDX_DTYPES)})"
        )
    ndim = head[3]
    if ndim == 0:
        raise DataError(f"{where}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DataError(f"{where}: truncated IDX header (needs {header_len} bytes, has {len(head)})")
    shape = struct.unpack(f">{ndim}I", head[4:header_len])
    return _IDX_DTYPES[head[2]], tuple(int(s) for s in shape), header_len


def _read_payload(path: Path) -> bytes:
    """The decompressed bytes of ``path``, reading no more than its header allows.

    A forged header cannot make us allocate gigabytes: we read the header first, then
    at most the declared size plus one byte (to detect trailing garbage).
    """
    where = str(path)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise DataError(f"{where}: cannot open ({exc.strerror})") from exc
    with raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        try:
            head = stream.read(4)
            if len(head) == 4:
                head += stream.read(4 * head[3])
            dtype, shape, _ = _idx_header(head, where)
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            file_size = os.fstat(raw.fileno()).st_size
            # deflate cannot expand data by more than ~1032x: a larger claim is forged
            limit = file_size * 1032 if gzipped else file_size
            if expected > limit:
                raise DataError(
                    f"{where}: header declares shape {shape} ({expected} bytes), more than a "
                    f"{file_size}-byte file can hold"
                )
            body = stream.read(expected + 1)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{where}: corrupt or truncated gzip stream ({exc})") from exc
    if len(body) != expected:
        raise DataError(
            f"{where}: header declares shape {shape} ({expected} data bytes) but the file "
            f"holds {'more than ' if len(body) > expected else ''}{min(len(body), expected)}"
            f"{'' if len(body) > expected else ' (truncated)'}"
        )
    return head + body


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or plain) into a native-endian numpy array.

    Parameters
    ----------
    path
        path to the file.
    sha256
        if given, the hex sha256 that the *decompressed* bytes must have.

    Raises
    ------
    DataError
        the file is unreadable, truncated, not IDX, or fails the checksum.
    """
    path = Path(path)
    payload = _read_payload(path)
    if sha256 is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{path}: sha256 of the decompressed data is {digest}, expected {sha256}. "
                "The file is corrupt or is another dataset; for a dataset of the same format, "
                "such as Fashion-MNIST, pass --no-verify (verify=False in Python)"
            )
    dtype, shape, header_len = _idx_header(payload, str(path))
    array = np.frombuffer(payload, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def find_idx_file(directory: str | os.PathLike, name: str) -> Path | None:
    """``directory/name.gz`` or ``directory/name`` (in that order), or None."""
    directory = Path(directory)
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _atomic_download(url: str, target: Path, sha256: str | None, progress: bool) -> None:
    """Fetch ``url`` into ``target`` through a temporary file; ``target`` is only replaced
    once the whole file arrived and (if ``sha256`` is given) its content checks out."""
    from sda.utils import give_default_permissions, tqdm

    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                      disable=None if progress else True, leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        read_idx(tmp, sha256=sha256)  # raises DataError when the download is bad
        give_default_permissions(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def download_mnist(
    directory: str | os.PathLike,
    mirrors: tuple[str, ...] | list[str] = MNIST_MIRRORS,
    checksums: dict[str, str] | None = MNIST_SHA256,
    progress: bool = True,
) -> list[Path]:
    """Download the MNIST files missing from ``directory`` (created if needed).

    Each mirror is tried in turn; a file is written to a temporary name, verified
    (IDX structure and, when ``checksums`` is given, sha256) and only then renamed, so
    an interrupted or corrupt download never replaces anything.

    Returns the paths of the files that were downloaded.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name in MNIST_FILES.values():
        if find_idx_file(directory, name) is not None:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{name}.gz"
            try:
                _atomic_download(url, directory / f"{name}.gz",
                                 (checksums or {}).get(name), progress)
                fetched.append(directory / f"{name}.gz")
                break
            except (OSError, DataError) as exc:  # URLError is an OSError
                errors.append(f"{url}: {exc}")
        else:
            raise DataError(f"could not download {name}.gz from any mirror:\n  " + "\n  ".join(errors))
    return fetched


def _check_labels(path: Path, labels: np.ndarray) -> None:
    """Labels index classes, so they cannot be negative (uint8 IDX files cannot hold one, the
    signed and float IDX types can); the model checks the upper bound against its outputs."""
    if not (labels >= 0).all():  # NaN too, from a float IDX file
        raise DataError(f"{path}: labels must be >= 0, found {labels.min()}")
    if labels.dtype.kind == "f" and labels.size:
        fractional = labels[labels != np.floor(labels)]
        if fractional.size or labels.max() > np.iinfo(np.int32).max:
            found = fractional[0] if fractional.size else labels.max()
            raise DataError(f"{path}: labels must be whole numbers that index classes, found {found:g}")


def _check_pixels(path: Path, images: np.ndarray) -> None:
    """The scaled pixels must be finite and in [0, 1]: the cross-entropy reconstruction needs
    it, and a NaN would otherwise surface much later as a diverging cost."""
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    if 0 <= low and high <= 1:  # false for NaN, which min and max propagate
        return
    n_nan, n_inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
    if n_nan or n_inf:
        raise DataError(f"{path}: {n_nan} NaN and {n_inf} infinite pixel values (after / 255)")
    raise DataError(f"{path}: pixels / 255 must lie in [0, 1], found {low:g} .. {high:g}")


def _check_same_image_shape(paths: dict, arrays: dict) -> None:
    """Train and test images must have one shape: the network's input width is fixed by the
    training images, and a test set of another size would fail only after pretraining."""
    train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train != test:
        raise DataError(
            f"{paths['train_images']} holds images of shape {train} but {paths['test_images']} "
            f"holds {test}; train and test images must have the same shape"
        )


@dataclass(frozen=True)
class Split:
    """Images (n, pixels) float in [0, 1] and labels (n,) int32 for train, valid, test (the test
    pair may be None: data of one's own without a test set, :mod:`sda.npz_data`)."""

    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray] | None  # None: MNIST's --valid-size 0, every image trains
    test: tuple[np.ndarray, np.ndarray] | None

    def __iter__(self):
        return iter((self.train, self.valid, self.test))

    def with_train_size(self, n: int | None) -> Split:
        """The same split with only the first ``n`` training examples (None: all of them)."""
        available = len(self.train[1])
        if n is None:
            return self
        if not 0 < n <= available:
            raise DataError(f"--train-size must be between 1 and the {available} training examples, got {n}")
        return Split(train=(self.train[0][:n], self.train[1][:n]), valid=self.valid, test=self.test)


@dataclass
class Examples:
    """Labelled examples as a file holds them, before any split or scaling (:mod:`sda.own_data`):
    features ``x`` (n, d), numbers of any range (pixel bytes already divided by 255); labels
    ``y`` (n,) int32; the ``test`` pair or None; ``image_shape``, the (rows, cols) of one
    example as an image, or None when the examples are not images (no filters are drawn)."""

    x: np.ndarray
    y: np.ndarray
    test: tuple[np.ndarray, np.ndarray] | None
    image_shape: tuple[int, int] | None


def class_count(*labels: np.ndarray) -> int:
    """The number of classes of these labels, which must be the integers 0 .. k-1, each of them
    present (a missing one would leave an output unit that nothing trains)."""
    present = np.unique(np.concatenate([np.asarray(part).ravel() for part in labels]))
    if len(present) == 0:
        raise DataError("no labels to count the classes of")
    k = int(present[-1]) + 1
    if present[0] < 0 or len(present) != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"the labels must be the integers 0 .. k-1, each present, to tell the number of classes; "
                        f"found {len(present)} distinct labels from {present[0]} to {present[-1]}"
                        + (f" (missing: {shown})" if missing else "")
                        + ": relabel them, or give --n-outs")
    if k == 1:
        raise DataError("the labels hold one class only; a classifier needs two at least")
    return k


#: the tutorial's validation set: the last 10,000 of MNIST's 60,000 training images
VALID_SIZE = 10_000


def load_mnist(
    directory: str | os.PathLike = DEFAULT_DATA_DIR,
    n_valid: int = VALID_SIZE,
    verify: bool = True,
    download: bool = False,
    dtype: str = "float32",
) -> Split:
    """Load an MNIST-format directory and split it as the tutorial does.

    Parameters
    ----------
    directory
        a folder holding the four IDX files, gzipped or not.
    n_valid
        the validation set is the *last* ``n_valid`` training images; the
        training set is the rest (50,000 for MNIST); 0: no validation set (``valid`` None).
    verify
        check each file's sha256 against :data:`MNIST_SHA256`. Turn it off for
        another dataset of the same format (Fashion-MNIST, your own).
    download
        fetch missing files from :data:`MNIST_MIRRORS` first.
    dtype
        floating type of the images (pixels / 255).
    """
    directory = Path(directory)
    if download:
        download_mnist(directory, checksums=MNIST_SHA256 if verify else None)
    if not directory.is_dir():
        raise DataError(
            f"data directory {directory} does not exist (expected the four files "
            f"{', '.join(f + '.gz' for f in MNIST_FILES.values())})"
        )
    if not os.access(directory, os.R_OK | os.X_OK):
        raise DataError(f"data directory {directory} is not readable")
    paths = {key: find_idx_file(directory, name) for key, name in MNIST_FILES.items()}
    missing = [MNIST_FILES[key] for key, p in paths.items() if p is None]
    # there, but a folder, a device or a dangling link: named as what it is, not as missing
    odd = [c for m in missing for c in (directory / f"{m}.gz", directory / m) if c.exists() or c.is_symlink()]
    if odd:
        raise DataError(f"{odd[0]} is not a regular file (the MNIST IDX files must be regular files)")
    if missing:
        raise DataError(
            f"missing in {directory}: {', '.join(m + '[.gz]' for m in missing)} "
            "(copy the MNIST IDX files there, or allow downloading)"
        )
    found = {key: p for key, p in paths.items() if p is not None}  # every one, as none is missing
    arrays = {
        key: read_idx(p, MNIST_SHA256.get(MNIST_FILES[key]) if verify else None)
        for key, p in found.items()
    }
    sets = {}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(
                f"{found[part + '_images']}: expected images (n, rows, cols) and labels (n,), "
                f"got shapes {images.shape} and {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{directory}: {part} set has {images.shape[0]} images but {labels.shape[0]} labels"
            )
        _check_labels(found[f"{part}_labels"], labels)
        sets[part] = (
            (images.reshape(images.shape[0], -1) / np.asarray(255, dtype)).astype(dtype),
            labels.astype(np.int32),
        )
        _check_pixels(found[f"{part}_images"], sets[part][0])
    _check_same_image_shape(found, arrays)
    n_train_all = sets["train"][0].shape[0]
    if not 0 <= n_valid < n_train_all:
        raise DataError(
            f"n_valid (--valid-size) must be between 0 (no validation set) and the number of training images - 1 "
            f"({n_train_all - 1}), got {n_valid}"
        )
    (x, y), cut = sets["train"], n_train_all - n_valid
    return Split(train=(x[:cut], y[:cut]), valid=(x[cut:], y[cut:]) if n_valid else None, test=sets["test"])
