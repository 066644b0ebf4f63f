"""Offline work in virtual time: render, MIDI files, piano rolls, evaluation."""
