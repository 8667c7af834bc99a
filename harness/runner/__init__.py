"""Runners: execute a grid of runs locally (torchrun and Docker come on top; Slurm jobs
through submitit, one per cell: :mod:`harness.runner.slurm`)."""
