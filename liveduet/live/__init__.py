"""The live runtime: the conductor thread, MIDI ports, JACK, Link, OSC and CC control, and
the helper threads that work ahead."""
