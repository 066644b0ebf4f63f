"""Connection changes are events (JACK's port-connect callback), and each instance watches its
own ports.

Churn: the DAW's connection to ``liveduet out`` is broken and restored 200 times, each state held
0-40 ms (faster than any poll), while the machine plays eighth notes; after the last restore and
exit the DAW holds nothing. The churn uses libjack directly (``jack_connect`` from the test's own
client): one ``jack_connect`` process per change would be far slower than the churn it tests.
Second instance: its ports are ``liveduet-01:...``; it prints and watches those, not the first's.
"""

from __future__ import annotations

import ctypes
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from liveduet.live import jackwatch
from liveduet.testkit.enginekit import loop_model
from liveduet.testkit.jack import JackServer, release, wait_for
from tests.live.faultkit import ROOT, RUN, Live, Receiver

PORTS = re.compile(r"in (\[.*?\]) -> out '(.*?)'")


class Patchbay:
    """A bare libjack client that connects and disconnects ports (microseconds per change)."""

    def __init__(self) -> None:
        lib = jackwatch._lib()
        assert lib is not None, "libjack is not loadable"
        for name in ("jack_connect", "jack_disconnect"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
            getattr(lib, name).restype = ctypes.c_int
        status = ctypes.c_int(0)
        self.lib = lib
        self.client = lib.jack_client_open(b"patchbay", jackwatch.NO_START_SERVER,
                                           ctypes.byref(status))
        assert self.client, f"cannot open a JACK client (status {status.value})"

    def set(self, src: str, dst: str, connected: bool) -> None:
        call = self.lib.jack_connect if connected else self.lib.jack_disconnect
        call(self.client, src.encode(), dst.encode())

    def close(self) -> None:
        self.lib.jack_client_close(self.client)


@pytest.fixture
def patchbay(jack_server: JackServer) -> Iterator[Patchbay]:
    bay = Patchbay()
    yield bay
    bay.close()


def test_fast_reconnect_churn_leaves_nothing_sounding(
        jack_server: JackServer, tmp_path: Path, live_factory: list[Live],
        patchbay: Patchbay) -> None:
    loop_model(tmp_path)  # 60 for two steps, 64 for one, a rest: notes end all the time
    live = Live(jack_server, tmp_path / "loop.onnx", "--mode", "continue")
    live_factory.append(live)
    wait_for(lambda: len(live.daw.got) >= 4, 10.0, what="the machine playing")
    rnd = random.Random(7)
    for _ in range(200):
        patchbay.set(live.out, live.daw.name, False)
        time.sleep(rnd.uniform(0.0, 0.04))
        patchbay.set(live.out, live.daw.name, True)
        time.sleep(rnd.uniform(0.0, 0.04))
    live.wait_line("note-off(s) for notes a receiver missed", 5.0)
    live.wait_line("changed", 5.0)  # a flapping connection is summed up, not a line per change
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="nothing left sounding at the DAW")


def test_second_instance_names_and_watches_its_own_ports(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    first = Live(jack_server, models["answer"])
    live_factory.append(first)
    proc = subprocess.Popen([sys.executable, "-m", "liveduet", "run", "--api", "jack",
                             "--model", str(models["answer"]), *RUN], env=jack_server.env(),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(ln.rstrip() for ln in proc.stderr),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    rec = None
    try:
        started = wait_for(lambda: next((ln for ln in list(lines) if "Ctrl-C" in ln), None),
                           30.0, what="the second instance to start")
        mine = [p for p in jack_server.ports() if p.endswith(":liveduet out") and p != first.out]
        assert len(mine) == 1, jack_server.ports()
        out2 = mine[0]
        ins, out = PORTS.search(started).groups()  # type: ignore[union-attr]
        ins1, out1 = PORTS.search(first.wait_line("Ctrl-C")).groups()  # type: ignore[union-attr]
        assert out == out2 != out1 and ins != ins1, (started, first.lines[0])
        rec = Receiver("rec2")
        jack_server.connect(out2, rec.name)
        wait_for(lambda: any("connected to 'rec2:in'" in ln for ln in list(lines)), 5.0,
                 what="the second instance to see its own connection")
        jack_server.disconnect(out2, rec.name)
        wait_for(lambda: any("disconnected from 'rec2:in'" in ln for ln in list(lines)), 5.0,
                 what="the second instance to see its own disconnection")
        assert not any("rec2" in ln for ln in first.lines), first.lines
    finally:
        proc.terminate()
        proc.wait(15)
        reader.join(5)
        release(rec.port if rec else None)
    assert proc.returncode == 0, lines
