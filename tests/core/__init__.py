"""Tests of the pure core, in virtual time."""
