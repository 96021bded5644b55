"""Keeping a fleet polling through misbehaving meters, a stuck loop and bad input.

Nothing here imports ThingsBoard: the gateway layer wires these pieces into devices and the
connector, and unit tests drive them with fake clocks.
"""
