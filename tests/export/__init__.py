"""Tests of training and export (the train extra)."""
