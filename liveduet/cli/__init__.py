"""The ``liveduet`` command: ``main(argv=None) -> int``; each subcommand lives in its module.

Exit codes: 0 success, 1 a check that ran and failed (or an internal error), 2 bad input (bad
file, value, port), with one line on stderr naming the problem and the fix; 130 when interrupted
(``run`` exits 0 after SIGINT, SIGTERM or SIGHUP at any moment: see :mod:`liveduet.live.signals`).
No traceback unless ``--debug`` is given (or LIVEDUET_DEBUG=1).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence

from liveduet import __version__
from liveduet.core.settings import did_you_mean
from liveduet.errors import LiveduetError
from liveduet.live import signals

# Each module exposes register(subparsers); a registered parser sets ``func(args) -> int``.
COMMAND_MODULES = (
    "liveduet.cli.model",
    "liveduet.cli.eval",
    "liveduet.cli.run",
    "liveduet.cli.render",
    "liveduet.cli.demo",
    "liveduet.cli.copy",
    "liveduet.cli.harmony",
)
_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")
_UNKNOWN = re.compile(r"unrecognized arguments: (\S+)")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad values as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}{self._hint(message)} "
                     f"(see '{self.prog} --help')\n")

    def _hint(self, message: str) -> str:
        """A 'did you mean' for a near-miss subcommand, choice or option name."""
        if m := _CHOICE.search(message):
            return did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
        if m := _UNKNOWN.search(message):
            word = m.group(1).split("=")[0]
            return did_you_mean(word, set(_options(self))) if word.startswith("-") else ""
        return ""


def _options(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every option string of ``parser`` and its subcommands."""
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _options(child)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = _Parser(prog="liveduet", description="A real-time MIDI co-performer.")
    parser.add_argument("--version", action="version", version=f"liveduet {__version__}")
    parser.add_argument("--debug", action="store_true", help="print tracebacks, and the MIDI "
                        "libraries' own messages (libjack) on the terminal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.debug = args.debug or os.environ.get("LIVEDUET_DEBUG", "") not in ("", "0")
    if args.command != "run":
        signals.restore()  # batch commands stop by KeyboardInterrupt, as usual
        if signals.STOP.is_set():
            return 130
        return _call(args)
    signals.install()  # no-op after ``python -m liveduet``; needed for the console script
    try:
        return _call(args)
    except signals.Interrupted:
        return 0  # stopped while starting: nothing was sounding yet
    finally:
        signals.restore()
        signals.reset()


def _call(args: argparse.Namespace) -> int:
    """Run the subcommand: a user error is one line (status 2), never a traceback."""
    try:
        return int(args.func(args))
    except LiveduetError as err:
        print(f"liveduet: error: {err}", file=sys.stderr)
        if args.debug:
            raise
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. 'liveduet models | head': the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except signals.Interrupted:
        raise
    except Exception as err:  # a bug: one line and how to get the details
        if args.debug:
            raise
        print(f"liveduet: internal error: {type(err).__name__}: {err} (run 'liveduet --debug "
              f"{args.command} ...' for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
