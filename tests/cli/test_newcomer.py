"""A newcomer's first minutes and the conventions musicians expect, seen from the command line.

Everything here runs without a MIDI system (the live half is in test_newcomer_live.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from liveduet import __version__
from liveduet.cli import learnstore, main
from liveduet.cli.status import format_status, note_name
from liveduet.core import catalog
from liveduet.core.ccmap import CcMap
from liveduet.core.codec import TimedNote
from liveduet.core.engine import Engine
from liveduet.core.settings import Settings, coerce
from liveduet.offline import midifile
from liveduet.offline.render import drive, render
from liveduet.testkit.enginekit import loop_model
from liveduet.testkit.factory import lstm_model

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from readme_commands import two_commands  # noqa: E402


def no_midi_env(tmp: Path) -> dict[str, str]:
    """An environment where no MIDI system can be reached: JACK names a server that does not
    run and may not be started, ALSA finds no sequencer device."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=f"nonexistent{os.getpid()}",
               JACK_NO_START_SERVER="1", ALSA_CONFIG_PATH=str(tmp / "none.conf"),
               PYTHONPATH=str(ROOT), HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "cfg"),
               XDG_DATA_HOME=str(tmp / "data"))
    return env


@pytest.fixture(scope="module")
def melody(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lstm_model(tmp_path_factory.mktemp("newcomer") / "melody.onnx", hidden=16)


def tune(path: Path, notes: int = 8, tracks: int = 2) -> Path:
    """A small type-1 file (tempo track + melody) or, with ``tracks=1``, a type-0 file."""
    parts = [midifile.Part("melody", 0, [TimedNote(i * 0.5, 60 + i % 5, i * 0.5 + 0.5)
                                         for i in range(notes)])]
    mid = midifile.write_parts(parts, 120.0)
    if tracks == 1:
        mid = mido.MidiFile(type=0, ticks_per_beat=mid.ticks_per_beat,
                            tracks=[mido.merge_tracks(mid.tracks)])
    mid.save(path)
    return path


# -- 1: the two commands, the demo, and run without MIDI ----------------------------------
def test_the_demo_answers_without_any_midi_system_in_under_5_s(tmp_path: Path) -> None:
    out = tmp_path / "duet.mid"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "liveduet", "demo", "-o", str(out)],
                          env=no_midi_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert took < 5.0, f"demo took {took:.1f} s"
    text = proc.stdout
    assert "you (the call)  C4 D4 E4 F4 G4 E4 | F4 E4 D4 C4" in text
    answer = re.search(r"liveduet melody (.*)", text)
    assert answer and re.search(r"[A-G]#?\d", answer.group(1))  # the answer as note names
    assert "# you   o liveduet" in text and re.search(r"^  G4 .*#", text, re.M)  # piano roll
    assert "liveduet run" in text and "jackd" in text  # how to go live
    assert mido.MidiFile(out).tracks[1].name == "human"
    assert len(midifile.read_notes(mido.MidiFile(out), 2)) > 0  # the machine's track
    png = out.with_suffix(".png")
    assert png.exists() == (importlib.util.find_spec("matplotlib") is not None)
    assert "Traceback" not in proc.stderr


def test_demo_harmonises_in_four_parts_with_c3_octave_names(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    out = tmp_path / "h.mid"
    assert main(["demo", "--mode", "harmonise", "--octave-names", "c3", "--no-plot",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "you (the call)  C3 D3 E3" in text
    for voice in ("alto", "tenor", "bass"):
        assert f"liveduet {voice}" in text
    chans = [{m.channel for m in t if m.type == "note_on"} for t in mido.MidiFile(out).tracks[2:]]
    assert chans == [{1}, {2}, {3}]  # channels 2-4: channel 1 stays the caller's
    assert not out.with_suffix(".png").exists()


def test_run_without_a_midi_system_points_to_the_demo(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "liveduet", "run", "--api", "jack", "--no-osc"],
                          env=no_midi_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert "liveduet demo" in err[-1] and "jackd" in err[-1]
    assert "Traceback" not in proc.stderr


def test_the_readme_starts_with_two_commands_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = two_commands(readme)
    assert len(lines) == 2
    assert "python3 -m venv .venv" in lines[0] and "pip install" in lines[0]
    assert lines[0].endswith("&& liveduet run")  # play: install and run the main job
    assert lines[1] == "bash scripts/test.sh"  # test
    assert readme.index("## Two commands") < readme.index("## For musicians") < readme.index(
        "## For developers")
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith(("#", "set ", "cd "))]
    assert ci == ["exec bash scripts/test.sh"]  # CI runs exactly the README's test command
    assert "bash scripts/readme_check.sh" in (ROOT / "scripts" / "test.sh").read_text()


# -- 3: channel plan ----------------------------------------------------------------------
def test_machine_voices_never_share_the_human_channel_by_default(tmp_path: Path) -> None:
    satb = catalog.resolve(catalog.DEFAULT_HARMONY)
    from liveduet.core.model import StepModel

    engine = Engine(StepModel(satb), Settings(mode="harmonize", thru=True), lookahead=0)
    duet = render(engine, [TimedNote(0, 72, 2), TimedNote(2, 74, 4)], tail_bars=0)
    assert Settings().channel == 2
    assert sorted(duet.channels.values()) == [1, 2, 3]  # alto, tenor, bass on 2, 3, 4
    # the human's thru copy keeps channel 1
    outs = Engine(StepModel(satb), Settings(mode="harmonize"), lookahead=0).feed(
        0.0, (0x90, 72, 100))
    assert {o.msg[0] & 0x0F for o in outs if o.voice is None} == {0}
    assert {o.msg[0] & 0x0F for o in outs if o.voice is not None} <= {1, 2, 3}


# -- 4: a missing folder for the TouchOSC layout -------------------------------------------
def test_touchosc_to_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "liveduet.live.touchosc", "-o",
                           str(tmp_path / "missing" / "x.tosc")], capture_output=True,
                          text=True, env=no_midi_env(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- 5: models with metrics and a short licence -------------------------------------------
def test_models_shows_metrics_and_a_one_line_licence(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # only the bundled models
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"folk_melody .*\n.*corpus: .*\n.*metrics: validation NLL/note \d\.\d{3,4} "
                     r"\(n-gram baseline \d\.\d+, -\d+\.\d%\); step p50", text)
    licences = [ln for ln in text.splitlines() if "licence:" in ln]
    assert len(licences) == 2 and all(len(ln) < 160 for ln in licences)
    assert "NON-COMMERCIAL" in text and "--licence" in text
    assert main(["models", "--licence"]) == 0
    full = capsys.readouterr().out
    assert "Ewa Dahlig-Turek" in full and len(full) > len(text) + 1000


# -- 6: generate's help and file; messages --------------------------------------------------
def test_generate_help_describes_it_without_live_only_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    assert "Let the model play on its own" in text
    for flag in ("--thru", "--listen-gap", "--response-bars", "--response-max-bars"):
        assert flag not in text
    assert "--bars" in text and "--out-channel" in text


def test_generate_writes_no_empty_human_track(melody: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.mid"
    assert main(["generate", "-o", str(out), "--bars", "2", "--model", str(melody)]) == 0
    mid = mido.MidiFile(out)
    assert len(mid.tracks) == 2 and mid.tracks[1].name == "liveduet melody"
    assert midifile.read_notes(mid, 1)


def test_messages_count_tracks_and_speak_in_the_given_units(
        melody: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = tune(tmp_path / "one.mid", tracks=1)
    assert main(["render", str(one), "-o", str(tmp_path / "o.mid"), "--model", str(melody),
                 "--track", "3"]) == 2
    assert "the file has 1 track (0..0)" in capsys.readouterr().err
    assert main(["render", str(one), "-o", str(tmp_path / "o.mid"), "--model", str(melody),
                 "--listen-gap", "20bar"]) == 2
    err = capsys.readouterr().err
    assert "--listen-gap 20bar" in err and "4 bars of 4/4" in err and "listen_gap=" not in err
    empty = tmp_path / "empty.mid"
    midifile.write_parts([], 120.0).save(empty)
    assert main(["eval", str(empty), "--model", str(melody)]) == 2
    err = capsys.readouterr().err
    assert "no notes at all" in err and "range" not in err


# -- 7: one option vocabulary; ports --api help --------------------------------------------
def test_in_and_out_channel_everywhere_old_names_still_work(
        melody: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tune(tmp_path / "t.mid")
    out = tmp_path / "o.mid"
    assert main(["render", str(src), "-o", str(out), "--model", str(melody),
                 "--in-channel", "1", "--out-channel", "6", "--mode", "continue"]) == 0
    assert {m.channel for m in mido.MidiFile(out).tracks[2] if m.type == "note_on"} == {5}
    assert main(["render", str(src), "-o", str(out), "--model", str(melody),
                 "--channel", "2"]) == 2  # the old name of --in-channel: no notes on 2
    err = capsys.readouterr().err
    assert "--channel is now --in-channel" in err and "channel 2 has no notes" in err
    from liveduet.cli import build_parser
    from liveduet.cli.runconfig import resolve

    args = build_parser().parse_args(["run", "--channel", "7", "--in-channel", "3"])
    settings, opts, _ = resolve(args)
    assert settings.channel == 7 and opts["in_channel"] == 3
    assert "--channel is now --out-channel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ports", "--help"])
    text = capsys.readouterr().out
    assert "--api" in text and "MIDI system" in text and "CoreMIDI" in text


# -- 8: did you mean; harmonise -------------------------------------------------------------
@pytest.mark.parametrize(("argv", "hint"), [
    (["rnu"], "did you mean 'run'?"),
    (["run", "--tempreature", "1"], "did you mean '--temperature'?"),
    (["render", "x.mid", "-o", "y.mid", "--mode", "harmonze"], "did you mean 'harmonize'?"),
    (["run", "--scale", "dorain"], "did you mean 'dorian'?"),
])
def test_near_miss_names_get_a_suggestion(argv: list[str], hint: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if argv[0] == "render":
        argv = ["render", str(tune(tmp_path / "x.mid")), "-o", str(tmp_path / "y.mid"),
                *argv[4:]]
    try:
        code = main(argv) if argv[0] != "run" or "--tempreature" in argv or "rnu" in argv \
            else None
    except SystemExit as stop:
        code = stop.code
    if code is None:  # a bad setting value of run: checked before anything opens
        from liveduet.cli import build_parser
        from liveduet.cli.runconfig import resolve
        from liveduet.errors import ConfigError

        with pytest.raises(ConfigError, match=re.escape(hint)):
            resolve(build_parser().parse_args(argv))
        return
    assert code == 2
    assert hint in capsys.readouterr().err


def test_config_typos_get_a_suggestion_and_british_spelling_is_accepted(tmp_path: Path) -> None:
    from liveduet.cli import build_parser
    from liveduet.cli.runconfig import resolve
    from liveduet.errors import ConfigError

    cfg = tmp_path / "live.toml"
    cfg.write_text('temprature = 0.5\n')
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        resolve(build_parser().parse_args(["run", "--config", str(cfg)]))
    cfg.write_text('mode = "harmonise"\nkey = "Eb"\nout_channel = 5\nin_channel = 2\n')
    settings, opts, _ = resolve(build_parser().parse_args(["run", "--config", str(cfg)]))
    assert (settings.mode, settings.key, settings.channel, opts["in_channel"]) == (
        "harmonize", "D#", 5, 2)
    assert settings.temperature == 0.7  # the harmoniser's default comes with the spelling


# -- 9, 10: licence, docs inside the repo, version in one place, tomli ------------------------
def test_licence_docs_and_version_live_in_the_repository(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", readme) + re.findall(r"`(\.\./[^`]+)`", readme)
    assert links and not [x for x in links if x.startswith(("../", "/"))]
    assert "docs/architecture.md" in links and (ROOT / "docs" / "architecture.md").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "liveduet.__version__"}
    assert "tomli>=2; python_version < '3.11'" in project["project"]["dependencies"]
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"liveduet {__version__}"


# -- 11: saved MIDI learn, user models folder ----------------------------------------------
def test_learnt_bindings_rewrite_only_the_cc_section(tmp_path: Path) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text('# my set\nmode = "call"\n\n[cc]\ntemperature = 74\n')
    m = CcMap.default()
    m.learn("density")
    m.cc_command(3, 50, 10)
    learnstore.save(cfg, m.to_toml_text())
    data = tomllib.loads(cfg.read_text())
    assert cfg.read_text().startswith('# my set\nmode = "call"\n')
    assert data["mode"] == "call" and data["cc"]["density"] == [3, 50]
    assert CcMap.from_toml(data["cc"]).bindings == m.bindings


def test_user_folders_follow_the_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          melody: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert learnstore.user_learn_file() == tmp_path / "cfg" / "liveduet" / "learn.toml"
    assert catalog.user_models_dir() == tmp_path / "data" / "liveduet" / "models"
    assert catalog.user_dir("data", "darwin").parts[-3:] == ("Library", "Application Support",
                                                             "liveduet")
    assert learnstore.load_user_cc() is None
    learnstore.save(learnstore.user_learn_file(), "[cc]\ndensity = [1, 50]\n")
    assert learnstore.load_user_cc() == {"density": [1, 50]}
    mine = catalog.user_models_dir() / "mine.onnx"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(melody.read_bytes())
    assert catalog.resolve("mine") == mine
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "mine.onnx").write_bytes(melody.read_bytes())
    assert catalog.resolve("mine", [extra]) == extra / "mine.onnx"  # --models-dir first
    assert [b.name for b in catalog.available([extra])][:1] == ["mine"]
    with pytest.raises(Exception, match="did you mean 'mine'"):
        catalog.resolve("mien")


# -- 12: octave names, flats --------------------------------------------------------------
def test_octave_names_and_flat_keys() -> None:
    assert (note_name(60), note_name(60, "c3"), note_name(21, "c3")) == ("C4", "C3", "A-1")
    assert "you: C3" in format_status({"last_human_note": 60}, "c3")
    assert [coerce("key", k) for k in ("Bb", "eb", "Db", "Gb", "Ab", "B♭", "F#")] == [
        "A#", "D#", "C#", "F#", "G#", "A#", "F#"]
    assert coerce("mode", "harmonise") == "harmonize"


# -- 13: the sustain pedal holds the call --------------------------------------------------
def test_the_sustain_pedal_keeps_the_call_going(tmp_path: Path) -> None:
    model = loop_model(tmp_path)
    cold = {"mode": "call", "temperature": 0.05, "top_p": 0.05, "listen_gap": 4,
            "answer_at": "gap", "thru": False}

    def first_answer(events: list[tuple[float, tuple[int, ...]]]) -> float:
        outs = drive(Engine(model, Settings.from_dict(cold)), events, 40)
        return min(o.pos for o in outs if o.voice is not None and o.msg[0] & 0xF0 == 0x90)

    note = [(0.0, (0x90, 60, 100)), (4.0, (0x80, 60, 0))]  # one beat of C4
    assert first_answer(note) == pytest.approx(8.0)  # a beat of silence, then the answer
    pedal = sorted([*note, (0.0, (0xB0, 64, 127)), (12.0, (0xB0, 64, 0))])
    assert first_answer(pedal) == pytest.approx(16.0)  # the pedal held it to beat 3
    other = sorted([*note, (0.0, (0xB1, 64, 127)), (12.0, (0xB1, 64, 0))])
    assert first_answer(other) == pytest.approx(8.0)  # a pedal on another channel does not


def test_osc_addresses_learn_targets_and_cc_keys_get_a_suggestion() -> None:
    from liveduet.core.oscmap import Refused, parse
    from liveduet.errors import ConfigError

    with pytest.raises(Refused, match="did you mean '/liveduet/temperature'"):
        parse("/liveduet/temprature", [1.0])
    with pytest.raises(Refused, match="did you mean 'density'"):
        parse("/liveduet/learn", ["densty"])
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        CcMap.from_toml({"temprature": 3})
    assert parse("/liveduet/key", ["Bb"]).value == "A#"  # flats over OSC too


def test_a_mode_the_model_cannot_play_is_refused_in_one_line_without_a_loader(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from liveduet.core.clock import InternalClock
    from liveduet.core.settings import Set
    from liveduet.live.runtime import Runtime
    from liveduet.testkit.jack import wait_for

    engine = Engine(loop_model(tmp_path), Settings(mode="call"))
    rt = Runtime(engine, InternalClock(120.0, 4), lambda msg: None)
    rt.start()
    try:
        rt.submit(Set("mode", "harmonize"))
        wait_for(lambda: "mode harmonize not set" in rt.message, 5.0, what="the refusal")
    finally:
        rt.stop()
    assert engine.settings.mode == "call" and rt.errors == {}
    assert "multi-voice" in rt.message and "\n" not in rt.message
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged


def test_a_reader_that_leaves_early_ends_it_quietly(tmp_path: Path) -> None:
    """``liveduet models | head -1``: the pipe closes before liveduet has written everything."""
    proc = subprocess.Popen([sys.executable, "-m", "liveduet", "models", "--licence"],
                            env=no_midi_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read()
    assert proc.wait(60) == 0 and err == ""
