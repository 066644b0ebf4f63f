"""liveduet: a real-time MIDI co-performer driven by an ONNX step model."""

from liveduet.errors import LiveduetError

__version__ = "0.1.0"
__all__ = ["LiveduetError", "__version__"]
