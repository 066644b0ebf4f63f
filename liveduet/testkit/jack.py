"""A private JACK dummy server for tests and benchmarks, plus small helpers to wire its ports.

``JackServer`` starts ``jackd -n <unique> --no-realtime -d dummy -r 48000 -p 64`` with
``JACK_DEFAULT_SERVER`` set for this process and its children, waits until the server accepts
clients, and on exit stops it by PID (SIGTERM, then SIGKILL) and removes its leftovers. Use it as
a context manager or through the ``jack_server`` pytest fixture (module scope: import the name
into a test module and each module gets its own server).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

SHM_DIR = "/dev/shm"
POOL = tuple(f"liveduet-test-{i}" for i in range(6))
LOG_TAIL = 16_000  # bytes of jackd's log kept in ``log`` after stop
_LATE = re.compile(rb"client = (.+?) was not finished")


def _jackd_running() -> bool:
    """True when any jackd process is alive on this machine."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() in ("jackd", "jackdmp"):
                    return True
    return False


def _remove_registry() -> None:
    """Remove jackd's shared-memory registry (only ever called when no jackd runs)."""
    for path in glob.glob(os.path.join(SHM_DIR, "jack-*")):
        with contextlib.suppress(OSError):
            os.remove(path)


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                 timeout: float = 15.0) -> bool:
    """Send ``sig`` to ``proc`` (if it still runs) and wait; kill it when it does not exit
    within ``timeout``. True when it exited by itself."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


def release(*ports: Any) -> None:
    """Delete python-rtmidi clients, an input's callback cancelled first (a callback firing
    into a port being torn down is a known way to crash). No ``close_port()`` before
    ``delete()``: on a virtual JACK port that pair crashes the process; ``delete()`` closes
    the port itself."""
    for port in ports:
        if port is None:
            continue
        if hasattr(port, "cancel_callback"):
            with contextlib.suppress(Exception):
                port.cancel_callback()
        port.delete()


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
             what: str = "condition") -> Any:
    """Poll ``cond`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class JackServer:
    """A jackd dummy server with a unique name, owned by the creating process."""

    def __init__(self, rate: int = 48000, period: int = 64, name: str | None = None) -> None:
        self.fixed_name = name is not None
        self.name = name or POOL[0]
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen[bytes] | None = None
        self._old_env: str | None = None
        self.log = b""
        self._logfile: IO[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """True when jackd, jack_lsp and jack_connect are installed."""
        return all(shutil.which(t) for t in ("jackd", "jack_lsp", "jack_connect"))

    @property
    def period_s(self) -> float:
        """One JACK period in seconds."""
        return self.period / self.rate

    def env(self) -> dict[str, str]:
        """An environment for child processes that points them at this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def start(self) -> JackServer:
        """Start jackd under a free name of the pool, healing a registry full of dead servers.

        jackd keeps one slot per server name in ``/dev/shm/jack-shm-registry`` (8 slots) and
        reclaims a dead server's slot only when a new server takes the same name; a server that
        was killed leaves its slot behind. Names therefore come from a small pool, so a dead
        slot is reused, and when no jackd runs at all a full registry is simply removed.
        """
        names = [self.name] if self.fixed_name else [*POOL, *POOL]
        self._old_env = os.environ.get("JACK_DEFAULT_SERVER")
        last: Exception | None = None
        for i, name in enumerate(names):
            self.name = name
            if not self.fixed_name and self._taken():
                continue  # a live server (another test run) has this name
            try:
                return self._start_once()
            except RuntimeError as err:
                last = err
                if "Too many servers" in str(err) and not _jackd_running():
                    _remove_registry()
                elif "Too many servers" in str(err) and i >= len(POOL):
                    break
        raise RuntimeError(f"could not start a JACK test server: {last}")

    def _start_once(self) -> JackServer:
        cmd = ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy",
               "-r", str(self.rate), "-p", str(self.period)]
        # jackd writes its log to a file, not a pipe: a test process holding the GIL inside a
        # python-rtmidi call (they do not release it) that waits for jackd could not drain a
        # pipe, and jackd blocked on its full stdout (every client, the test and liveduet hung)
        self._close_log()
        self._logfile = tempfile.TemporaryFile(prefix="jackd-")  # noqa: SIM115 (lives with jackd)
        self.proc = subprocess.Popen(cmd, env=self.env(), stdout=self._logfile,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        try:
            wait_for(self._ready, 15.0, 0.02, f"jackd {self.name} to accept clients")
            time.sleep(0.05)
            self._ready()  # still ours: raises if our jackd exited (name taken meanwhile)
        except TimeoutError:
            self.stop()
            raise
        return self

    def _log_bytes(self) -> bytes:
        """Everything jackd has written so far."""
        if self._logfile is None:
            return self.log
        self._logfile.flush()
        return os.pread(self._logfile.fileno(), os.fstat(self._logfile.fileno()).st_size, 0)

    def _close_log(self) -> None:
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    @property
    def late(self) -> Counter[str]:
        """JACK cycles each client did not finish in time (from jackd's log, so far)."""
        return Counter(m.group(1).decode(errors="replace")
                       for m in _LATE.finditer(self._log_bytes()))

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            out = self._log_bytes().decode(errors="replace")
            raise RuntimeError(f"jackd exited with {self.proc.returncode}: {out[-500:]}")
        return "system:" in self.lsp_text()

    def _taken(self) -> bool:
        """True when a server with this name answers, or hangs (a stuck one still owns it)."""
        try:
            res = subprocess.run(["jack_lsp", "-s", self.name], env=self.env(),
                                 capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            return True
        return res.returncode == 0 and bool(res.stdout)

    def lsp_text(self, *flags: str) -> str:
        """Output of ``jack_lsp`` against this server ('' if it fails). A ``jack_lsp`` that
        hangs (its client can wait for a server busy with a stopped or closing client) is run
        once more."""
        for last in (False, True):
            try:
                res = subprocess.run(["jack_lsp", "-s", self.name, *flags], env=self.env(),
                                     capture_output=True, text=True, timeout=10)
            except subprocess.TimeoutExpired:
                if last:
                    raise
                continue
            return res.stdout if res.returncode == 0 else ""
        return ""

    def ports(self) -> list[str]:
        """Every port name on the server."""
        return [line.strip() for line in self.lsp_text().splitlines() if line.strip()]

    def find_port(self, substring: str, timeout: float = 10.0) -> str:
        """Wait until exactly one port contains ``substring`` and return its full name."""
        def one() -> str | None:
            hits = [p for p in self.ports() if substring in p]
            return hits[0] if len(hits) == 1 else None
        return str(wait_for(one, timeout, 0.02, f"JACK port containing {substring!r}"))

    def connections(self) -> dict[str, list[str]]:
        """Port -> ports it is connected to."""
        out: dict[str, list[str]] = {}
        current = ""
        for line in self.lsp_text("-c").splitlines():
            if line.startswith((" ", "\t")):
                out.setdefault(current, []).append(line.strip())
            elif line.strip():
                current = line.strip()
                out.setdefault(current, [])
        return out

    def connect(self, src: str, dst: str) -> None:
        """``jack_connect src dst`` (raises on failure)."""
        subprocess.run(["jack_connect", "-s", self.name, src, dst], env=self.env(), check=True,
                       capture_output=True, timeout=10)

    def disconnect(self, src: str, dst: str) -> None:
        """``jack_disconnect src dst`` (raises on failure)."""
        subprocess.run(["jack_disconnect", "-s", self.name, src, dst], env=self.env(),
                       check=True, capture_output=True, timeout=10)

    def stop(self) -> None:
        """Stop jackd by PID (SIGTERM, then SIGKILL) and remove its shm leftovers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None:
            self.log = self._log_bytes()[-LOG_TAIL:]
            self._close_log()
        for path in glob.glob(os.path.join(SHM_DIR, f"jack*_{self.name}_*")):
            with contextlib.suppress(OSError):  # already gone: nothing to clean
                os.remove(path)
        if self._old_env is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = self._old_env

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
