"""Validity of one MIDI message as delivered by a port callback (raw byte tuple).

Ports normally deliver whole, valid messages, but a faulty cable, driver or plug-in can deliver
anything; everything liveduet passes on or acts upon goes through :func:`is_valid` first.
"""

from __future__ import annotations

from collections.abc import Sequence

CHANNEL_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
SYSTEM_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0,
               0xFE: 0, 0xFF: 0}


def is_valid(msg: Sequence[int]) -> bool:
    """True for one complete MIDI message: a status byte, then the right number of data bytes."""
    if not msg:
        return False
    status = msg[0]
    if not isinstance(status, int) or not 0x80 <= status <= 0xFF:
        return False
    if status == 0xF0:
        return len(msg) >= 2 and msg[-1] == 0xF7 and all(0 <= b < 0x80 for b in msg[1:-1])
    want = CHANNEL_DATA.get(status & 0xF0) if status < 0xF0 else SYSTEM_DATA.get(status)
    return want is not None and len(msg) == want + 1 and all(0 <= b < 0x80 for b in msg[1:])
