"""Tests of offline rendering, MIDI files and evaluation."""
