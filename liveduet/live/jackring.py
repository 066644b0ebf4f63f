"""The Python process callback's side of JACK-native MIDI, used where the C one
(:mod:`liveduet.live.jackcycle`) cannot be built.

The hand-over between liveduet's threads and JACK's process callback: fixed-size records
(due frame, length, up to 3 bytes) in a preallocated lock-free ``jack.RingBuffer`` per output
port, drained in frame order each cycle, and the libjack MIDI calls the callback makes through
``ctypes.PyDLL`` (it keeps the GIL across them instead of giving it up on each cffi call).

Writers share a lock; the process callback never takes it. A note-off sent "now" is placed after
a note-on of the same key already handed over ahead (CC 120/123: after any of the channel), so
stop, panic and exit never leave a note hanging.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import struct
import threading
from collections.abc import Sequence
from typing import Any

RECORD = struct.Struct("<IB3s")    # due frame, length (NOW: send at offset 0), up to 3 bytes
NOW = 0x80                         # length flag: no due frame, the next cycle's start
RING_RECORDS = 8192                # ~1.5 s of a dense 1000-event/s flood per output port
WRAP = 1 << 32                     # JACK frame times are unsigned 32-bit


class CycleEvent(ctypes.Structure):
    _fields_ = [("time", ctypes.c_uint32), ("size", ctypes.c_size_t),
                ("buffer", ctypes.c_void_p)]


def cycle_lib() -> Any:
    """libjack for the process callback, through ``ctypes.PyDLL``: its calls keep the GIL.
    JACK-Client's cffi calls give it up and take it back, each one (a port's buffer, the
    block size, an event: a dozen a cycle), and every take could wait a switch interval for
    a busy thread; these calls are short and never block, so the callback takes the GIL
    once, when it starts."""
    lib = ctypes.PyDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    vp, u32 = ctypes.c_void_p, ctypes.c_uint32
    for name, res, args in (
            ("jack_frames_since_cycle_start", u32, [vp]),
            ("jack_last_frame_time", u32, [vp]),
            ("jack_port_get_buffer", vp, [vp, u32]),
            ("jack_midi_get_event_count", u32, [vp]),
            ("jack_midi_event_get", ctypes.c_int, [ctypes.POINTER(CycleEvent), vp, u32]),
            ("jack_midi_clear_buffer", None, [vp]),
            ("jack_midi_event_write", ctypes.c_int, [vp, u32, ctypes.c_char_p, ctypes.c_size_t]),
            ("jack_ringbuffer_read_space", ctypes.c_size_t, [vp]),
            ("jack_ringbuffer_read", ctypes.c_size_t, [vp, vp, ctypes.c_size_t])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def address(ffi: Any, ptr: Any) -> int:
    """A cffi pointer of JACK-Client (its client, a port, a ring buffer) as an address."""
    return int(ffi.cast("uintptr_t", ptr))


def _signed(diff: int) -> int:
    """A difference of two wrapping 32-bit frame times as a signed number of frames."""
    return ((diff + (WRAP >> 1)) & (WRAP - 1)) - (WRAP >> 1)


def _ends(msg: bytes) -> bool:
    """A note-off, or All Notes Off / All Sound Off."""
    if len(msg) < 3:
        return False
    kind = msg[0] & 0xF0
    return kind == 0x80 or (kind == 0x90 and msg[2] == 0) or (kind == 0xB0 and msg[1] in (120, 123))


def _after(pending: list[tuple[int, int, bytes]], end: bytes, start: int) -> int:
    """The frame for ``end``, sent now: the cycle's start, or the latest pending note-on it
    ends (handed over ahead, it would otherwise sound after the note-off meant to end it: a
    stop, a panic, the exit), so the note-off follows it there."""
    every = end[0] & 0xF0 == 0xB0
    frames = [p[0] for p in pending
              if len(p[2]) == 3 and p[2][0] & 0xF0 == 0x90 and p[2][2] > 0
              and p[2][0] & 0x0F == end[0] & 0x0F and (every or p[2][1] == end[1])]
    return max(frames, key=lambda f: _signed(f - start)) if frames else start


class OutQueue:
    """One output port's hand-off: a lock-free ring (writers serialised by a lock, never the
    reader) and the messages the process callback holds until their cycle."""

    def __init__(self, jack: Any, port: Any, lib: Any) -> None:
        self.port = port
        self.ring = jack.RingBuffer(RING_RECORDS * RECORD.size)
        with contextlib.suppress(Exception):  # mlock may be refused (no memlock limit)
            self.ring.mlock()
        self._lib = lib   # cycle_lib(): the process callback's calls keep the GIL
        self._port = address(jack._ffi, port._ptr)
        self._ring = address(jack._ffi, self.ring._ptr)
        self._scratch = ctypes.create_string_buffer(RING_RECORDS * RECORD.size)
        self._view = memoryview(self._scratch).cast("B")
        self.lock = threading.Lock()
        self.pending: list[tuple[int, int, bytes]] = []   # (frame, order, bytes) not yet due
        self.order = 0
        self.late = 0       # scheduled messages whose frame had passed (sent at offset 0)
        self.overflow = 0   # messages the full ring refused (counted by the writer)

    def put(self, frames: Sequence[int | None], msgs: Sequence[Sequence[int]]) -> None:
        """Write records (frame None: now); a message longer than 3 bytes is refused."""
        data = bytearray()
        for frame, msg in zip(frames, msgs, strict=True):
            if not 0 < len(msg) <= 3:
                raise ValueError(f"JACK MIDI out sends 1-3 byte messages, got {len(msg)} bytes; "
                                 "Fix: send channel or real-time messages only")
            data += RECORD.pack(0 if frame is None else frame & (WRAP - 1),
                                len(msg) | (NOW if frame is None else 0), bytes(msg))
        with self.lock:
            if self.ring.write_space < len(data):
                self.overflow += len(msgs)
                return
            self.ring.write(data)

    def process(self, start: int, frames: int) -> None:
        """Write the messages due in the cycle [start, start + frames) at their offsets."""
        lib = self._lib
        buf = lib.jack_port_get_buffer(self._port, frames)
        lib.jack_midi_clear_buffer(buf)
        pending = self.pending
        space = lib.jack_ringbuffer_read_space(self._ring)
        if space >= RECORD.size:
            got = lib.jack_ringbuffer_read(self._ring, self._scratch,
                                           space - space % RECORD.size)
            for frame, n, body in RECORD.iter_unpack(self._view[:got]):
                self.order += 1
                msg = body[:n & 0x7F]
                if n & NOW:   # after any note-on it ends that was handed over ahead
                    frame = _after(pending, msg, start) if pending and _ends(msg) else start
                pending.append((frame, self.order, msg))
        if not pending:
            return
        due = [p for p in pending if _signed(p[0] - start) < frames]
        if not due:
            return
        self.pending = [p for p in pending if _signed(p[0] - start) >= frames]
        due.sort(key=lambda p: (_signed(p[0] - start), p[1]))
        last, write = 0, lib.jack_midi_event_write
        for frame, _order, body in due:
            off = _signed(frame - start)
            if off < 0:
                self.late += 1
                off = 0
            last = max(off, last)   # JACK wants event times in order
            write(buf, last, body, len(body))
