"""Zeroconf advertising of the OSC server (``_osc._udp``), so TouchOSC can browse for liveduet.

The network test runs only inside a private network namespace (``unshare -n``) whose one
interface is loopback: the mDNS packets never leave it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from liveduet.live.announce import advertise, is_local_only

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r"""
import contextlib, json, sys, time
import ifaddr
from zeroconf import IPVersion, ServiceBrowser, Zeroconf
from liveduet.cli.run import start_osc
from liveduet.cli.runconfig import RUN_OPTIONS

adapters = sorted(a.nice_name for a in ifaddr.get_adapters())
assert adapters == ["lo"], adapters  # the private namespace: loopback alone

class Rt:
    def submit(self, cmd):
        pass

found = []
class Listener:
    def add_service(self, zc, kind, name): found.append(name)
    def remove_service(self, zc, kind, name): pass
    def update_service(self, zc, kind, name): pass

opts = dict(RUN_OPTIONS, osc_host="0.0.0.0", osc_port=0)
with contextlib.ExitStack() as stack:
    control = start_osc(opts, Rt(), stack)
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    ServiceBrowser(zc, "_osc._udp.local.", Listener())
    end = time.monotonic() + 15
    while not found and time.monotonic() < end:
        time.sleep(0.05)
    info = zc.get_service_info("_osc._udp.local.", found[0], timeout=5000) if found else None
    print(json.dumps({"names": found, "port": control.address[1],
                      "seen_port": info.port if info else None,
                      "addresses": info.parsed_addresses() if info else []}))
    zc.close()
"""


def test_loopback_servers_are_not_advertised() -> None:
    assert is_local_only("127.0.0.1") and is_local_only("::1") and is_local_only("localhost")
    assert not is_local_only("0.0.0.0") and not is_local_only("192.168.1.20")
    assert advertise("127.0.0.1", 8000) is None  # never touches the network


def _namespace_ok() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(importlib.util.find_spec("zeroconf") is None, reason="zeroconf extra")
@pytest.mark.skipif(not _namespace_ok(), reason="needs unshare -n (a private network namespace)")
def test_touchosc_can_browse_for_the_osc_server_in_a_private_namespace() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    cmd = ["unshare", "-n", "sh", "-c", "ip link set lo up && ip link set lo multicast on && "
           f"exec {sys.executable} -c \"$0\"", SCRIPT]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["names"] and result["names"][0].startswith("liveduet on ")
    assert result["seen_port"] == result["port"] and result["addresses"] == ["127.0.0.1"]
    assert "OSC advertised on the network as 'liveduet on" in proc.stderr
