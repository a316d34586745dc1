"""`serial`: every cell in this process, one after another (for debugging; the recipes' default)."""

from __future__ import annotations

from synthsae.experiments import cells
from synthsae.experiments.executors.base import Executor, register


@register("serial")
class SerialExecutor(Executor):
    """In-process, in order. n_workers is ignored (always one)."""

    progress = False

    def run(self, tasks, on_done) -> None:
        for task in tasks:
            on_done(task, cells.execute(task, progress=self.progress))
