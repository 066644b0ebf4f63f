"""MIDI ports over python-rtmidi: API choice, listing, virtual or named ports, clear errors.

By default liveduet opens two virtual ports, ``liveduet in`` and ``liveduet out`` (client name
``liveduet``); ``--in``/``--out`` pick existing ports by exact name or unique substring instead.
Input callbacks only stamp (``time.perf_counter``) and hand the raw bytes to a sink (the
runtime's queue). :meth:`PortSet.check` finds ports that vanished and reopens them when they
come back. Every rtmidi error is converted once into a :class:`~liveduet.errors.PortError` whose
message says what is missing and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import rtmidi

from liveduet.errors import PortError
from liveduet.jackwatch import JackWatch, NoteTrack

CLIENT = "liveduet"
VIRTUAL_IN = "liveduet in"
VIRTUAL_OUT = "liveduet out"
APIS: dict[str, int] = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "winmm": rtmidi.API_WINDOWS_MM,
}
API_NAMES = {v: k for k, v in APIS.items()}
JACKD_CMD = "'jackd -d alsa -p 64' with a sound card, 'jackd -d dummy -r 48000 -p 64' without"
LOOPMIDI = "https://www.tobias-erichsen.de/software/loopmidi.html"
PROBE_TIMEOUT = 3.0
FLUSH_S = 0.05
JACK_LOST = ("the JACK server stopped; liveduet cannot reach its ports (notes still sounding in "
             "the synth could not be released: send it All Notes Off). Fix: restart JACK "
             f"({JACKD_CMD}) and run liveduet again")

Sink = Callable[[float, tuple[int, ...], int], None]
"""Receives (perf_counter time, raw MIDI bytes, input index) from an input callback."""


# -- API choice -----------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C libraries (libjack, alsa-lib) that print to fd 2 while probing."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. a GUI launcher): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def probe(api: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a client can be created on ``api``, else why not (never hangs past timeout)."""
    if api not in rtmidi.get_compiled_api():
        return f"{API_NAMES.get(api, api)} is not compiled into this python-rtmidi"
    result: list[str | None] = []

    def attempt() -> None:
        try:
            rtmidi.MidiOut(api, name=f"{CLIENT}-probe").delete()
            result.append(None)
        except Exception as err:  # rtmidi raises SystemError/RtMidiError variants
            result.append(str(err) or type(err).__name__)

    with quiet_stderr():
        worker = threading.Thread(target=attempt, daemon=True, name="liveduet-probe")
        worker.start()
        worker.join(timeout)
    if not result:
        return f"{API_NAMES.get(api, api)} did not answer within {timeout:.0f} s"
    return result[0]


def auto_order(platform: str = sys.platform) -> list[int]:
    """The APIs ``--api auto`` tries, in order, on ``platform``."""
    if platform.startswith("linux"):
        return [APIS["alsa"], APIS["jack"]]
    if platform == "darwin":
        return [APIS["coremidi"], APIS["jack"]]
    if platform.startswith(("win", "cygwin")):
        return [APIS["winmm"]]
    return [APIS["jack"]]


def no_midi_help(platform: str = sys.platform, reasons: Sequence[str] = ()) -> str:
    """One message: which MIDI system is missing on ``platform`` and what to do."""
    why = f" ({'; '.join(reasons)})" if reasons else ""
    if platform.startswith("linux"):
        return (f"no MIDI system reachable: no ALSA sequencer and no JACK server{why}. Fix: "
                f"start JACK ({JACKD_CMD}) and run with --api jack, or load the ALSA sequencer "
                "(sudo modprobe snd-seq) and run with --api alsa")
    if platform == "darwin":
        return (f"CoreMIDI is not reachable{why}. Fix: open 'Audio MIDI Setup' once so the MIDI "
                "server starts, or start JACK and run with --api jack")
    if platform.startswith(("win", "cygwin")):
        return (f"Windows MIDI is not reachable{why}. Fix: install loopMIDI ({LOOPMIDI}), create "
                f"ports '{VIRTUAL_IN}' and '{VIRTUAL_OUT}', then run with --in '{VIRTUAL_IN}' "
                f"--out '{VIRTUAL_OUT}'")
    return f"no MIDI system reachable{why}. Fix: start JACK ({JACKD_CMD}) and use --api jack"


def choose_api(name: str = "auto", platform: str = sys.platform) -> int:
    """The rtmidi API for ``--api name``; raises PortError saying what is missing and the fix."""
    key = name.lower()
    if key != "auto" and key not in APIS:
        raise PortError(f"--api {name!r} is unknown; choose auto, {', '.join(APIS)}")
    if key == "auto":
        reasons = []
        for api in auto_order(platform):
            why = probe(api)
            if why is None:
                return api
            reasons.append(f"{API_NAMES[api]}: {why}")
        raise PortError(no_midi_help(platform, reasons))
    api = APIS[key]
    if api not in rtmidi.get_compiled_api():
        have = ", ".join(API_NAMES[a] for a in rtmidi.get_compiled_api() if a in API_NAMES)
        raise PortError(f"--api {key} is not compiled into this python-rtmidi; use auto or one "
                        f"of: {have}")
    why = probe(api)
    if why is None:
        return api
    if key == "jack":
        raise PortError(f"no JACK server reachable ({why}). Fix: start one ({JACKD_CMD}); "
                        "the server named by JACK_DEFAULT_SERVER is used if set")
    raise PortError(f"--api {key} cannot be used ({why}). Fix: " + no_midi_help(platform)
                    .split("Fix: ", 1)[-1])


# -- listing and matching -------------------------------------------------------------------
@dataclass(frozen=True)
class PortList:
    """Names of the ports an API offers: sources to read from, destinations to send to."""

    api: int
    inputs: list[str]
    outputs: list[str]


def list_ports(api: int) -> PortList:
    """Every input (source) and output (destination) port on ``api``."""
    try:
        with quiet_stderr():
            mi = rtmidi.MidiIn(api, name=f"{CLIENT}-list")
            mo = rtmidi.MidiOut(api, name=f"{CLIENT}-list")
    except Exception as err:  # rtmidi SystemError variants
        raise PortError(f"cannot list MIDI ports on {API_NAMES.get(api, api)} ({err}). Fix: "
                        + no_midi_help().split("Fix: ", 1)[-1]) from err
    try:
        return PortList(api, list(mi.get_ports()), list(mo.get_ports()))
    finally:
        mi.delete()
        mo.delete()


def match_port(available: Sequence[str], wanted: str, kind: str,
               exclude: Sequence[str] = ()) -> int:
    """Index of the port named ``wanted`` (exact, else unique case-insensitive substring)."""
    names = [(i, n) for i, n in enumerate(available) if not any(x in n for x in exclude)]
    for i, n in names:
        if n == wanted:
            return i
    hits = [(i, n) for i, n in names if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0][0]
    shown = ", ".join(repr(n) for _, n in names) or "none"
    flag = "--in" if kind == "input" else "--out"
    if hits:
        raise PortError(f"{flag} {wanted!r} matches several {kind} ports "
                        f"({', '.join(repr(n) for _, n in hits)}); give more of the name")
    raise PortError(f"no {kind} port matches {flag} {wanted!r}; {kind} ports: {shown}. Fix: "
                    f"pick one of those (see 'liveduet ports') or leave {flag} out for a "
                    "virtual port")


# -- open ports -----------------------------------------------------------------------------
class SystemLost(PortError):
    """The MIDI system itself went away (the JACK server stopped)."""


@dataclass
class _Port:
    """One opened rtmidi port: what was asked for and what it is now."""

    handle: rtmidi.MidiIn | rtmidi.MidiOut
    wanted: str | None            # None: our virtual port
    name: str
    alive: bool = True
    links: list[str] | None = None  # JACK connections last seen (virtual ports on JACK)


@dataclass
class PortSet:
    """The inputs and the output liveduet plays through; close() is safe to call twice."""

    api: int
    inputs: list[_Port] = field(default_factory=list)
    output: _Port | None = None
    sink: Sink | None = None
    watch: JackWatch | None = None
    track: NoteTrack = field(default_factory=NoteTrack)
    _send_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def input_names(self) -> list[str]:
        """Names of the opened inputs."""
        return [p.name for p in self.inputs]

    @property
    def output_name(self) -> str:
        """Name of the opened output."""
        return self.output.name if self.output else ""

    def send(self, msg: Sequence[int]) -> None:
        """Send raw MIDI bytes now (thread safe)."""
        out = self.output
        if out is not None:
            with self._send_lock:
                out.handle.send_message(msg)
                self.track.sent(msg)

    def close(self) -> None:
        """Close every port (after the last sends had time to leave); ports stay closed."""
        if self.output is not None:
            time.sleep(FLUSH_S)  # JACK sends from a ring buffer in its next cycles
        for port in [*self.inputs, *([self.output] if self.output else [])]:
            with contextlib.suppress(Exception):  # closing a dead client must not mask exit
                if isinstance(port.handle, rtmidi.MidiIn):
                    port.handle.cancel_callback()
                port.handle.close_port()
                port.handle.delete()
        self.inputs, self.output = [], None
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def check(self, named: bool = True) -> list[str]:
        """Reports on the ports; raises SystemLost when the JACK server has gone.

        Connections of our virtual ports are compared with the last call (a restored output
        connection gets note-offs for what it may have missed; cheap, call it often). With
        ``named``, named ports that vanished or came back (reopened) are looked for too (this
        lists every port: call it about once a second).
        """
        reports = self._check_links()
        if named and any(p is not None and p.wanted for p in [*self.inputs, self.output]):
            reports += self._check_named()
        return reports

    def _check_links(self) -> list[str]:
        watch = self.watch
        if watch is None:
            return []
        if watch.lost:
            raise SystemLost(JACK_LOST)
        reports = []
        for port in [*self.inputs, *([self.output] if self.output else [])]:
            if port.wanted is None:
                reports += self._links_of(watch, port)
        return reports

    def _links_of(self, watch: JackWatch, port: _Port) -> list[str]:
        now = watch.connections(port.name)
        if now is None:
            return []
        before, port.links = port.links or [], now
        gone = [n for n in before if n not in now]
        gained = [n for n in now if n not in before]
        reports = [f"{port.name!r} disconnected from {n!r}" for n in gone]
        reports += [f"{port.name!r} connected to {n!r}" for n in gained]
        if port is not self.output:
            return reports
        if gone and not now:
            reports.append(f"{port.name!r} has no connection; liveduet plays on and closes "
                           "the notes a receiver missed when one is connected again")
        with self._send_lock:
            if gone:
                self.track.receiver_lost()
            self.track.checkpoint()
        if gained and (n := self._repair()):
            reports.append(f"sent {n} note-off(s) for notes a receiver missed while unplugged")
        return reports

    def _repair(self) -> int:
        """Send note-offs for every note a (re)connected receiver may still hold."""
        out = self.output
        if out is None:
            return 0
        with self._send_lock:
            offs = self.track.repair()
            for msg in offs:
                with contextlib.suppress(Exception):  # the port may be gone again
                    out.handle.send_message(list(msg))
        return len(offs)

    def _check_named(self) -> list[str]:
        try:
            now = list_ports(self.api)
        except PortError as err:
            return [f"MIDI system unreachable: {err}"]
        reports = []
        for idx, port in enumerate(self.inputs):
            if port.wanted:
                reports += self._recheck(port, now.inputs, "input", idx)
        if self.output is not None and self.output.wanted:
            reports += self._recheck(self.output, now.outputs, "output", -1)
        return reports

    def _recheck(self, port: _Port, names: list[str], kind: str, idx: int) -> list[str]:
        present = port.name in names
        is_out = port is self.output
        if port.alive and not present:
            port.alive = False
            if is_out:
                with self._send_lock:
                    self.track.receiver_lost()
            return [f"{kind} port {port.name!r} vanished; waiting for it to come back"]
        if port.alive or not present:
            if is_out and port.alive:
                with self._send_lock:
                    self.track.checkpoint()
            return []
        with self._send_lock:
            with contextlib.suppress(Exception):  # the old connection may be gone already
                port.handle.close_port()
            port.handle.open_port(names.index(port.name), name=_local_name(kind))
        if isinstance(port.handle, rtmidi.MidiIn):
            self._listen(port.handle, idx)
        port.alive = True
        reports = [f"{kind} port {port.name!r} is back; reopened"]
        if is_out and (n := self._repair()):
            reports.append(f"sent {n} note-off(s) for notes the receiver missed")
        return reports

    def _listen(self, handle: rtmidi.MidiIn, idx: int) -> None:
        sink = self.sink
        perf = time.perf_counter

        def callback(event: tuple[list[int], float], _data: object = None) -> None:
            if sink is not None:
                sink(perf(), tuple(event[0]), idx)

        handle.ignore_types(sysex=True, timing=False, active_sense=True)
        handle.set_callback(callback)


def _local_name(kind: str) -> str:
    return VIRTUAL_IN if kind == "input" else VIRTUAL_OUT


def open_ports(api: int, inputs: Sequence[str] = (), output: str | None = None,
               sink: Sink | None = None) -> PortSet:
    """Open named inputs (or one virtual input) and a named (or virtual) output."""
    if api == APIS["winmm"] and (not inputs or output is None):
        inputs = inputs or [VIRTUAL_IN]
        output = output or VIRTUAL_OUT  # loopMIDI ports named like ours
    ports = PortSet(api, sink=sink)
    try:
        ports.output = _open_output(api, output, [VIRTUAL_IN] if not inputs else [])
        exclude = [VIRTUAL_OUT] if output is None else []
        for idx, wanted in enumerate(inputs or [None]):
            handle, name = _open_input(api, wanted, exclude, ports, idx)
            ports.inputs.append(_Port(handle, wanted, name))
    except BaseException:
        ports.close()
        raise
    if api == APIS["jack"]:
        ports.watch = JackWatch.open()
        ports.check()  # first look at the connections
    return ports


def _open_output(api: int, wanted: str | None, exclude: Sequence[str]) -> _Port:
    try:
        handle = rtmidi.MidiOut(api, name=CLIENT)
        if wanted is None:
            handle.open_virtual_port(VIRTUAL_OUT)
            return _Port(handle, None, _own_name(api, VIRTUAL_OUT, "output"))
    except Exception as err:  # rtmidi SystemError variants
        raise PortError(_open_failed("output", wanted, api, err)) from err
    names = list(handle.get_ports())
    try:
        idx = match_port(names, wanted, "output", exclude)
        handle.open_port(idx, name=VIRTUAL_OUT)
    except BaseException:
        handle.delete()
        raise
    return _Port(handle, wanted, names[idx])


def _open_input(api: int, wanted: str | None, exclude: Sequence[str], ports: PortSet,
                idx: int) -> tuple[rtmidi.MidiIn, str]:
    try:
        handle = rtmidi.MidiIn(api, name=CLIENT, queue_size_limit=4096)
        ports._listen(handle, idx)  # before opening: the first message must not be missed
        if wanted is None:
            handle.open_virtual_port(VIRTUAL_IN)
            return handle, _own_name(api, VIRTUAL_IN, "input")
    except Exception as err:  # rtmidi SystemError variants
        raise PortError(_open_failed("input", wanted, api, err)) from err
    names = list(handle.get_ports())
    try:
        idx = match_port(names, wanted, "input", exclude)
        handle.open_port(idx, name=VIRTUAL_IN)
    except BaseException:
        handle.delete()
        raise
    return handle, names[idx]


def _own_name(api: int, port: str, kind: str) -> str:
    """The system-wide name of our virtual ``port`` (JACK may suffix the client, e.g. -01)."""
    if api not in (APIS["jack"], APIS["alsa"]):
        return port
    with contextlib.suppress(PortError):
        listed = list_ports(api)
        names = listed.outputs if kind == "input" else listed.inputs
        mine = [n for n in names if n.startswith(CLIENT) and port in n]
        if len(mine) == 1:
            return mine[0]
    return f"{CLIENT}:{port}"


def _open_failed(kind: str, wanted: str | None, api: int, err: Exception) -> str:
    what = f"port {wanted!r}" if wanted else f"virtual {kind} port"
    if api == APIS["winmm"] and wanted is None:
        return (f"Windows cannot create virtual MIDI ports. Fix: install loopMIDI ({LOOPMIDI}), "
                f"create '{VIRTUAL_IN}' and '{VIRTUAL_OUT}' and pass --in/--out")
    return (f"cannot open the {kind} {what} on {API_NAMES.get(api, api)} ({err}). Fix: "
            + no_midi_help().split("Fix: ", 1)[-1])


def describe(ports: PortList) -> str:
    """The text of ``liveduet ports``."""
    lines = [f"MIDI API: {API_NAMES.get(ports.api, ports.api)}", "inputs (use with --in):"]
    lines += [f"  {n}" for n in ports.inputs] or ["  (none)"]
    lines += ["outputs (use with --out):"]
    lines += [f"  {n}" for n in ports.outputs] or ["  (none)"]
    return "\n".join(lines)
