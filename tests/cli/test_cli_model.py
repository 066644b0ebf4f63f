"""`liveduet check-model` and `liveduet models` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from liveduet.cli import main
from liveduet.testkit.factory import broken_models, lstm_model, position_model


def test_check_model_json_for_a_valid_model(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = lstm_model(tmp_path / "ok.onnx")
    assert main(["check-model", str(path), "--json", "--steps", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["errors"] == []
    assert report["codec"]["name"] == "grid" and report["codec"]["vocab_size"] == 40
    assert report["card"]["title"].startswith("test LSTM")
    lat = report["step_latency_us"]
    assert 0 < lat["p50"] <= lat["p99"]
    assert {s["name"] for s in report["states"]} == {"h", "c"}
    assert report["position"] is None


def test_check_model_reports_a_position_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = position_model(tmp_path / "pos.onnx")
    assert main(["check-model", str(path), "--json", "--steps", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["position"] == {"input": "position", "scheme": "metre-v1", "size": 96}
    assert main(["check-model", str(path), "--steps", "20"]) == 0
    assert "position position (metre-v1, 96 ids" in capsys.readouterr().out


def test_check_model_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lstm_model(tmp_path / "ok.onnx")
    assert main(["check-model", str(path), "--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID") and "p99" in out and "voice  melody" in out


def test_check_model_refuses_each_broken_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name, (path, rule) in broken_models(tmp_path).items():
        assert main(["check-model", str(path), "--json"]) == 2, name
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is False
        assert [e["rule"] for e in report["errors"]] == [rule], name
        assert report["errors"][0]["fix"]


def test_unknown_model_name_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-model", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model named 'no_such_model'" in err[0]


def test_bad_cli_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-model", "x.onnx", "--steps", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_models_lists_bundled_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert isinstance(items, list)
    for item in items:
        assert set(item) == {"name", "path", "card"}
        assert Path(item["path"]).stem == item["name"]


def test_console_script_runs(tmp_path: Path) -> None:
    path = lstm_model(tmp_path / "ok.onnx")
    proc = subprocess.run([sys.executable, "-m", "liveduet", "check-model", str(path), "--json",
                           "--steps", "20"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
