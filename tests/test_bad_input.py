"""Bad files and settings: every command refuses them with status 2 and ONE line naming the bad
value and the fix (``liveduet.cli.main`` in process; bad port names over a real JACK server).

Cases: truncated, empty, non-ONNX, missing and contract-breaking models (tests/factory.py
``broken_models``) for ``run``, ``render``, ``eval`` and ``check-model``; unreadable and invalid
MIDI for ``render`` and ``eval``; malformed, unknown-key and ill-typed TOML configs; nonsense
command-line values; input/output port names that match nothing.
"""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from liveduet.cli import main
from tests.factory import broken_models, lstm_model
from tests.jack import JackServer, jack_server

__all__ = ["jack_server"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    out = {name: path for name, (path, _rule) in broken_models(d / "models").items()}
    out["good"] = lstm_model(d / "good.onnx")
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    track += [mido.Message("note_on", note=60, velocity=90, time=0),
              mido.Message("note_off", note=60, time=480)]
    mid.tracks.append(track)
    mid.save(d / "ok.mid")
    out["ok.mid"] = d / "ok.mid"
    for name, data in {"empty.mid": b"", "text.mid": b"this is not a MIDI file\n",
                       "truncated.mid": (d / "ok.mid").read_bytes()[:20],
                       "bad_header.mid": b"MThd\x00\x00\x00\x06\x00\x07\x00\x01\x01\xe0"}.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    out["missing.mid"] = d / "no_such_file.mid"
    (d / "nodir").mkdir()
    out["dir.mid"] = d / "nodir"
    for name, text in {"malformed.toml": "mode = \n[[\n", "unknown.toml": "tempo_bpm = 3\n",
                       "badvalue.toml": 'temperature = "hot"\n', "badcc.toml": "cc = 3\n",
                       "badtype.toml": "bpm = [1, 2]\n"}.items():
        (d / name).write_text(text)
        out[name] = d / name
    out["missing.toml"] = d / "no_such.toml"
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """(exit status, non-empty stderr lines, stdout) of ``liveduet ARGV`` in process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing a value
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, [ln for ln in captured.err.splitlines() if ln.strip()], captured.out


def assert_one_line(code: int, lines: list[str], *needles: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BROKEN = ["empty", "not_onnx", "truncated", "missing", "no_state_out", "tokens_int32",
          "no_metadata", "vocab_mismatch", "card_incomplete", "bad_codec"]


@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("command", ["run", "render", "eval"])
def test_broken_model_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                  broken: str, command: str) -> None:
    model = str(files[broken])
    argv = {"run": ["run", "--no-osc", "--quiet", "--model", model],
            "render": ["render", "--model", model, str(files["ok.mid"]), "-o",
                       str(files["ok.mid"].with_name("out.mid"))],
            "eval": ["eval", "--model", model, str(files["ok.mid"])]}[command]
    code, lines, _ = run_cli(argv, capsys)
    assert_one_line(code, lines, Path(model).name)
    assert "fix" in lines[0].lower() or "give" in lines[0].lower(), lines[0]


@pytest.mark.parametrize("broken", BROKEN)
def test_check_model_reports_one_invalid_line(files: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str],
                                              broken: str) -> None:
    """check-model is a report: its verdict is its output (stdout), still one line, status 2."""
    code, err, out = run_cli(["check-model", str(files[broken])], capsys)
    lines = err + [ln for ln in out.splitlines() if ln.strip()]
    assert_one_line(code, lines, files[broken].name)
    assert "Fix" in lines[0] or "fix" in lines[0]


@pytest.mark.parametrize("midi", ["empty.mid", "text.mid", "truncated.mid", "bad_header.mid",
                                  "missing.mid", "dir.mid"])
@pytest.mark.parametrize("command", ["render", "eval"])
def test_bad_midi_file_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                   midi: str, command: str) -> None:
    path = str(files[midi])
    argv = (["render", "--model", str(files["good"]), path, "-o",
             str(files["ok.mid"].with_name("out.mid"))] if command == "render"
            else ["eval", "--model", str(files["good"]), path])
    code, lines, _ = run_cli(argv, capsys)
    assert_one_line(code, lines, Path(path).name)


@pytest.mark.parametrize(("config", "needle"), [
    ("malformed.toml", "not valid TOML"), ("unknown.toml", "tempo_bpm"),
    ("badvalue.toml", "hot"), ("badcc.toml", "[cc]"), ("badtype.toml", "bpm"),
    ("missing.toml", "no_such.toml")])
def test_bad_config_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                config: str, needle: str) -> None:
    code, lines, _ = run_cli(["run", "--no-osc", "--quiet", "--model", str(files["good"]),
                              "--config", str(files[config])], capsys)
    assert_one_line(code, lines, needle)


@pytest.mark.parametrize("args", [
    ["--bpm", "fast"], ["--bpm", "1000"], ["--temperature", "9"], ["--temperature", "nan"],
    ["--out-channel", "0"], ["--out-channel", "17"], ["--mode", "jazz"], ["--key", "H"],
    ["--top-p", "-1"], ["--listen-gap", "2.5"], ["--api", "beos"], ["--metronome", "17"],
    ["--latency-offset", "soon"], ["--osc-port", "99999"], ["--clock", "sundial"],
    ["--seed", "-4"], ["--velocity", "200"], ["--density", "inf"]],
    ids=lambda a: " ".join(a))
def test_nonsense_run_value_is_one_line(files: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str],
                                        args: list[str]) -> None:
    code, lines, _ = run_cli(["run", "--quiet", "--model", str(files["good"]), *args], capsys)
    assert_one_line(code, lines, args[1])


@pytest.mark.parametrize("args", [["--bpm", "fast"], ["--temperature", "9"], ["--mode", "jazz"],
                                  ["--in-channel", "0"], ["--tail-bars", "many"]],
                         ids=lambda a: " ".join(a))
def test_nonsense_render_value_is_one_line(files: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str],
                                           args: list[str]) -> None:
    code, lines, _ = run_cli(["render", "--model", str(files["good"]), str(files["ok.mid"]),
                              "-o", str(files["ok.mid"].with_name("out.mid")), *args], capsys)
    assert_one_line(code, lines, args[1])


@pytest.mark.parametrize(("flag", "name"), [("--in", "no-such-keyboard"),
                                            ("--out", "no-such-synth"),
                                            ("--in", "system")])
def test_bad_port_name_is_one_line(jack_server: JackServer, files: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str], flag: str,
                                   name: str) -> None:
    code, lines, _ = run_cli(["run", "--api", "jack", "--no-osc", "--quiet", "--model",
                              str(files["good"]), flag, name], capsys)
    assert_one_line(code, lines, repr(name), flag)
