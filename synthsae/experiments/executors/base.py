"""The executor contract and its registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthsae.errors import fail, require
from synthsae.experiments.cells import Task
from synthsae.registry import Registry


# A unit of work is a `synthsae.experiments.cells.Task` (a sweep trial, a recipe cell, ...).
TrialTask = Task  # the name of earlier versions


class Executor:
    """Runs cells. `run(tasks, on_done)` returns when every task has finished (or failed) and calls
    `on_done(task, record)` for each, in completion order, with the record `cells.execute` returned
    (or a failure record the executor made when the cell could not report, e.g. a crashed worker).
    Executors whose workers do not share the driver's filesystem run cells in a scratch folder and
    return their files in the record; the driver writes them (`cells.store`)."""

    name = "base"

    def __init__(self, n_workers: int | None = None, **options: Any):
        if options:
            fail(f"executor {self.name!r} options", sorted(options), "this executor takes no such option",
                 "no options (address= is an option of the ray executor)")
        require(n_workers is None or (isinstance(n_workers, int) and not isinstance(n_workers, bool) and n_workers >= 1),
                "n_workers", n_workers, "it is the number of parallel workers", "an int >= 1 (--workers N)")
        self.n_workers = n_workers

    def run(self, tasks: list[Task], on_done: Callable[[Task, dict], None]) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release what `run` kept for the next call (worker processes, a Ray instance it started)."""


EXECUTORS: Registry[type[Executor]] = Registry("sweep executor")


def register(name: str):
    """Class decorator registering an `Executor` subclass under `name`."""

    def decorate(cls: type[Executor]) -> type[Executor]:
        cls.name = name
        EXECUTORS.register(name)(cls)
        return cls

    return decorate
