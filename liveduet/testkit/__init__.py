"""What the tests and benchmarks share: a private JACK dummy server, synthetic ONNX models,
MIDI stream checks and engine helpers."""
