"""Training and export tooling for liveduet models (PyTorch + music21; never imported at runtime).

Run from the repository root, e.g. ``python -m export.build folk_melody``.
"""
