"""Sweep executors, one file each, registered by name in `EXECUTORS`:

    serial  in this process, one trial after another (debugging; exceptions show in full)
    local   parallel worker processes on this machine (the default)
    ray     tasks on a Ray cluster (`pip install synthsae[ray]`; ray is imported only when used)

An executor runs `synthsae.experiments.trial.run_trial` for each `TrialTask`; the trial writes its
own result file, so every executor gives the same table.
"""

from synthsae.experiments.executors.base import EXECUTORS, Executor, TrialTask
# Importing the modules registers them.
from synthsae.experiments.executors import local, ray_cluster, serial  # noqa: E402,F401

__all__ = ["EXECUTORS", "Executor", "TrialTask"]
