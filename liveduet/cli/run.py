"""``liveduet run`` (play live through MIDI ports) and ``liveduet ports`` (list them).

Settings come from the defaults, then ``--config FILE.toml`` (the Settings names, the run
options below with underscores, and a ``[cc]`` table), then the command line. Bad values, bad
port names and a missing MIDI system exit with status 2 and one line naming problem and fix.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from pathlib import Path
from typing import Any

from liveduet.cli import learnstore
from liveduet.cli.model import load_model
from liveduet.cli.options import OldName, listen_gap_steps, setting_help
from liveduet.cli.playing import play, write_stats
from liveduet.cli.runconfig import resolve
from liveduet.cli.status import OCTAVE_NAMES
from liveduet.core import catalog
from liveduet.core.clock import InternalClock, MidiClockFollower
from liveduet.core.clockout import ClockOutput
from liveduet.core.conductor import Options
from liveduet.core.settings import (
    FIELDS,
    Settings,
)
from liveduet.errors import ConfigError, LiveduetError
from liveduet.live import midisys, ports, signals
from liveduet.live.jacktransport import JackTransportClock
from liveduet.live.link import LinkClock
from liveduet.live.rtthread import Tuning
from liveduet.live.runtime import Runtime
from liveduet.live.workers import Workers

log = logging.getLogger("liveduet.run")
CLOCKS = ("internal", "midi", "link", "jack")
DEFAULT_OSC_PORT = 8000
STATS_SAMPLES = 20_000   # per kind with --stats: the latest (a ring; memory stays flat)
# A candidate search stops this many grid steps before its phrase is due (what is left of
# the step plans and sends it); the best phrase so far plays.
SEARCH_MARGIN = 0.25
SHORT = {"top_p": "top-p", "listen_gap": "listen-gap", "channel": "out-channel"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``run`` and ``ports``."""
    p = sub.add_parser("run", help="play live: listen on a MIDI input, answer on an output",
                       description="Play live through MIDI ports. Without --in/--out it opens "
                       "virtual ports 'liveduet in' and 'liveduet out'.")
    p.add_argument("--model", help="bundled model name or .onnx path (default: the bundled "
                   "melody model; the harmoniser in harmonize mode)")
    p.add_argument("--config", type=Path, help="TOML file with settings and run options")
    p.add_argument("--clock", choices=CLOCKS, help="internal tempo, the DAW's MIDI clock, an "
                   "Ableton Link session (needs liveduet[link]) or the JACK transport (needs "
                   "liveduet[jack]); default internal")
    p.add_argument("--clock-out", nargs="?", const="", metavar="PORT", help="send MIDI clock "
                   "(24 ppqn, Start/Stop/Continue/Song Position) of liveduet's transport on the "
                   "output port, or on PORT (name or unique substring)")
    p.add_argument("--in", dest="inputs", action="append", metavar="PORT",
                   help="input port by name or unique substring (repeat for several)")
    p.add_argument("--out", dest="output", metavar="PORT", help="output port name/substring")
    p.add_argument("--api", choices=("auto", *ports.APIS), help=API_HELP)
    p.add_argument("--midi-backend", choices=ports.BACKENDS, help="on JACK: 'jack' (needs "
                   "liveduet[jack]) puts every port on one client, stamps input with its frame "
                   "and places grid notes at their frame, but loses more input under a flood; "
                   "'rtmidi' (default) uses python-rtmidi; 'auto' is 'jack' when JACK-Client is "
                   "installed")
    p.add_argument("--in-channel", type=int, metavar="CH", help="only listen to MIDI channel CH "
                   "(1-16; default: every channel); CCs the CC map uses pass on any channel")
    p.add_argument("--octave-names", choices=OCTAVE_NAMES, help="middle C (MIDI 60) shows as "
                   "C4 (default) or C3 (Ableton Live, Cubase)")
    p.add_argument("--models-dir", action="append", metavar="DIR", help="look for models named "
                   f"by --model or OSC /liveduet/model in DIR first (repeat), then in "
                   f"{catalog.user_models_dir()}, then the bundled ones")
    p.add_argument("--latency-offset", type=float, metavar="MS",
                   help="shift grid-timed output by MS milliseconds (negative = earlier)")
    p.add_argument("--metronome", type=int, metavar="CH", help="click notes on MIDI channel CH")
    p.add_argument("--quiet", action="store_true", default=None, help="no status line")
    p.add_argument("--stats", metavar="FILE", help="write timing stats JSON at exit")
    p.add_argument("--no-osc", dest="osc", action="store_false", default=None,
                   help="do not start the OSC control server")
    p.add_argument("--osc-port", type=int, help="OSC listen port (default 8000; 0 = any free)")
    p.add_argument("--osc-host", help="OSC bind address (default 127.0.0.1; 0.0.0.0 for LAN)")
    p.add_argument("--osc-reply-port", type=int, help="port on the client for feedback (9000)")
    p.add_argument("--osc-allow", action="append", metavar="HOST", help="only accept OSC "
                   "from HOST (repeat)")
    p.add_argument("--no-announce", dest="osc_announce", action="store_false", default=None,
                   help="do not advertise the OSC server on the network (zeroconf _osc._udp, "
                   "done when --osc-host is not a loopback address and zeroconf is installed)")
    p.add_argument("--input-poll", type=float, metavar="MS", help="read MIDI input by polling "
                   "rtmidi's queue every MS ms when idle (default 0.5: the JACK thread never "
                   "waits for Python, so dense input loses less; adds up to MS of input "
                   "latency); 0 = a callback on the MIDI thread instead")
    p.add_argument("--realtime", action="store_true", default=None, help="ask for real-time "
                   "(SCHED_FIFO) priority for the conductor: tighter send times; needs an rtprio "
                   "limit (Linux 'audio' group) and a real-time JACK server (jackd -R)")
    p.add_argument("--no-cc", dest="cc", action="store_false", default=None,
                   help="do not map incoming MIDI CC to controls")
    p.add_argument("--cc-channel", type=int, help="channel of the default CC map (1-16)")
    for f in FIELDS:
        flag = "--" + SHORT.get(f.name, f.name.replace("_", "-"))
        if f.kind == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=None, help=f.help)
        else:
            p.add_argument(flag, dest=f.name, metavar=f.name.upper(), help=setting_help(f))
    p.add_argument("--channel", dest="channel", metavar="CHANNEL", action=OldName,
                   new="--out-channel")
    p.set_defaults(func=run_command)
    q = sub.add_parser("ports", help="list the MIDI ports liveduet can use",
                       description="List the MIDI input and output ports of a MIDI system.")
    q.add_argument("--api", default="auto", choices=("auto", *ports.APIS), help=API_HELP)
    q.set_defaults(func=ports_command)


API_HELP = ("MIDI system: auto (default: ALSA, then JACK on Linux; CoreMIDI on macOS; Windows "
            "MIDI), or one of " + ", ".join(ports.APIS))


def ports_command(args: argparse.Namespace) -> int:
    """``liveduet ports``."""
    print(ports.describe(ports.list_ports(ports.choose_api(args.api))))
    return 0


# -- the run --------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    """``liveduet run``: build everything, play until a stop signal, release every note.

    A stop signal while starting ends the run at the next phase boundary (see
    :mod:`liveduet.live.signals`); C libraries' own messages stay off the terminal unless
    ``--debug``.
    """
    with contextlib.ExitStack() as outer:
        if not getattr(args, "debug", False):
            outer.enter_context(midisys.python_stderr_only())
        _log_to_stderr()
        try:
            return _run(args)
        except LiveduetError:
            if signals.STOP.is_set():  # e.g. a port set-up cut short by the signal itself
                return 0
            raise


def _run(args: argparse.Namespace) -> int:
    settings, opts, cc = resolve(args)
    dirs = list(opts["models_dir"] or ())
    signals.check()
    model = load_model(opts["model"], settings.mode, dirs)
    signals.check()
    if "listen_gap_text" in opts:
        settings = settings.with_value("listen_gap", listen_gap_steps(
            opts["listen_gap_text"], int(model.codec.steps_per_beat), settings.meter))
    if cc is None and args.config is None and opts["cc"]:
        cc = learnstore.load_user_cc()
    opts["config_path"] = args.config
    from liveduet.core.engine import Engine

    spb = int(model.codec.steps_per_beat)
    api = ports.choose_api(opts["api"])
    signals.check()
    workers = Workers()
    engine = Engine(model, settings, table_source=workers.tables,
                    search_margin=SEARCH_MARGIN, search_worker=workers.search)
    native = api == ports.APIS["jack"] and opts["midi_backend"] != "rtmidi" and \
        midisys.jack_native(opts["midi_backend"]) is not None
    clock = make_clock(opts["clock"], settings, spb, engine, native)
    engine.clock_bpm = lambda: clock.bpm  # a search's deadline follows the clock's tempo
    holder: list[ports.PortSet] = []
    tick_port = (ports.open_output(api, opts["clock_out"]) if opts["clock_out"] and not native
                 else None)
    clock_out = None
    if opts["clock_out"] is not None:
        clock_out = ClockOutput(clock, tick_port.send_many if tick_port is not None
                                else lambda msgs: holder[0].send_clock(msgs), spb,
                                keep=STATS_SAMPLES if opts["stats"] else 2000)
    rt = Runtime(engine, clock, lambda msg: holder[0].send(msg),
                 Options(latency_offset=float(opts["latency_offset"]) / 1000.0,
                         metronome=opts["metronome"],
                         keep_samples=STATS_SAMPLES if opts["stats"] else 2000),
                 tuning=Tuning(realtime=bool(opts["realtime"])), workers=workers,
                 ccmap=build_ccmap(opts, cc),
                 loader=lambda name: load_model(name, "call", dirs),
                 send_many=lambda msgs, stamps: holder[0].send_many(msgs, stamps),
                 clock_out=clock_out,
                 send_at=lambda msgs, at: holder[0].send_at(msgs, at))
    poll = opts["input_poll"]
    sink = channel_filter(rt.on_midi, opts["in_channel"], rt.ccmap)
    with contextlib.ExitStack() as stack:
        stack.callback(workers.close)  # when the run ends before the runtime starts
        if tick_port is not None:
            stack.callback(tick_port.close)
        if isinstance(clock, (LinkClock, JackTransportClock)):
            stack.callback(clock.close)
        holder.append(ports.open_ports(api, opts["inputs"], opts["output"], sink=sink,
                                       poll=float(poll) / 1000.0 if poll else None,
                                       backend="jack" if native else "rtmidi",
                                       clock_out=opts["clock_out"] or None))
        stack.callback(holder[0].close)
        if holder[0].schedules:  # grid notes go to the port a lead ahead, placed at the frame
            rt.opt.lead = holder[0].lead
            rt.opt.early += holder[0].lead   # the engine computes them before that
            if clock_out is not None and tick_port is None:   # and the clock ticks
                clock_out.lead, clock_out.send_at = holder[0].lead, holder[0].send_clock_at
        signals.check()
        rt.publisher = start_osc(opts, rt, stack)
        stack.callback(rt.stop)
        if opts["stats"]:
            stack.callback(write_stats, rt, Path(opts["stats"]), holder[0])
        return play(rt, holder[0], model, opts, settings)


def make_clock(kind: str, settings: Settings, spb: int, engine: Any,
               native: bool = False) -> Any:
    """The clock source ``kind`` (internal, midi, link, jack) on a grid of ``spb`` steps a beat;
    with ``native`` (the JACK MIDI backend) the JACK transport is read on its client."""
    if kind == "internal":
        return InternalClock(settings.bpm, spb)
    if kind == "midi":
        return MidiClockFollower(spb, settings.bpm)
    if kind == "jack":
        if native:
            from liveduet.live import jackhost
            return JackTransportClock(settings.bpm, spb, client=jackhost.shared_host().client)
        return JackTransportClock(settings.bpm, spb)
    grid = engine.grid   # the Link quantum is the bar of the metre being played
    return LinkClock(settings.bpm, spb,
                     quantum=lambda pos: grid.metres.metre(math.floor(pos)).quarters_per_bar)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it moves while C output is muted)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _log_to_stderr() -> None:
    """Warnings as ``liveduet: message`` lines on the current stderr (once per process)."""
    root = logging.getLogger()
    if not any(isinstance(h, _CurrentStderr) for h in root.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("liveduet: %(message)s"))
        if not root.handlers:
            root.addHandler(handler)
            root.setLevel(logging.WARNING)


def channel_filter(sink: Any, channel: int | None, ccmap: Any) -> Any:
    """``sink`` behind an input-channel filter: channel messages on other channels are dropped,
    except control changes the CC map listens to (a controller on its own channel)."""
    if channel is None:
        return sink
    want = channel - 1

    def filtered(t: float, msg: tuple[int, ...], idx: int = 0) -> None:
        status = msg[0] if msg else 0
        if status < 0xF0 and (status & 0x0F) != want and not (
                (status & 0xF0) == 0xB0 and ccmap is not None and len(msg) >= 2
                and ccmap.handles((status & 0x0F) + 1, msg[1])):
            return
        sink(t, msg, idx)

    return filtered


def build_ccmap(opts: dict[str, Any], table: dict[str, Any] | None) -> Any:
    """The CC map: the [cc] table, else the default map; None with --no-cc."""
    if not opts["cc"]:
        return None
    from liveduet.core.ccmap import CcMap

    if table is not None:
        return CcMap.from_toml(table)
    channel = opts["cc_channel"]
    return CcMap.default(int(channel)) if channel is not None else CcMap.default()


def start_osc(opts: dict[str, Any], rt: Runtime, stack: contextlib.ExitStack) -> Any:
    """Start OSC control (if wanted and importable); a busy default port only warns."""
    if not opts["osc"]:
        return None
    try:
        from liveduet.live.control import OscControl
    except ImportError as err:
        log.warning("OSC control unavailable (%s)", err)
        return None
    port = opts["osc_port"]
    control = OscControl(rt.submit, host=opts["osc_host"],
                         port=DEFAULT_OSC_PORT if port is None else int(port),
                         reply_port=int(opts["osc_reply_port"]), allow=opts["osc_allow"] or ())
    try:
        control.start()
    except ConfigError as err:
        if port is not None:
            raise
        log.warning("%s; running without OSC control", err)
        return None
    stack.callback(control.stop)
    if opts["osc_announce"]:
        announce_osc(control.address, stack)
    return control


def announce_osc(address: tuple[str, int], stack: contextlib.ExitStack) -> None:
    """Advertise the OSC server over zeroconf (when it listens beyond this machine)."""
    from liveduet.live.announce import advertise

    try:
        found = advertise(*address)
    except Exception as err:  # no multicast route, a busy mDNS port: OSC still works by IP
        log.warning("OSC not advertised on the network (%s); connect TouchOSC by IP", err)
        return
    if found is not None:
        stack.callback(found.close)
        print(f"liveduet: OSC advertised on the network as '{found.name}' (port "
              f"{address[1]})", file=sys.stderr, flush=True)
