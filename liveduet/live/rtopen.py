"""Opening python-rtmidi ports: our virtual ports (and their system-wide names), existing ports
by name, and a lone extra output; every failure is one line naming the fix."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import rtmidi

from liveduet.errors import PortError
from liveduet.live.midisys import (
    API_NAMES,
    APIS,
    CLIENT,
    LOOPMIDI,
    VIRTUAL_IN,
    VIRTUAL_OUT,
    list_ports,
    match_port,
    no_midi_help,
)

if TYPE_CHECKING:
    from liveduet.live.ports import PortSet

FLUSH_S = 0.05


def let_sends_leave(watch: Any, cycles: int) -> None:
    """Wait until JACK has begun ``cycles`` more cycles, which send what was written last (a
    loaded server runs them late; ``watch`` answers ``wait_cycles``); without a watch or when
    the server runs none, a short pause."""
    if watch is None or not watch.wait_cycles(cycles):
        time.sleep(FLUSH_S)


@dataclass
class OpenPort:
    """One opened rtmidi port: what was asked for and what it is now."""

    handle: rtmidi.MidiIn | rtmidi.MidiOut
    wanted: str | None            # None: our virtual port
    name: str
    alive: bool = True
    links: list[str] | None = None  # JACK connections last seen (virtual ports on JACK)



@dataclass
class Output:
    """One more output port (e.g. for MIDI clock out), sent to from one thread."""

    port: OpenPort

    @property
    def name(self) -> str:
        """The port's system-wide name."""
        return self.port.name

    def send_many(self, msgs: Sequence[Sequence[int]]) -> None:
        """Send messages now, back to back."""
        send = self.port.handle.send_message
        for msg in msgs:
            send(list(msg))

    def close(self) -> None:
        """Close the port after the last sends had time to leave."""
        time.sleep(FLUSH_S)
        with contextlib.suppress(Exception):  # closing a dead client must not mask exit
            self.port.handle.delete()


def open_output(api: int, wanted: str) -> Output:
    """Open the existing output port matching ``wanted`` (PortError naming the fix if not)."""
    return Output(open_output_port(api, wanted, [], set()))


def open_output_port(api: int, wanted: str | None, exclude: Sequence[str],
                 before: set[str]) -> OpenPort:
    try:
        handle = rtmidi.MidiOut(api, name=CLIENT)
        if wanted is None:
            handle.open_virtual_port(VIRTUAL_OUT)
            return OpenPort(handle, None, _own_name(api, VIRTUAL_OUT, "output", before))
    except Exception as err:  # rtmidi SystemError variants
        raise PortError(_open_failed("output", wanted, api, err)) from err
    return OpenPort(handle, wanted, _open_named(handle, wanted, "output", exclude, VIRTUAL_OUT))


def open_input_port(api: int, wanted: str | None, exclude: Sequence[str], ports: PortSet,
                idx: int, before: set[str]) -> tuple[rtmidi.MidiIn, str]:
    try:
        handle = rtmidi.MidiIn(api, name=CLIENT, queue_size_limit=4096)
        ports._listen(handle, idx)  # before opening: the first message must not be missed
        if wanted is None:
            handle.open_virtual_port(VIRTUAL_IN)
            return handle, _own_name(api, VIRTUAL_IN, "input", before)
    except Exception as err:  # rtmidi SystemError variants
        raise PortError(_open_failed("input", wanted, api, err)) from err
    return handle, _open_named(handle, wanted, "input", exclude, VIRTUAL_IN)


def _open_named(handle: rtmidi.MidiIn | rtmidi.MidiOut, wanted: str, kind: str,
                exclude: Sequence[str], port_name: str) -> str:
    """Open the existing port matching ``wanted`` and return its name; free ``handle`` on error."""
    names = list(handle.get_ports())
    try:
        idx = match_port(names, wanted, kind, exclude)
        handle.open_port(idx, name=port_name)
    except BaseException:
        handle.delete()
        raise
    return names[idx]


def all_names(api: int) -> set[str]:
    """Every port name on ``api`` now (to tell our new virtual ports from another instance's)."""
    if api not in (APIS["jack"], APIS["alsa"]):
        return set()
    with contextlib.suppress(PortError):
        listed = list_ports(api)
        return set(listed.inputs) | set(listed.outputs)
    return set()


def _own_name(api: int, port: str, kind: str, before: set[str]) -> str:
    """The system-wide name of our virtual ``port``: JACK numbers clients of the same name
    (``liveduet-01``, ``-02``...), so it is the matching port that was not there before we
    opened it."""
    if api not in (APIS["jack"], APIS["alsa"]):
        return port
    with contextlib.suppress(PortError):
        listed = list_ports(api)
        names = listed.outputs if kind == "input" else listed.inputs
        mine = [n for n in names if n.startswith(CLIENT) and port in n and n not in before]
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
