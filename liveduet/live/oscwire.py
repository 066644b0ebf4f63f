"""A strict shape check for OSC 1.0 datagrams, run before python-osc parses them.

python-osc is lenient on purpose (it zero-pads a float cut short, and reads a bundle element
whose size runs past the datagram), so a truncated packet could become a valid-looking
``/liveduet/density 0.0``. This check refuses anything whose sizes do not add up exactly.
"""

from __future__ import annotations

import struct

_FIXED = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "h": 8, "t": 8, "d": 8}
_EMPTY = set("TFNI[]")
_BUNDLE = b"#bundle\x00"
MAX_DEPTH = 8


def well_formed(data: bytes, depth: int = 0) -> bool:
    """True when ``data`` is exactly one OSC message or bundle with every size consistent."""
    if len(data) % 4 or not data or depth > MAX_DEPTH:
        return False
    if data.startswith(_BUNDLE):
        return _bundle(data, depth)
    if data[:1] != b"/":
        return False
    end = _string_end(data, 0)
    if end is None:
        return False
    if end == len(data):  # no type tag string: allowed by OSC 1.0, no arguments
        return True
    return _arguments(data, end) == len(data)


def _bundle(data: bytes, depth: int) -> bool:
    index = len(_BUNDLE) + 8  # header + time tag
    if len(data) < index:
        return False
    while index < len(data):
        if index + 4 > len(data):
            return False
        (size,) = struct.unpack_from(">i", data, index)
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            return False
        if not well_formed(data[index:index + size], depth + 1):
            return False
        index += size
    return True


def _string_end(data: bytes, start: int) -> int | None:
    """Index after the NUL-terminated, 4-byte padded string at ``start`` (None if cut)."""
    nul = data.find(b"\x00", start)
    if nul < 0:
        return None
    end = (nul + 4) & ~3
    return end if end <= len(data) else None


def _arguments(data: bytes, tag_start: int) -> int | None:
    """Index after the type tag string and every argument it promises (None if cut short)."""
    tag_end = _string_end(data, tag_start)
    if tag_end is None or data[tag_start:tag_start + 1] != b",":
        return None
    try:
        tags = data[tag_start + 1:data.index(b"\x00", tag_start)].decode("ascii")
    except UnicodeDecodeError:
        return None
    index: int | None = tag_end
    for tag in tags:
        if index is None or index > len(data):
            return None
        if tag in _FIXED:
            index += _FIXED[tag]
        elif tag in "sS":
            index = _string_end(data, index)
        elif tag == "b":
            if index + 4 > len(data):
                return None
            (size,) = struct.unpack_from(">i", data, index)
            index = index + 4 + ((size + 3) & ~3) if size >= 0 else None
        elif tag not in _EMPTY:
            return None
    return index
