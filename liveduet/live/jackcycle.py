"""The JACK process callback in C (``jackcycle.c``), built on first use, and its Python side.

The C callback never takes the GIL: it copies input events into a ring that a Python thread
drains, writes the output records Python put in each output port's ring at their frames, and
keeps each cycle's (start frame, ``CLOCK_MONOTONIC`` time, frames since the cycle start) for the
frame <-> ``time.perf_counter()`` map (``perf_counter`` is ``CLOCK_MONOTONIC`` on Linux).

It is compiled with the system C compiler (``$CC``, else ``cc``) against the libjack this
process loaded, into ``$XDG_CACHE_HOME/liveduet`` (``~/.cache/liveduet``) under a name hashed
from the source, the compiler and that libjack, so it is built once per change. Without a
compiler or libjack, :func:`load` says why and the caller keeps its Python callback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("jackcycle.c")
IN_BYTES = 10      # longest input event the ring holds (as in jackcycle.c)
NOW = 0x80         # length flag: send at the next cycle's start (as in jackcycle.c)
WRAP = 1 << 32
TAKE = 1024        # input records copied out per call


def cache_dir() -> Path:
    """Where built callbacks are kept (per user)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "liveduet"


def libjack_path() -> str | None:
    """The libjack file this process has mapped (JACK-Client's), else the system's by name."""
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            if "/libjack.so" in path and Path(path).exists():
                return path
    except OSError:
        pass
    return ctypes.util.find_library("jack")


def build() -> Path:
    """The built callback library (compiled now if not cached); raises OSError saying why not."""
    cc = os.environ.get("CC") or "cc"
    compiler = shutil.which(cc)
    if compiler is None:
        raise OSError(f"no C compiler ({cc!r} not found)")
    jack = libjack_path()
    if jack is None:
        raise OSError("libjack not found")
    link = jack if os.path.isabs(jack) else f"-l:{jack}"
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + compiler.encode() + link.encode()).hexdigest()[:16]
    out = cache_dir() / f"jackcycle-{digest}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        try:
            done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE),
                                   link], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as err:
            raise OSError(f"{cc!r} took over {err.timeout:.0f} s") from err
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise OSError(f"{cc!r} failed: {first}")
        os.replace(tmp, out)   # whole or absent: another process may build it meanwhile
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _declare(lib: Any) -> Any:
    vp, u32, u64, u8p = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    for name, res, args in (
            ("lc_size", ctypes.c_size_t, []), ("lc_max_in", u32, []), ("lc_max_out", u32, []),
            ("lc_install", ctypes.c_int, [vp, vp]),
            ("lc_add_in", ctypes.c_int, [vp, vp]), ("lc_add_out", ctypes.c_int, [vp, vp]),
            ("lc_put", ctypes.c_int, [vp, u32, u32, vp, u8p, u8p]),
            ("lc_take", u32, [vp, u32, vp, vp, vp, vp]),
            ("lc_cycles", u64, [vp, u32, vp, vp, vp]),
            ("lc_late", u64, [vp, u32]), ("lc_in_dropped", u64, [vp]),
            ("lc_in_oversize", u64, [vp]), ("lc_waits", ctypes.POINTER(u32), [vp])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def load() -> Any:
    """The C callback library; raises OSError saying why it cannot be had."""
    path = build()
    return _declare(ctypes.CDLL(str(path)))


def _signed(diff: int) -> int:
    return ((diff + (WRAP >> 1)) & (WRAP - 1)) - (WRAP >> 1)


class NativeCycle:
    """One client's C process callback: its state, ports, input ring and cycle record."""

    def __init__(self, lib: Any, client: int) -> None:
        self.lib = lib
        self.state = ctypes.create_string_buffer(lib.lc_size())   # outlives the client
        self._ptr = ctypes.addressof(self.state)
        if lib.lc_install(self._ptr, client) != 0:
            raise OSError("jack_set_process_callback refused the C callback")
        self._frames = (ctypes.c_uint32 * TAKE)()
        self._ports = (ctypes.c_uint8 * TAKE)()
        self._lens = (ctypes.c_uint8 * TAKE)()
        self._data = (ctypes.c_uint8 * (TAKE * IN_BYTES))()

    def add_in(self, port: int) -> None:
        """Read this input port (an address) from the next cycle on."""
        if self.lib.lc_add_in(self._ptr, port) < 0:
            raise ValueError(f"at most {self.lib.lc_max_in()} JACK MIDI inputs; "
                             "Fix: name fewer --input ports")

    def add_out(self, port: int) -> int:
        """Write this output port (an address) from the next cycle on; its index."""
        idx = int(self.lib.lc_add_out(self._ptr, port))
        if idx < 0:
            raise ValueError(f"at most {self.lib.lc_max_out()} JACK MIDI outputs")
        return idx

    def put(self, idx: int, frames: Sequence[int], lens: bytes, data: bytes) -> bool:
        """Hand records over to output ``idx`` (one writer at a time); False: ring full."""
        n = len(frames)
        return bool(self.lib.lc_put(self._ptr, idx, n, (ctypes.c_uint32 * n)(*frames),
                                    lens, data))

    def take(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """Input events waiting in the ring: (frame, port index, bytes)."""
        n = self.lib.lc_take(self._ptr, TAKE, self._frames, self._ports, self._lens, self._data)
        if not n:
            return []
        data = bytes(self._data)
        return [(self._frames[i], self._ports[i],
                 tuple(data[i * IN_BYTES:i * IN_BYTES + self._lens[i]])) for i in range(n)]

    def cycles(self, k: int) -> tuple[int, list[tuple[int, int, int]]]:
        """The cycle count and the last ``k`` cycles' (start frame, frames since start, ns)."""
        starts, since, ns = (ctypes.c_uint32 * k)(), (ctypes.c_uint32 * k)(), (ctypes.c_int64 * k)()
        n = int(self.lib.lc_cycles(self._ptr, k, starts, since, ns))
        got = min(n, k)
        return n, [(starts[i], since[i], ns[i]) for i in range(got)]

    def anchor(self, rate: float, k: int) -> tuple[int, float] | None:
        """(newest cycle's start frame, its ``perf_counter`` start by the median of the last
        ``k`` cycles' starts); None before the first cycle."""
        _n, got = self.cycles(k)
        if not got:
            return None
        newest = got[-1][0]
        begun = sorted(ns / 1e9 - since / rate - _signed(start - newest) / rate
                       for start, since, ns in got)
        return newest, begun[len(begun) // 2]

    def late(self, idx: int) -> int:
        """Scheduled messages of output ``idx`` written after their frame (at offset 0)."""
        return int(self.lib.lc_late(self._ptr, idx))

    def dropped(self) -> int:
        """Input events lost: the ring was full, or longer than the ring holds."""
        return int(self.lib.lc_in_dropped(self._ptr) + self.lib.lc_in_oversize(self._ptr))

    def waits(self, n: int) -> list[int]:
        """Frames since the cycle start at callback entry, of the first ``n`` kept slots."""
        return list(self.lib.lc_waits(self._ptr)[:n])


class NativeOut:
    """One output port's hand-off to the C callback (:class:`~liveduet.live.jackring.OutQueue`'s
    interface): writers share a lock, the callback never takes it; the C side keeps the
    ordering rules (a note-off sent now after a pending note-on of its key, CC 120/123 after
    the channel's)."""

    def __init__(self, cycle: NativeCycle, port: Any, address: int) -> None:
        self.port = port
        self.cycle = cycle
        self.idx = cycle.add_out(address)
        self.lock = threading.Lock()
        self.overflow = 0   # messages the full ring refused

    @property
    def late(self) -> int:
        """Scheduled messages whose frame had passed (sent at offset 0)."""
        return self.cycle.late(self.idx)

    def put(self, frames: Sequence[int | None], msgs: Sequence[Sequence[int]]) -> None:
        """Write records (frame None: now); a message longer than 3 bytes is refused."""
        lens, data, at = bytearray(), bytearray(), []
        for frame, msg in zip(frames, msgs, strict=True):
            if not 0 < len(msg) <= 3:
                raise ValueError(f"JACK MIDI out sends 1-3 byte messages, got {len(msg)} bytes; "
                                 "Fix: send channel or real-time messages only")
            at.append(0 if frame is None else frame & (WRAP - 1))
            lens.append(len(msg) | (NOW if frame is None else 0))
            data += bytes(msg).ljust(3, b"\0")
        if not at:
            return
        with self.lock:
            if not self.cycle.put(self.idx, at, bytes(lens), bytes(data)):
                self.overflow += len(msgs)
