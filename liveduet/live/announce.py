"""Advertise the OSC server on the local network (zeroconf ``_osc._udp``), so TouchOSC finds it.

Optional: it needs the ``zeroconf`` package (the ``zeroconf`` extra). A server bound to a
loopback address is never advertised (nothing outside this machine could reach it).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

log = logging.getLogger("liveduet.live.announce")
SERVICE = "_osc._udp.local."


class Announcement:
    """One registered service; :meth:`close` withdraws it."""

    def __init__(self, zc: Any, info: Any) -> None:
        self._zc = zc
        self.info = info

    @property
    def name(self) -> str:
        """The advertised service name, e.g. ``liveduet on studio._osc._udp.local.``."""
        return str(self.info.name)

    def close(self) -> None:
        """Withdraw the service and stop zeroconf (safe to call twice)."""
        if self._zc is None:
            return
        try:
            self._zc.unregister_service(self.info)
        finally:
            self._zc.close()
            self._zc = None


def is_local_only(host: str) -> bool:
    """True when ``host`` is a loopback address or name (only this machine can reach it)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def advertise(host: str, port: int, name: str | None = None) -> Announcement | None:
    """Register the OSC server at ``host:port`` as ``_osc._udp``; None when not advertised
    (loopback, or zeroconf not installed: then one log line says how to get it)."""
    if is_local_only(host):
        return None
    try:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf
    except ImportError:
        log.warning("OSC not advertised on the network (zeroconf is not installed); connect "
                    "TouchOSC by IP, or pip install 'liveduet[zeroconf]' so it finds liveduet")
        return None
    machine = socket.gethostname().split(".")[0] or "liveduet"
    title = name or f"liveduet on {machine}"
    bound = [] if host in ("0.0.0.0", "::", "") else [host]
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    addresses = bound or _addresses(zc)
    info = ServiceInfo(SERVICE, f"{title}.{SERVICE}", port=port,
                       parsed_addresses=addresses, server=f"{machine}.local.",
                       properties={"app": "liveduet"})
    try:
        zc.register_service(info, allow_name_change=True)
    except Exception:
        zc.close()
        raise
    return Announcement(zc, info)


def _addresses(zc: Any) -> list[str]:
    """The IPv4 addresses of this machine's interfaces (what a 0.0.0.0 server listens on)."""
    import ifaddr

    out = [str(ip.ip) for adapter in ifaddr.get_adapters() for ip in adapter.ips
           if isinstance(ip.ip, str)]
    return out or ["127.0.0.1"]
