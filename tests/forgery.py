"""Safetensors files taken apart and put together by hand, so that tests can forge what sda's
writer never would: any header length, tensor entries, byte ranges and metadata."""

import json


def take_apart(blob: bytes) -> tuple[dict, dict, bytes]:
    """``(tensor entries, sda header, data)`` of a valid sda file's bytes."""
    n = int.from_bytes(blob[:8], "little")
    entries = json.loads(blob[8:8 + n])
    return entries, json.loads(entries.pop("__metadata__")["sda"]), blob[8 + n:]


def put_together(entries: dict, header: dict | None = None, data: bytes = b"", metadata=None,
                 header_text: str | None = None) -> bytes:
    """A file of ``entries`` (name: dtype, shape, data_offsets) and ``data``, with ``header`` in its
    metadata (or ``metadata`` as given); ``header_text``: the whole JSON header's text, as given."""
    if header_text is None:
        metadata = {"sda": json.dumps(header)} if metadata is None else metadata
        header_text = json.dumps({**entries, "__metadata__": metadata})
    raw = header_text.encode()
    return len(raw).to_bytes(8, "little") + raw + data
