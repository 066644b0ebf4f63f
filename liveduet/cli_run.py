"""``liveduet run`` (play live through MIDI ports) and ``liveduet ports`` (list them).

Settings come from the defaults, then ``--config FILE.toml`` (the Settings names, the run
options below with underscores, and a ``[cc]`` table), then the command line. Bad values, bad
port names and a missing MIDI system exit with status 2 and one line naming problem and fix.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from liveduet import catalog, ports
from liveduet.clock import InternalClock, MidiClockFollower
from liveduet.clockout import ClockOutput
from liveduet.errors import ConfigError, LiveduetError
from liveduet.jacktransport import JackTransportClock
from liveduet.link import LinkClock
from liveduet.runtime import Options, Runtime
from liveduet.settings import FIELDS, Settings, with_mode_defaults
from liveduet.status import StatusLine
from liveduet.tablebuilder import TableBuilder
from liveduet.turns import parse_steps

log = logging.getLogger("liveduet.run")
RUN_OPTIONS: dict[str, Any] = {
    "model": None, "clock": "internal", "inputs": [], "output": None, "api": "auto",
    "latency_offset": 0.0, "metronome": None, "quiet": False, "stats": None,
    "osc": True, "osc_port": None, "osc_host": "127.0.0.1", "osc_reply_port": 9000,
    "osc_allow": [], "cc": True, "cc_channel": None, "input_poll": None,
    "realtime": False, "clock_out": None,
}
CLOCKS = ("internal", "midi", "link", "jack")
DEFAULT_OSC_PORT = 8000
CHECK_S = 0.25
STATS_SAMPLES = 20_000   # per kind with --stats: the latest (a ring; memory stays flat)
NAMED_CHECK_S = 1.0
EXIT_LOST = 3
"""Exit status when the MIDI system (the JACK server) went away during the run."""
SHORT = {"top_p": "top-p", "listen_gap": "listen-gap"}


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
    p.add_argument("--api", choices=("auto", *ports.APIS), help="MIDI system (default auto)")
    p.add_argument("--latency-offset", type=float, metavar="MS",
                   help="shift grid-timed output by MS milliseconds (negative = earlier)")
    p.add_argument("--metronome", type=int, metavar="CH", help="click notes on MIDI channel CH")
    p.add_argument("--quiet", action="store_true", default=None, help="no status line")
    p.add_argument("--stats", type=Path, metavar="FILE", help="write timing stats JSON at exit")
    p.add_argument("--no-osc", dest="osc", action="store_false", default=None,
                   help="do not start the OSC control server")
    p.add_argument("--osc-port", type=int, help="OSC listen port (default 8000; 0 = any free)")
    p.add_argument("--osc-host", help="OSC bind address (default 127.0.0.1; 0.0.0.0 for LAN)")
    p.add_argument("--osc-reply-port", type=int, help="port on the client for feedback (9000)")
    p.add_argument("--osc-allow", action="append", metavar="HOST", help="only accept OSC "
                   "from HOST (repeat)")
    p.add_argument("--input-poll", type=float, metavar="MS", help="read MIDI input by polling "
                   "every MS ms instead of a callback on the MIDI thread (no lost JACK cycles "
                   "under dense input; adds up to MS of input latency)")
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
            extra = f" ({', '.join(f.choices)})" if f.choices else f" ({f.low}..{f.high})"
            if f.name == "listen_gap":
                extra = " (steps, or beats/bars such as 1b, 2bar)"
            p.add_argument(flag, dest=f.name, metavar=f.name.upper(), help=f.help + extra)
    p.set_defaults(func=run_command)
    q = sub.add_parser("ports", help="list the MIDI ports liveduet can use")
    q.add_argument("--api", default="auto", choices=("auto", *ports.APIS))
    q.set_defaults(func=ports_command)


def ports_command(args: argparse.Namespace) -> int:
    """``liveduet ports``."""
    print(ports.describe(ports.list_ports(ports.choose_api(args.api))))
    return 0


# -- configuration --------------------------------------------------------------------------
def load_config(path: Path | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(flat settings/run options, [cc] table or None) from a TOML file."""
    if path is None:
        return {}, None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {path} ({err.strerror}); check the path") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config {path} is not valid TOML ({err}); fix that line") from err
    cc = data.pop("cc", None)
    if cc is not None and not isinstance(cc, dict):
        raise ConfigError(f"config {path}: 'cc' must be a [cc] table")
    known = {f.name for f in FIELDS} | set(RUN_OPTIONS) | {"in", "out"}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"config {path}: unknown key {key!r}; known: "
                              f"{', '.join(sorted(known))}")
        name = {"in": "inputs", "out": "output"}.get(key, key)
        flat[name] = [value] if name == "inputs" and isinstance(value, str) else value
    return flat, cc


def resolve(args: argparse.Namespace) -> tuple[Settings, dict[str, Any], dict[str, Any] | None]:
    """Settings and run options: defaults < config file < command line."""
    flat, cc = load_config(args.config)
    cli = {k: v for k, v in vars(args).items() if v is not None and k not in ("func", "command",
                                                                             "config")}
    merged = with_mode_defaults({**RUN_OPTIONS, **flat, **cli})
    gap = merged.get("listen_gap")
    if isinstance(gap, str):   # '1b', '2bar': checked now, counted in the model's steps later
        parse_steps(gap)
        merged["listen_gap_text"] = merged.pop("listen_gap")
    settings = Settings()
    for f in FIELDS:
        if f.name in merged:
            settings = settings.with_value(f.name, merged.pop(f.name))
    opts = {k: merged[k] for k in (*RUN_OPTIONS, "listen_gap_text") if k in merged}
    if opts["clock"] not in CLOCKS:
        raise ConfigError(f"clock={opts['clock']!r}; choose internal, midi, link or jack")
    out = opts["clock_out"]
    if out is True:   # clock_out = true in a config file: on the output port
        opts["clock_out"] = ""
    elif out is False:
        opts["clock_out"] = None
    elif out is not None and not isinstance(out, str):
        raise ConfigError(f"--clock-out {out!r}: give a port name, or true for the output port")
    _check_range(opts, "metronome", 1, 16, "a MIDI channel from 1 to 16")
    _check_range(opts, "cc_channel", 1, 16, "a MIDI channel from 1 to 16")
    _check_range(opts, "osc_port", 0, 65535, "a UDP port from 1 to 65535 (0 = any free port)")
    _check_range(opts, "osc_reply_port", 1, 65535, "a UDP port from 1 to 65535")
    poll = opts["input_poll"]
    if poll is not None and (not isinstance(poll, (int, float)) or not 0.05 <= poll <= 10):
        raise ConfigError(f"--input-poll {poll!r}: give milliseconds from 0.05 to 10")
    return settings, opts, cc


def _check_range(opts: dict[str, Any], name: str, low: int, high: int, what: str) -> None:
    """Refuse a run option that is not an integer in ``low..high`` (ConfigError, one line)."""
    value = opts[name]
    if value is None:
        return
    flag = "--" + name.replace("_", "-")
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number != value or not low <= number <= high:
        raise ConfigError(f"{flag} {value!r}: give {what}")


# -- the run --------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    """``liveduet run``: build everything, play until SIGINT/SIGTERM, release every note."""
    logging.basicConfig(level=logging.WARNING, format="liveduet: %(message)s")
    settings, opts, cc = resolve(args)
    model = load_model(opts["model"], settings.mode)
    if "listen_gap_text" in opts:
        settings = settings.with_value("listen_gap", parse_steps(
            opts["listen_gap_text"], int(model.codec.steps_per_beat), settings.meter))
    from liveduet.engine import Engine

    engine = Engine(model, settings, table_source=TableBuilder.for_model)
    spb = int(model.codec.steps_per_beat)
    clock = make_clock(opts["clock"], settings, spb, engine)
    api = ports.choose_api(opts["api"])
    holder: list[ports.PortSet] = []
    tick_port = (ports.open_output(api, opts["clock_out"]) if opts["clock_out"]
                 else None)
    clock_out = None
    if opts["clock_out"] is not None:
        clock_out = ClockOutput(clock, tick_port.send_many if tick_port is not None
                                else lambda msgs: holder[0].send_many(msgs, []), spb,
                                keep=STATS_SAMPLES if opts["stats"] else 2000)
    rt = Runtime(engine, clock, lambda msg: holder[0].send(msg),
                 Options(latency_offset=float(opts["latency_offset"]) / 1000.0,
                         metronome=opts["metronome"], steps_per_beat=spb,
                         realtime=bool(opts["realtime"]),
                         keep_samples=STATS_SAMPLES if opts["stats"] else 2000),
                 ccmap=build_ccmap(opts, cc), loader=load_model,
                 send_many=lambda msgs, stamps: holder[0].send_many(msgs, stamps),
                 clock_out=clock_out)
    poll = opts["input_poll"]
    with contextlib.ExitStack() as stack:
        if tick_port is not None:
            stack.callback(tick_port.close)
        if isinstance(clock, (LinkClock, JackTransportClock)):
            stack.callback(clock.close)
        holder.append(ports.open_ports(api, opts["inputs"], opts["output"], sink=rt.on_midi,
                                       poll=None if poll is None else float(poll) / 1000.0))
        stack.callback(holder[0].close)
        rt.publisher = start_osc(opts, rt, stack)
        stack.callback(rt.stop)
        if opts["stats"]:
            stack.callback(write_stats, rt, Path(opts["stats"]))
        return play(rt, holder[0], model, opts, settings)


def make_clock(kind: str, settings: Settings, spb: int, engine: Any) -> Any:
    """The clock source ``kind`` (internal, midi, link, jack) on a grid of ``spb`` steps a beat."""
    if kind == "internal":
        return InternalClock(settings.bpm, spb)
    if kind == "midi":
        return MidiClockFollower(spb, settings.bpm)
    if kind == "jack":
        return JackTransportClock(settings.bpm, spb)
    grid = engine.grid   # the Link quantum is the bar of the metre being played
    return LinkClock(settings.bpm, spb,
                     quantum=lambda pos: grid.metres.metre(math.floor(pos)).quarters_per_bar)


def load_model(name: str | None, mode: str = "call") -> Any:
    """A StepModel by name/path; the bundled default for ``mode`` when ``name`` is None."""
    from liveduet.model import StepModel

    if name is None:
        name = catalog.DEFAULT_HARMONY if mode == "harmonize" else catalog.DEFAULT_MELODY
    path = catalog.resolve(name)
    if not path.exists():
        raise LiveduetError(f"model file {path} does not exist; give --model a bundled name "
                            "('liveduet models') or a path to an .onnx file")
    return StepModel(path)


def build_ccmap(opts: dict[str, Any], table: dict[str, Any] | None) -> Any:
    """The CC map: the [cc] table, else the default map; None with --no-cc."""
    if not opts["cc"]:
        return None
    from liveduet.ccmap import CcMap

    if table is not None:
        return CcMap.from_toml(table)
    channel = opts["cc_channel"]
    return CcMap.default(int(channel)) if channel is not None else CcMap.default()


def start_osc(opts: dict[str, Any], rt: Runtime, stack: contextlib.ExitStack) -> Any:
    """Start OSC control (if wanted and importable); a busy default port only warns."""
    if not opts["osc"]:
        return None
    try:
        from liveduet.control import OscControl
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
    return control


@contextlib.contextmanager
def stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (restored afterwards)."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def play(rt: Runtime, portset: ports.PortSet, model: Any, opts: dict[str, Any],
         settings: Settings) -> int:
    """Run until a signal; show the status; watch the ports and the JACK server.

    Returns 0 after SIGINT/SIGTERM, 1 when the conductor crashed, EXIT_LOST when the MIDI
    system (the JACK server) went away.
    """
    stop = threading.Event()
    line = None if opts["quiet"] else StatusLine(sys.stdout)
    lost: ports.SystemLost | None = None
    warned: set[str] = set()
    next_named = time.monotonic() + NAMED_CHECK_S
    with stop_signals(stop):
        rt.start()
        print(f"liveduet: {settings.mode} with '{model.title}'; in {portset.input_names} -> out "
              f"'{portset.output_name}'; clock {opts['clock']}{_clock_out_text(opts, portset)}. "
              "Ctrl-C to stop.",
              file=sys.stderr, flush=True)
        while not stop.wait(CHECK_S) and not rt.done.is_set():
            if line is not None:
                line.show(rt.snapshot)
            _warn_once(rt.snapshot, warned)
            named = time.monotonic() >= next_named
            next_named += NAMED_CHECK_S if named else 0.0
            try:
                reports = portset.check(named)
            except ports.SystemLost as err:
                lost = err
                break
            for report in reports:
                print(f"liveduet: {report}", file=sys.stderr, flush=True)
        rt.stop()
    if line is not None:
        line.close()
    if lost is not None:
        print(f"liveduet: error: {lost}", file=sys.stderr, flush=True)
        return EXIT_LOST
    if rt.failed is not None:
        print(f"liveduet: error: the conductor stopped ({rt.failed}); all notes were released",
              file=sys.stderr)
        return 1
    return 0


def _clock_out_text(opts: dict[str, Any], portset: ports.PortSet) -> str:
    out = opts["clock_out"]
    if out is None:
        return ""
    return f", MIDI clock out on '{out or portset.output_name}'"


def _warn_once(status: dict[str, Any], warned: set[str]) -> None:
    """Print each engine warning (e.g. NaN logits fell back to silence) the first time."""
    for text in status.get("warnings", ()):
        if text not in warned:
            warned.add(text)
            print(f"liveduet: warning: {text}; playing on", file=sys.stderr, flush=True)


def write_stats(rt: Runtime, path: Path) -> None:
    """Dump :meth:`Runtime.stats` as JSON."""
    path.write_text(json.dumps(rt.stats()), encoding="utf-8")
