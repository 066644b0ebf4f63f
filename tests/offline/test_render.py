"""Offline render: round trip of the human part, determinism, CLI, plot, bundled models."""

from __future__ import annotations

import sys
from pathlib import Path

import mido
import pytest

from liveduet.cli import main
from liveduet.core import catalog
from liveduet.core.codec import TimedNote, chorale_codec, melody_codec
from liveduet.core.engine import Engine
from liveduet.core.metre import MetreChange, MetreMap, parse_metre
from liveduet.core.model import StepModel
from liveduet.core.settings import Settings
from liveduet.errors import ConfigError, LiveduetError
from liveduet.offline import midifile
from liveduet.offline.midifile import Part
from liveduet.offline.render import machine_notes, pick_part, render
from liveduet.testkit.enginekit import loop_model
from liveduet.testkit.factory import lstm_model

TUNE = [(0, 74, 1), (1, 73, 0.5), (1.5, 71, 0.5), (2, 69, 1), (3, 66, 1), (4, 67, 1),
        (5, 69, 0.5), (5.5, 71, 0.5), (6, 69, 2), (12, 66, 1), (13, 64, 1), (14, 62, 2)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("render")
    notes = [TimedNote(s, p, s + d * 0.9, 0, 90) for s, p, d in TUNE]
    drums = [TimedNote(s, 36, s + 0.25, 0, 100) for s in range(8)]
    mid = midifile.write_parts([Part("tune", 2, notes), Part("drums", 9, drums)], 100.0)
    mid.save(tmp / "tune.mid")
    return {"tune": tmp / "tune.mid", "tmp": tmp,
            "melody": lstm_model(tmp / "melody.onnx", melody_codec(), seed=5),
            "satb": lstm_model(tmp / "satb.onnx", chorale_codec(), seed=6)}


def test_render_keeps_the_human_part_exactly(files: dict[str, Path]) -> None:
    out = files["tmp"] / "out.mid"
    assert main(["render", str(files["tune"]), "-o", str(out), "--model",
                 str(files["melody"]), "--mode", "continue"]) == 0
    src, dst = mido.MidiFile(files["tune"]), mido.MidiFile(out)
    assert dst.type == 1 and len(dst.tracks) == 3  # tempo, human, machine
    assert midifile.read_notes(dst, 1) == midifile.read_notes(src, 1)
    assert midifile.tempo_bpm(dst) == pytest.approx(100.0)
    machine = midifile.read_notes(dst, 2)
    assert machine and all(48 <= n.pitch <= 84 for n in machine)
    assert {m.channel for m in dst.tracks[2] if m.type == "note_on"} == {1}


def test_same_seed_same_bytes(files: dict[str, Path]) -> None:
    data = []
    for i, seed in enumerate((4, 4, 5)):
        out = files["tmp"] / f"seed{i}.mid"
        assert main(["render", str(files["tune"]), "-o", str(out), "--model",
                     str(files["melody"]), "--seed", str(seed), "--key", "auto"]) == 0
        data.append(out.read_bytes())
    assert data[0] == data[1] and data[0] != data[2]


def test_harmonize_writes_one_track_per_machine_voice(files: dict[str, Path]) -> None:
    out = files["tmp"] / "satb.mid"
    assert main(["render", str(files["tune"]), "-o", str(out), "--mode", "harmonize",
                 "--model", str(files["satb"]), "--out-channel", "5"]) == 0
    dst = mido.MidiFile(out)
    names = [t.name for t in dst.tracks[1:]]
    assert names == ["human", "liveduet alto", "liveduet tenor", "liveduet bass"]
    chans = [{m.channel for m in t if m.type == "note_on"} for t in dst.tracks[2:]]
    assert chans == [{4}, {5}, {6}]


def test_call_render_answers_in_the_gaps(tmp_path: Path) -> None:
    engine = Engine(loop_model(tmp_path), Settings(mode="call", temperature=0.05, top_p=0.05,
                                                   listen_gap=4, answer_at="gap"))
    human = [TimedNote(0, 60, 2), TimedNote(2, 62, 4)]  # 4 beats of call = 16 steps
    duet = render(engine, human, tail_bars=2)
    (notes,) = duet.machine.values()
    assert notes[0].start == 5.0  # one beat of silence after the call, then the answer
    assert max(n.end for n in notes) <= 9.0  # answer as long as the call (one bar)
    assert [p for _, p in duet.turns] == ["listening", "answering", "listening"]
    assert duet.beats == 12


def test_generate_from_scratch_and_from_a_primer(files: dict[str, Path]) -> None:
    out = files["tmp"] / "gen.mid"
    assert main(["generate", "-o", str(out), "--bars", "4", "--model",
                 str(files["melody"]), "--seed", "2", "--temperature", "0.8"]) == 0
    mid = mido.MidiFile(out)
    assert len(mid.tracks) == 2  # tempo and the machine: no empty human track
    notes = midifile.read_notes(mid, 1)
    assert notes and max(n.end for n in notes) <= 16
    assert main(["generate", "-o", str(out), "--bars", "2", "--model",
                 str(files["melody"]), "--primer", str(files["tune"])]) == 0
    mid = mido.MidiFile(out)
    assert midifile.read_notes(mid, 1) == midifile.read_notes(mido.MidiFile(files["tune"]), 1)
    assert min(n.start for n in midifile.read_notes(mid, 2)) >= 0


@pytest.mark.parametrize(("argv", "words"), [
    (["render", "missing.mid", "-o", "x.mid"], "no such MIDI file"),
    (["render", "{tune}", "-o", "x.mid", "--model", "{melody}", "--mode", "harmonize"],
     "chorale_satb"),
    (["render", "{tune}", "-o", "x.mid", "--model", "{melody}", "--listen-gap", "2parsecs"],
     "2bar"),
    (["render", "{tune}", "-o", "x.mid", "--model", "{melody}", "--track", "0"], "--track"),
    (["render", "{tune}", "-o", "x.mid", "--model", "{melody}", "--in-channel", "17"], "1-16"),
    (["render", "{tune}", "-o", "x.mid", "--model", "nope"], "no model named"),
    (["generate", "-o", "x.mid", "--bars", "0", "--model", "{melody}"], "--bars"),
])
def test_cli_errors_name_the_fix(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                 argv: list[str], words: str) -> None:
    args = [a.format(tune=files["tune"], melody=files["melody"]) for a in argv]
    args = [str(files["tmp"] / a) if a == "x.mid" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("liveduet: error:") and words in err


def test_pick_part_defaults_to_the_first_track_with_notes(files: dict[str, Path]) -> None:
    mid = mido.MidiFile(files["tune"])
    assert [n.pitch for n in pick_part(mid, None, None)][:3] == [74, 73, 71]
    assert {n.pitch for n in pick_part(mid, 2, None)} == {36}
    assert {n.pitch for n in pick_part(mid, None, 9)} == {36}
    with pytest.raises(LiveduetError, match="channel 4"):
        pick_part(mid, None, 3)


def test_machine_notes_pairs_on_and_off(tmp_path: Path) -> None:
    from liveduet.core.engine import Out
    outs = [Out(0, (0x90, 60, 80), 0), Out(2, (0x80, 60, 0), 0), Out(2, (0x90, 62, 70), 0),
            Out(3, (0x90, 64, 70), 1), Out(4, (0x80, 62, 0), 0), Out(6, (0x80, 64, 0), 1),
            Out(1, (0x9F, 50, 1))]
    assert machine_notes(outs, 4) == {
        0: [TimedNote(0, 60, 0.5, 0, 80), TimedNote(0.5, 62, 1.0, 0, 70)],
        1: [TimedNote(0.75, 64, 1.5, 1, 70)]}


def test_plot_draws_a_png(files: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    png = files["tmp"] / "roll.png"
    assert main(["render", str(files["tune"]), "-o", str(files["tmp"] / "p.mid"), "--model",
                 str(files["melody"]), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(files: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from liveduet.offline.plot import plot_duet
    from liveduet.offline.render import Duet

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"liveduet\[plot\]"):
        plot_duet(Duet([], {}, ["melody"], {}, []), files["tmp"] / "no.png")


@pytest.mark.parametrize(("name", "mode"), [(catalog.DEFAULT_MELODY, "call"),
                                            (catalog.DEFAULT_MELODY, "continue"),
                                            (catalog.DEFAULT_HARMONY, "harmonize")])
def test_bundled_models_render(files: dict[str, Path], name: str, mode: str) -> None:
    path = catalog.models_dir() / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"bundled model {path.name} missing (docs/training.md rebuilds it)")
    model = StepModel(path)
    duet = render(Engine(model, Settings(mode=mode, seed=1, thru=False)),
                  pick_part(mido.MidiFile(files["tune"]), None, None))
    assert sum(len(n) for n in duet.machine.values()) > 0
    c = duet.status["counters"]
    assert c["bad_logits"] == 0
    if mode == "call":
        assert c["answers"] >= 1


def time_signatures(mid: mido.MidiFile) -> list[tuple[int, str]]:
    out, tick = [], 0
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "time_signature":
            out.append((tick, f"{msg.numerator}/{msg.denominator}"))
    return out


def test_render_reads_and_writes_the_file_s_metres(files: dict[str, Path]) -> None:
    src = files["tmp"] / "jig.mid"
    notes = [TimedNote(s, p, s + d * 0.9, 0, 90) for s, p, d in TUNE]
    jig = MetreMap([MetreChange(0, parse_metre("6/8")), MetreChange(24, parse_metre("3/4"))])
    midifile.write_parts([Part("tune", 0, notes)], 100.0, metres=jig).save(src)
    out = files["tmp"] / "jig_out.mid"
    assert main(["render", str(src), "-o", str(out), "--model", str(files["melody"]),
                 "--mode", "call"]) == 0
    assert time_signatures(mido.MidiFile(out)) == [(0, "6/8"), (6 * 480, "3/4")]
    forced = files["tmp"] / "jig_44.mid"
    assert main(["render", str(src), "-o", str(forced), "--model", str(files["melody"]),
                 "--meter", "2/4"]) == 0
    assert time_signatures(mido.MidiFile(forced)) == [(0, "2/4")]


def test_call_answers_enter_on_the_bar_lines_of_the_file_s_metre(tmp_path: Path) -> None:
    engine = Engine(loop_model(tmp_path), Settings(mode="call", temperature=0.05, top_p=0.05,
                                                   listen_gap=2, meter="6/8"))
    human = [TimedNote(0, 60, 2), TimedNote(2, 62, 2.5)]  # the call stops mid-bar
    duet = render(engine, human, tail_bars=2)
    (notes,) = duet.machine.values()
    assert notes[0].start == 3.0  # the next 6/8 bar line (three quarter notes)
    assert duet.bar_lines()[:3] == [0.0, 3.0, 6.0]


def test_generate_writes_its_metre(files: dict[str, Path]) -> None:
    out = files["tmp"] / "gen34.mid"
    assert main(["generate", "-o", str(out), "--bars", "4", "--model", str(files["melody"]),
                 "--meter", "3/4"]) == 0
    mid = mido.MidiFile(out)
    assert time_signatures(mid) == [(0, "3/4")]
    assert max(n.end for n in midifile.read_notes(mid, 1)) <= 12  # four bars of three beats


def test_a_bad_meter_is_one_line_naming_the_forms(files: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "-o", str(files["tmp"] / "x.mid"), "--bars", "2", "--model",
                 str(files["melody"]), "--meter", "5/3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "4/4, 3/4" in err
