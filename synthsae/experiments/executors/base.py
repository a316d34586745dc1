"""The executor contract and its registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from synthsae.registry import Registry


@dataclasses.dataclass(frozen=True)
class TrialTask:
    """One trial to run: its id, its resolved experiment config (a plain dict, so it crosses process
    boundaries without pickling any synthsae object), its output folder and the device."""

    trial_id: str
    config: dict[str, Any]
    out_dir: str
    device: str | None = None


class Executor:
    """Runs trials. `run(tasks, on_done)` returns when every task has finished (or failed) and calls
    `on_done(task, record)` for each, in completion order, with the record `run_trial` returned
    (or a failure record the executor made when the trial could not report, e.g. a crashed worker)."""

    name = "base"

    def __init__(self, n_workers: int | None = None, **options: Any):
        if options:
            raise ValueError(f"executor {self.name!r} takes no option(s) {sorted(options)}")
        if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"n_workers = {n_workers!r} is invalid: expected an int >= 1")
        self.n_workers = n_workers

    def run(self, tasks: list[TrialTask], on_done: Callable[[TrialTask, dict], None]) -> None:  # pragma: no cover
        raise NotImplementedError


EXECUTORS: Registry[type[Executor]] = Registry("sweep executor")


def register(name: str):
    """Class decorator registering an `Executor` subclass under `name`."""

    def decorate(cls: type[Executor]) -> type[Executor]:
        cls.name = name
        EXECUTORS.register(name)(cls)
        return cls

    return decorate
