"""The MIDI system under liveduet: API choice, probing, listing and matching port names.

``choose_api`` picks the rtmidi API for ``--api`` (``auto`` tries the platform's systems in
order, never hanging on one), and every failure becomes one :class:`~liveduet.errors.PortError`
saying what is missing and what to do (start JACK, load the ALSA sequencer, install loopMIDI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import rtmidi

from liveduet.errors import PortError

log = logging.getLogger("liveduet.live.ports")
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
JACK_LOST = ("the JACK server stopped; liveduet cannot reach its ports (notes still sounding in "
             "the synth could not be released: send it All Notes Off). Fix: restart JACK "
             f"({JACKD_CMD}) and run liveduet again")


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


@contextlib.contextmanager
def python_stderr_only() -> Iterator[None]:
    """Keep C libraries' messages (libjack's 'cannot read server event', ALSA's) off the
    terminal for the whole run: fd 2 goes to /dev/null, Python's ``sys.stderr`` (and so every
    line liveduet prints or logs) to a copy of the real stderr. Does nothing when ``sys.stderr``
    is not fd 2 (a test capturing it)."""
    try:
        real = sys.stderr.fileno() == 2
        saved = os.dup(2) if real else -1
    except (OSError, ValueError, AttributeError):  # no fd 2, or a capture object
        real = False
    if not real:
        yield
        return
    old = sys.stderr
    stream = os.fdopen(saved, "w", buffering=1, encoding=old.encoding or "utf-8",
                       errors="backslashreplace")
    old.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = stream
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        os.dup2(saved, 2)
        sys.stderr = old
        with contextlib.suppress(OSError):
            stream.close()


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


DEMO_HINT = "; to hear liveduet without any MIDI setup meanwhile: liveduet demo"


def no_midi_help(platform: str = sys.platform, reasons: Sequence[str] = ()) -> str:
    """One message: which MIDI system is missing on ``platform``, what to do, and the demo."""
    return _no_midi(platform, reasons) + DEMO_HINT


def _no_midi(platform: str, reasons: Sequence[str]) -> str:
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
                        "the server named by JACK_DEFAULT_SERVER is used if set" + DEMO_HINT)
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


def describe(ports: PortList) -> str:
    """The text of ``liveduet ports``."""
    lines = [f"MIDI API: {API_NAMES.get(ports.api, ports.api)}", "inputs (use with --in):"]
    lines += [f"  {n}" for n in ports.inputs] or ["  (none)"]
    lines += ["outputs (use with --out):"]
    lines += [f"  {n}" for n in ports.outputs] or ["  (none)"]
    return "\n".join(lines)


def jack_native(backend: str) -> Any:
    """:mod:`liveduet.live.jackmidi` when JACK-Client imports; for ``auto`` None with a notice."""
    from liveduet.errors import ConfigError
    try:
        from liveduet.live import jackmidi, jacktransport
        jacktransport.load_jack()
    except ConfigError as err:
        if backend == "jack":
            raise PortError(str(err).replace("--clock jack", "--midi-backend jack")) from err
        from liveduet.live.jackmidi import MISSING
        log.warning("%s", MISSING)
        return None
    return jackmidi
