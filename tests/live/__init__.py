"""Tests of the live runtime over real JACK ports and real UDP."""
