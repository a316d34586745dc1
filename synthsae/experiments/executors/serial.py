"""`serial`: every trial in this process, one after another (for debugging)."""

from __future__ import annotations

from synthsae.experiments.executors.base import Executor, register
from synthsae.experiments.trial import run_trial


@register("serial")
class SerialExecutor(Executor):
    """In-process, in order. n_workers is ignored (always one)."""

    def run(self, tasks, on_done) -> None:
        for task in tasks:
            on_done(task, run_trial(task.config, task.out_dir, task.device))
