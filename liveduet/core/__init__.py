"""The pure core: codec, model, sampling, engine, planner, harmony and the conductor.

Time is an argument here: nothing reads a clock, starts a thread or opens a port.
"""
