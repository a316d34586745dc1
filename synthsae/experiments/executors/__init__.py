"""Sweep executors, one file each, registered by name in `EXECUTORS`:

    serial  in this process, one trial after another (debugging; exceptions show in full)
    local   parallel worker processes on this machine (the default)
    ray     tasks on a Ray cluster (`pip install synthsae[ray]`; ray is imported only when used)

An executor runs `synthsae.experiments.cells.execute` for each `Task` (a sweep trial, a recipe
cell); the driver stores every record, so every executor gives the same table.
"""

from synthsae.experiments.executors.base import EXECUTORS, Executor, Task, TrialTask
# Importing the modules registers them.
from synthsae.experiments.executors import local, ray_cluster, serial  # noqa: E402,F401

__all__ = ["EXECUTORS", "Executor", "Task", "TrialTask"]
