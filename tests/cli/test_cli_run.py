"""``liveduet run`` settings resolution: defaults < config file < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveduet.cli import build_parser
from liveduet.cli.runconfig import resolve
from liveduet.errors import ConfigError


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return resolve(build_parser().parse_args(["run", *argv]))


def test_command_line_beats_config_beats_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text('mode = "continue"\ntemperature = 0.8\nbpm = 90\nrealtime = true\n')
    settings, opts, _ = parse("--config", str(cfg), "--bpm", "132")
    assert (settings.mode, settings.temperature, settings.bpm) == ("continue", 0.8, 132)
    assert opts["realtime"] is True
    settings, opts, _ = parse()
    assert settings.mode == "call" and opts["realtime"] is False


@pytest.mark.parametrize(("text", "steps"), [("4", 4), ("1b", 4), ("2bar", 32), ("0.5bars", 8)])
def test_listen_gap_takes_steps_beats_or_bars(text: str, steps: int) -> None:
    _settings, opts, _ = parse("--listen-gap", text)
    from liveduet.core.turns import parse_steps

    assert parse_steps(opts["listen_gap_text"], 4) == steps


@pytest.mark.parametrize("text", ["2.5", "0", "soon", "1.3b"])
def test_listen_gap_nonsense_is_refused_before_anything_opens(text: str) -> None:
    with pytest.raises(ConfigError, match="length"):
        parse("--listen-gap", text)


def test_listen_gap_in_a_config_file_may_be_bars(tmp_path: Path) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text('listen_gap = "1bar"\n')
    _settings, opts, _ = parse("--config", str(cfg))
    assert opts["listen_gap_text"] == "1bar"
    cfg.write_text("listen_gap = 6\n")
    settings, opts, _ = parse("--config", str(cfg))
    assert settings.listen_gap == 6 and "listen_gap_text" not in opts
