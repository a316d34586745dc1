"""A bench task: one world built to isolate one phenomenon, plus the metrics that read it.

A task is a subclass of `BenchTask` registered in `TASKS` (one file per task in
`synthsae/bench/tasks/`; a user registers their own with `@register_task`). It declares

* `scale(tier) -> Scale`: the world (a `WorldConfig`), the SAE width `m`, the matched L0 `k`
  and the training budget at a tier ("micro" for tests, "lite", "full");
* `metrics`: the `Metric`s it reports (key, label, which direction is better); `headline`: the
  key its leaderboard ranks by;
* `measure(sae, world, scale, seed) -> {key: float}`: every metric of one trained SAE (also of the
  reference rows: the true dictionary with exact codes, and a random SAE);
* optionally `across_seeds(decoders, world, scale) -> [{key: float}, ...]`: metrics that need
  the SAEs of every seed together (cross-seed stability), one dict per seed.

Conventions as everywhere: decoders are (m, d) with atoms as rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from synthsae.registry import Registry

TIERS = ("micro", "lite", "full")


@dataclasses.dataclass(frozen=True)
class Metric:
    """key: column name (as in results.csv); label: table header; higher: True when larger is better
    (None: descriptive, not ranked)."""

    key: str
    label: str
    higher: bool | None = True


@dataclasses.dataclass(frozen=True)
class Scale:
    """One task at one tier. world: WorldConfig; m: SAE width; k: the matched L0 of every SAE;
    n_samples, batch_size, lr: training (Adam, linear lr decay over the last `decay` fraction);
    eval_n: fresh samples each SAE is scored on (seeded apart from training); note: shown in the
    report; extra_k: more matched L0s (more cells); hyper: variant -> extra hyperparameters."""

    world: Any
    m: int
    k: int
    n_samples: int
    batch_size: int
    lr: float
    eval_n: int
    decay: float = 0.2
    note: str = ""
    extra_k: tuple[int, ...] = ()
    hyper: dict = dataclasses.field(default_factory=dict)

    @property
    def ks(self) -> tuple[int, ...]:
        """Every matched L0 the task runs at (`k` first; `extra_k` adds cells, e.g. SynthSAEBench's L0 = 20)."""
        return (self.k, *self.extra_k)


class BenchTask:
    """Base class of the tasks (see module docstring)."""

    name: ClassVar[str] = "base"
    title: ClassVar[str] = ""
    phenomenon: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = ()
    headline: ClassVar[str] = ""
    # reference rows this task shows (the probe needs a world whose true codes can be read)
    references: ClassVar[tuple[str, ...]] = ("ceiling", "probe", "random")

    def scale(self, tier: str) -> Scale:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, sae, world, scale: Scale, seed: int) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def across_seeds(self, decoders: list, world, scale: Scale) -> list[dict[str, float]] | None:
        return None

    def metric(self, key: str) -> Metric:
        for mt in self.metrics:
            if mt.key == key:
                return mt
        raise KeyError(key)


TASKS: Registry[BenchTask] = Registry("bench task")


def scale_of(name: str, tier: str, budget: float = 1.0) -> Scale:
    """Task `name`'s `Scale` at `tier` with its training samples multiplied by `budget` (at least one
    batch): the knob that trades wall time for convergence."""
    scale = TASKS.get(name).scale(tier)
    if budget == 1.0:
        return scale
    return dataclasses.replace(scale, n_samples=max(scale.batch_size, int(round(scale.n_samples * budget))))


def register_task(cls: type[BenchTask]) -> type[BenchTask]:
    """Class decorator: register a task instance under `cls.name`."""
    TASKS.register(cls.name)(cls())
    return cls


def all_tasks() -> list[str]:
    """Task names in the order they were registered (the report's order)."""
    import synthsae.bench.tasks  # noqa: F401  (registers the built-in tasks)

    return list(TASKS._items)
