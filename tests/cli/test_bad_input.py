"""Bad files and settings: every command refuses them with status 2 and ONE line naming the bad
value and the fix (``liveduet.cli.main`` in process; bad port names over a real JACK server).

Cases: truncated, empty, non-ONNX, missing and contract-breaking models (liveduet/testkit/factory.py
``broken_models``) for ``run``, ``render``, ``eval`` and ``check-model``; unreadable and invalid
MIDI for ``render`` and ``eval``; malformed, unknown-key and ill-typed TOML configs; nonsense
command-line values; input/output port names that match nothing.
"""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from liveduet.cli import main
from liveduet.testkit.factory import broken_models, lstm_model
from liveduet.testkit.jack import JackServer


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
    zero = (d / "ok.mid").read_bytes()
    (d / "zero_tpb.mid").write_bytes(zero[:12] + b"\x00\x00" + zero[14:])  # division 0
    out["zero_tpb.mid"] = d / "zero_tpb.mid"
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


@pytest.mark.parametrize(("text", "needle"), [
    ("in = 5", "5"), ("osc_allow = 7", "7"), ("stats = 5", "5"),
    ('latency_offset = "soon"', "soon"), ("osc_host = 127", "127"), ("model = 12", "12"),
    ("metronome = 1e400", "inf"), ('osc = "false"', "false"), ('thru = "off"', "off"),
    ("latency_offset = nan", "nan"), ("latency_offset = 1e12", "1000000000000.0"),
    ("input_poll = 11", "11"), ("input_poll = -1", "-1"), ("quiet = 1", "1")],
    ids=lambda v: str(v))
def test_ill_typed_config_value_is_one_line(tmp_path: Path, files: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str], text: str,
                                            needle: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text + "\n")
    code, lines, _ = run_cli(["run", "--no-osc", "--quiet", "--model", str(files["good"]),
                              "--config", str(config)], capsys)
    assert_one_line(code, lines, needle, text.split(" ")[0])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e12"])
def test_non_finite_latency_offset_is_one_line(files: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str],
                                               value: str) -> None:
    code, lines, _ = run_cli(["run", "--quiet", "--model", str(files["good"]),
                              f"--latency-offset={value}"], capsys)
    assert_one_line(code, lines, "--latency-offset", "latency_offset")


@pytest.mark.parametrize("args", [
    ["render", "IN", "--bpm", "-5"], ["render", "IN", "--bpm", "0"],
    ["render", "IN", "--bpm", "nan"], ["render", "IN", "--tail-bars", "inf"],
    ["render", "ZERO"], ["generate", "--bars", "nan"], ["generate", "--bars", "0"],
    ["generate", "--bars", "1", "--bpm", "0"]],
    ids=lambda a: " ".join(a))
def test_nonsense_render_number_is_one_line(files: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str],
                                            args: list[str]) -> None:
    out = files["ok.mid"].with_name("never.mid")
    real = {"IN": str(files["ok.mid"]), "ZERO": str(files["zero_tpb.mid"])}
    argv = [real.get(a, a) for a in args] + ["--model", str(files["good"]), "-o", str(out)]
    code, lines, _ = run_cli(argv, capsys)
    assert_one_line(code, lines, "ticks per beat" if "ZERO" in args else args[-1])
    assert not out.exists()


def test_full_disk_leaves_no_file_and_says_so(files: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC at the final flush (where a full disk reports it): nothing under the name."""
    import errno
    import os

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "duet.mid"
    code, lines, _ = run_cli(["render", str(files["ok.mid"]), "--model", str(files["good"]),
                              "-o", str(out)], capsys)
    assert_one_line(code, lines, "disk is full", str(out))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_leaves_nothing(files: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no_such_folder" / "duet.mid"
    code, lines, _ = run_cli(["render", str(files["ok.mid"]), "--model", str(files["good"]),
                              "-o", str(out)], capsys)
    assert_one_line(code, lines, "no_such_folder", "nothing was written")


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
