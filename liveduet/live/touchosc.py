"""Build the TouchOSC (Mk2) layout for liveduet from the OSC address map.

A ``.tosc`` file is zlib-compressed XML: a ``<lexml version='3'>`` document whose nodes (GROUP,
FADER, BUTTON, RADIO, LABEL) carry properties, values and OSC messages. Every address of
:data:`liveduet.core.oscmap.ADDRESSES` gets a control; controls for echoed addresses also receive
their own address, so they follow liveduet. The output is deterministic (ids derive from names).

Run ``python -m liveduet.live.touchosc -o liveduet.tosc``; the package ships the result as
``liveduet/layouts/liveduet.tosc`` (see :func:`shipped_layout`).
"""

from __future__ import annotations

import argparse
import sys
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from liveduet.core.catalog import DEFAULT_HARMONY, DEFAULT_MELODY
from liveduet.core.oscmap import LEARN_TARGETS, PREFIX, TRIGGERS
from liveduet.core.settings import FIELD_BY_NAME, Act

WIDTH, HEIGHT = 1280, 800
FADERS = ("temperature", "top_p", "bpm", "density", "low", "high", "listen_gap",
          "response_bars", "response_min_bars", "response_max_bars", "channel", "velocity",
          "seed", "candidates", "develop", "max_copy")
MODELS = (DEFAULT_MELODY, DEFAULT_HARMONY)
Colour = tuple[float, float, float, float]
BG: Colour = (0.08, 0.09, 0.11, 1.0)
TEXT: Colour = (0.92, 0.92, 0.92, 1.0)
ACCENT: Colour = (0.25, 0.70, 0.95, 1.0)
ACTION: Colour = (0.95, 0.55, 0.20, 1.0)
DANGER: Colour = (0.90, 0.25, 0.25, 1.0)
LEARN: Colour = (0.55, 0.45, 0.90, 1.0)
_NS = uuid.UUID("6f1f8a52-5b3e-4c4e-9a55-6c6976656475")
Frame = tuple[float, float, float, float]


def _num(v: float) -> str:
    """A number as TouchOSC writes it: whole numbers without a point, else shortest repr."""
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(round(v, 3))


def _short(name: str) -> str:
    """A caption that fits a small control: 'response_min_bars' -> 'answer min'."""
    return name.replace("response_bars", "answer bars").replace("response_", "answer ") \
        .replace("_bars", "").replace("_", " ")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _prop(props: ET.Element, kind: str, key: str, value: object) -> None:
    prop = ET.SubElement(props, "property", type=kind)
    _sub(prop, "key", key)
    val = _sub(prop, "value")
    if kind == "r":
        for tag, v in zip("xywh", value, strict=True):  # type: ignore[call-overload]
            _sub(val, tag, _num(v))
    elif kind == "c":
        for tag, v in zip("rgba", value, strict=True):  # type: ignore[call-overload]
            _sub(val, tag, _num(v))
    elif kind == "b":
        val.text = "1" if value else "0"
    else:
        val.text = str(value)


def _value(values: ET.Element, key: str, default: str) -> None:
    val = _sub(values, "value")
    for tag, text in (("key", key), ("locked", "0"), ("lockedDefaultCurrent", "0"),
                      ("default", default), ("defaultPull", "0")):
        _sub(val, tag, text)


def _partial(parent: ET.Element, kind: str, conversion: str, value: str,
             low: float = 0.0, high: float = 1.0) -> None:
    part = _sub(parent, "partial")
    for tag, text in (("type", kind), ("conversion", conversion), ("value", value),
                      ("scaleMin", _num(low)), ("scaleMax", _num(high))):
        _sub(part, tag, text)


def _osc(messages: ET.Element, path: str, args: Sequence[tuple[str, str, str, float, float]],
         *, send: bool, receive: bool, trigger: str = "ANY") -> None:
    """One OSC message: ``args`` are (type, conversion, value, scaleMin, scaleMax) partials."""
    osc = _sub(messages, "osc")
    for tag, flag in (("enabled", True), ("send", send), ("receive", receive),
                      ("feedback", False), ("noDuplicates", False)):
        _sub(osc, tag, "1" if flag else "0")
    _sub(osc, "connections", "11111")
    trig = _sub(_sub(osc, "triggers"), "trigger")
    _sub(trig, "var", "x")
    _sub(trig, "condition", trigger)
    _partial(_sub(osc, "path"), "CONSTANT", "STRING", path)
    arguments = _sub(osc, "arguments")
    for arg in args:
        _partial(arguments, *arg)


class Node(NamedTuple):
    """The parts of one ``<node>`` that controls fill in."""

    props: ET.Element
    values: ET.Element
    messages: ET.Element
    children: ET.Element


def _node(parent: ET.Element, kind: str, name: str, frame: Frame, colour: Colour,
          *, interactive: bool = True, background: bool = True) -> Node:
    node = ET.SubElement(parent, "node", ID=str(uuid.uuid5(_NS, name)), type=kind)
    parts = Node(*(_sub(node, tag) for tag in ("properties", "values", "messages", "children")))
    _prop(parts.props, "s", "name", name)
    _prop(parts.props, "r", "frame", frame)
    _prop(parts.props, "c", "color", colour)
    _prop(parts.props, "b", "background", background)
    _prop(parts.props, "b", "outline", True)
    _prop(parts.props, "b", "interactive", interactive)
    _prop(parts.props, "b", "visible", True)
    return parts


class Layout:
    """Accumulates controls under one root GROUP (later ones draw on top)."""

    def __init__(self) -> None:
        self.root = ET.Element("lexml", version="3")
        self.group = _node(self.root, "GROUP", "liveduet", (0, 0, WIDTH, HEIGHT), BG)

    def add(self, kind: str, name: str, frame: Frame, colour: Colour, **kw: bool) -> Node:
        """A new control node in the root group."""
        return _node(self.group.children, kind, name, frame, colour, **kw)

    def label(self, name: str, frame: Frame, text: str, *, size: int = 14,
              receive: str | None = None, background: bool = False) -> None:
        node = self.add("LABEL", name, frame, (0.2, 0.22, 0.26, 1.0), interactive=False,
                        background=background)
        _prop(node.props, "i", "textSize", size)
        _prop(node.props, "c", "textColor", TEXT)
        _value(node.values, "text", text)
        if receive:
            _osc(node.messages, receive, [("VALUE", "STRING", "text", 0, 1)], send=False,
                 receive=True)

    def button(self, name: str, frame: Frame, colour: Colour, path: str, caption: str, *,
               constant: str | None = None, toggle: bool = False) -> None:
        node = self.add("BUTTON", name, frame, colour)
        _prop(node.props, "i", "buttonType", 1 if toggle else 0)
        _value(node.values, "x", "0")
        args: list[tuple[str, str, str, float, float]] = []
        if constant is not None:
            args.append(("CONSTANT", "STRING", constant, 0, 1))
        args.append(("VALUE", "FLOAT", "x", 0, 1))
        _osc(node.messages, path, args, send=True, receive=toggle,
             trigger="ANY" if toggle else "RISE")
        self.label(f"{name}-caption", frame, caption, size=13)

    def fader(self, name: str, frame: Frame, low: float, high: float, integer: bool) -> None:
        node = self.add("FADER", name, frame, ACCENT)
        _prop(node.props, "i", "orientation", 0)
        _value(node.values, "x", "0")
        _osc(node.messages, f"{PREFIX}/{name}",
             [("VALUE", "INTEGER" if integer else "FLOAT", "x", low, high)],
             send=True, receive=True)

    def radio(self, name: str, frame: Frame, captions: Sequence[str], *, send: bool = True,
              colour: Colour = ACCENT) -> None:
        node = self.add("RADIO", name, frame, colour, interactive=send)
        _prop(node.props, "i", "steps", len(captions))
        _value(node.values, "x", "0")
        _osc(node.messages, f"{PREFIX}/{name}", [("VALUE", "INTEGER", "x", 0, 1)], send=send,
             receive=True)
        x, y, w, h = frame
        step = w / len(captions)
        for i, text in enumerate(captions):
            self.label(f"{name}-{i}", (x + i * step, y, step, h), text, size=11)


def build() -> Layout:
    """The whole liveduet layout, laid out on one 1280x800 page."""
    lay = Layout()
    _transport(lay)
    _choices(lay)
    _faders(lay)
    _models_and_learn(lay)
    return lay


def _transport(lay: Layout) -> None:
    colours = {Act.PANIC: DANGER, Act.STOP: DANGER}
    for i, name in enumerate(TRIGGERS):
        lay.button(name, (10 + i * 120, 10, 110, 60), colours.get(name, ACTION),
                   f"{PREFIX}/{name}", _short(name))
    lay.button("thru", (730, 10, 110, 60), ACCENT, f"{PREFIX}/thru", "thru", toggle=True)
    lay.label("phase", (850, 10, 210, 60), "phase", size=18, receive=f"{PREFIX}/phase",
              background=True)
    lay.radio("beat", (1070, 10, 200, 60), ["1", "2", "3", "4", "5", "6", "7"], send=False,
              colour=ACTION)


def _choices(lay: Layout) -> None:
    frames: dict[str, Frame] = {"mode": (10, 80, 480, 50), "scale": (500, 80, 500, 50),
                                "voice_leading": (1010, 80, 260, 50),
                                "key": (10, 140, 760, 50), "meter": (780, 140, 340, 50),
                                "answer_at": (1130, 140, 140, 50)}
    for name, frame in frames.items():
        lay.radio(name, frame, FIELD_BY_NAME[name].choices)


def _faders(lay: Layout) -> None:
    step = (WIDTH - 20) / len(FADERS)
    for i, name in enumerate(FADERS):
        f = FIELD_BY_NAME[name]
        x = 10 + i * step
        lay.label(f"{name}-title", (x, 200, step - 8, 24), _short(name), size=11)
        lay.fader(name, (x, 228, step - 8, 350), float(f.low or 0), float(f.high or 0),
                  f.kind == "int")
        echo = f"{PREFIX}/tempo" if name == "bpm" else f"{PREFIX}/{name}"
        lay.label(f"{name}-value", (x, 584, step - 8, 36), "-", size=14, receive=echo,
                  background=True)


def _models_and_learn(lay: Layout) -> None:
    lay.label("model-caption", (10, 630, 110, 50), "model", size=14)
    for i, name in enumerate(MODELS):
        lay.button(f"model-{name}", (130 + i * 170, 630, 160, 50), ACCENT, f"{PREFIX}/{Act.MODEL}",
                   name, constant=name)
    lay.label("model", (480, 630, 390, 50), "model title", size=14,
              receive=f"{PREFIX}/{Act.MODEL}", background=True)
    lay.label("message", (880, 630, 300, 50), "", size=12, receive=f"{PREFIX}/message",
              background=True)
    lay.label("dropped", (1190, 630, 80, 50), "0", size=12, receive=f"{PREFIX}/dropped",
              background=True)
    lay.label("learn", (10, 690, 110, 100), "learn", size=13, receive=f"{PREFIX}/{Act.LEARN}",
              background=True)
    targets = (*LEARN_TARGETS, "cancel")
    per_row = (len(targets) + 1) // 2
    step = (WIDTH - 140) / per_row
    for i, target in enumerate(targets):
        row, col = divmod(i, per_row)
        lay.button(f"learn-{target}", (130 + col * step, 690 + row * 55, step - 8, 45),
                   DANGER if target == "cancel" else LEARN, f"{PREFIX}/learn",
                   _short(target), constant=target)


def to_bytes(layout: Layout) -> bytes:
    """The ``.tosc`` bytes: UTF-8 XML with declaration, zlib-compressed (deterministic)."""
    xml = ET.tostring(layout.root, encoding="UTF-8", xml_declaration=True,
                      short_empty_elements=False)
    return zlib.compress(xml, 9)


def addresses_in(data: bytes) -> set[str]:
    """Every OSC path used by a ``.tosc`` file's messages (raises on a broken file)."""
    root = ET.fromstring(zlib.decompress(data))
    return {(p.findtext("value") or "") for p in root.iterfind(".//osc/path/partial")}


def shipped_layout() -> Path:
    """The layout file shipped in the package."""
    return Path(str(resources.files("liveduet") / "layouts" / "liveduet.tosc"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m liveduet.live.touchosc -o PATH``: write the layout."""
    parser = argparse.ArgumentParser(prog="python -m liveduet.live.touchosc",
                                     description="Write the liveduet TouchOSC layout (.tosc).")
    parser.add_argument("-o", "--output", default="liveduet.tosc", help="file to write")
    args = parser.parse_args(argv)
    data = to_bytes(build())
    try:
        Path(args.output).write_bytes(data)
    except OSError as err:
        print(f"{parser.prog}: error: cannot write {args.output} ({err.strerror}); check that "
              "the folder exists and is writable", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(data)} bytes, {len(addresses_in(data))} OSC addresses)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
