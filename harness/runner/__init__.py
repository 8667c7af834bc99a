"""Runners: execute a grid of runs locally (torchrun and Docker come on top)."""
