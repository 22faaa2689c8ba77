"""The members of an ``.npz`` archive, read without trusting the file.

Users' data files (:mod:`sda.npz_data`) are zip archives of ``.npy`` arrays, as sda 0.3's model
files and checkpoints were (:mod:`sda.persistence` reads only the small header of those, to say
what they are).  What is checked here before any array is inflated:

* the file starts as a zip archive does (so that a large file of something else is refused at
  once, not read first);
* every member is one distinctly named ``.npy`` array (a second ``X.npy`` would silently replace
  the first), stored or deflated (bzip2 and lzma inflate unbounded chunks at once; other methods
  zipfile cannot read), and not encrypted;
* each array's ``.npy`` header states a shape and dtype that account for exactly the member's
  declared size, so a header claiming a huge shape in a small member is refused instead of
  making numpy allocate that shape.

:data:`READ_ERRORS` are the exceptions that reading a damaged member can still raise (a broken
deflate stream, a short file): callers turn them into their own one-line error.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["READ_ERRORS", "check_zip_signature", "npz_members", "npy_layout", "read_member"]

#: What reading a damaged archive or member raises.
READ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, zlib.error, NotImplementedError)
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# a local file header, or the end of an empty archive
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def check_zip_signature(path: Path, error) -> None:
    """Raise ``error`` unless ``path`` starts as a zip archive (4 bytes are read)."""
    with open(path, "rb") as f:
        start = f.read(4)
    if start not in _ZIP_SIGNATURES:
        raise error(f"{path}: not an .npz (zip) archive (it starts with {start!r})")


def npz_members(path, archive: zipfile.ZipFile, error, max_members: int, kind: str = "an sda file") -> dict:
    """The archive's members by array name (``X`` for ``X.npy``), each checked as the module
    docstring says; at most ``max_members`` of them (as many as ``kind`` of file ever holds)."""
    infos = archive.infolist()
    if len(infos) > max_members:
        raise error(f"{path}: {len(infos)} entries, more than {kind} holds ({max_members})")
    members = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if name == info.filename or name in members:
            raise error(f"{path}: member {info.filename!r:.80} is not a distinct .npy array"
                        + (" (the archive holds two of that name)" if name in members else ""))
        if info.compress_type not in _COMPRESSIONS:
            raise error(f"{path}: member {info.filename!r:.80} uses compression {info.compress_type}, "
                        "not stored or deflated")
        if info.flag_bits & 0x1:
            raise error(f"{path}: member {info.filename!r:.80} is encrypted")
        members[name] = info
    return members


def npy_layout(path, archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo, error, kinds: str = "fiub"):
    """``(dtype, shape)`` from a member's .npy header, read without inflating its data; the
    shape must account for exactly the member's declared size, and the dtype be of ``kinds``."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADER_READERS:
            raise error(f"{path}: entry {name!r:.80} has .npy format version {version}, expected 1.0 or 2.0")
        shape, _, dtype = _NPY_HEADER_READERS[version](stream)
        data_start = stream.tell()
    if dtype.kind not in kinds:  # object arrays would be pickles; structured ones are not numbers
        raise error(f"{path}: entry {name!r:.80} has dtype {dtype}, expected numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or data_start + nbytes != info.file_size:
        raise error(f"{path}: entry {name!r:.80} claims shape {shape} ({nbytes} bytes of {dtype}) "
                    f"but holds {info.file_size - data_start} bytes")
    return dtype, shape


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """A member's array; only called once :func:`npy_layout` has vouched for its size."""
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)
