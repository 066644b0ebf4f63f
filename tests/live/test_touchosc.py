"""The shipped TouchOSC layout, the address map and docs/osc.md never drift apart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

from liveduet.core import oscmap
from liveduet.core.settings import FIELD_BY_NAME
from liveduet.live import touchosc

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _doc_addresses(name: str) -> set[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(/liveduet[^`]*)` \|", text, flags=re.MULTILINE))


def test_shipped_layout_parses_as_lexml() -> None:
    data = touchosc.shipped_layout().read_bytes()
    root = ET.fromstring(zlib.decompress(data))
    assert root.tag == "lexml" and root.get("version") == "3"
    group = root.find("node")
    assert group is not None and group.get("type") == "GROUP"
    kinds = {n.get("type") for n in root.iter("node")}
    assert {"FADER", "BUTTON", "RADIO", "LABEL"} <= kinds
    ids = [n.get("ID") for n in root.iter("node")]
    assert len(ids) == len(set(ids))


def test_shipped_layout_is_what_the_builder_makes_now(tmp_path: Path) -> None:
    shipped = zlib.decompress(touchosc.shipped_layout().read_bytes())
    assert shipped == zlib.decompress(touchosc.to_bytes(touchosc.build())), (
        "the layout is stale: run "
        "python -m liveduet.live.touchosc -o liveduet/layouts/liveduet.tosc")
    out = tmp_path / "a.tosc"
    assert touchosc.main(["-o", str(out)]) == 0
    assert out.read_bytes() == touchosc.to_bytes(touchosc.build())  # deterministic bytes


def test_layout_map_and_docs_list_the_same_addresses() -> None:
    in_map = set(oscmap.ADDRESSES)
    assert touchosc.addresses_in(touchosc.shipped_layout().read_bytes()) == in_map
    assert _doc_addresses("osc.md") == in_map


def test_controls_send_what_the_server_accepts_and_receive_their_echo() -> None:
    root = ET.fromstring(zlib.decompress(touchosc.to_bytes(touchosc.build())))
    sent: set[str] = set()
    received: set[str] = set()
    for osc in root.iter("osc"):
        path = osc.findtext("path/partial/value") or ""
        if osc.findtext("send") == "1":
            sent.add(path)
        if osc.findtext("receive") == "1":
            received.add(path)
    assert sent == set(oscmap.addresses(accepted=True)) - {"/liveduet/tempo"}
    assert received == set(oscmap.addresses(echoed=True))


def test_fader_scales_match_the_settings_ranges() -> None:
    root = ET.fromstring(zlib.decompress(touchosc.to_bytes(touchosc.build())))
    for node in root.iter("node"):
        if node.get("type") != "FADER":
            continue
        path = node.findtext("messages/osc/path/partial/value") or ""
        field = FIELD_BY_NAME[path.rsplit("/", 1)[1]]
        arg = node.find("messages/osc/arguments/partial")
        assert arg is not None
        low, high = float(arg.findtext("scaleMin") or "nan"), float(arg.findtext("scaleMax") or 0)
        assert (low, high) == (field.low, field.high)
        assert arg.findtext("conversion") == ("INTEGER" if field.kind == "int" else "FLOAT")
        # the top of the fader must be accepted by the server as it arrives (float32)
        assert oscmap.parse(path, [high]) is not None



def _props(node: ET.Element) -> dict[str, ET.Element]:
    own = node.find("properties")
    assert own is not None
    return {p.findtext("key") or "": p.find("value") for p in own}  # type: ignore[misc]


def test_controls_fit_the_page_and_never_overlap() -> None:
    root = ET.fromstring(zlib.decompress(touchosc.to_bytes(touchosc.build())))
    boxes = []
    for node in root.iter("node"):
        props = _props(node)
        x, y, w, h = (float(props["frame"].findtext(k) or "nan") for k in "xywh")
        assert x >= 0 and y >= 0
        assert x + w <= touchosc.WIDTH + 1e-6 and y + h <= touchosc.HEIGHT + 1e-6
        if node.get("type") != "GROUP" and props["interactive"].text == "1":
            boxes.append((props["name"].text, x, y, x + w, y + h))
    overlaps = [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]
    assert overlaps == [] and len(boxes) > 40
