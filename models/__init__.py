"""Bundled liveduet models (installed as ``liveduet.data``); each ``.onnx`` has a ``.md`` card."""
