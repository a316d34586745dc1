"""Pieces shared by the recipes: the training knobs every recipe has, SAE specs (a variant name
plus its hyperparameters, validated up front), train-and-evaluate, and small plotting helpers.

Conventions as everywhere in synthsae: decoders are (m, d) with atoms as rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from synthsae import tables
from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.metrics import Report, evaluate
from synthsae.plots import label_axes, new_figure
from synthsae.sae import SAE, TrainHistory, make, train
from synthsae.sae.base import SAE_CONFIGS
from synthsae.world import World
from synthsae.world.presets import PRESETS, preset_config


@dataclasses.dataclass(frozen=True)
class RecipeConfig(Config):
    """Knobs shared by every recipe.

    n_samples: training samples per SAE; batch_size; lr: Adam learning rate;
    eval_samples: fresh world samples each SAE is evaluated on (seeded `eval_seed`, disjoint from
    training batches, which use the SAE's own seed); world_seed: seed of the planted world.
    """

    n_samples: int = 1_000_000
    batch_size: int = 1024
    lr: float = 1e-3
    eval_samples: int = 50_000
    eval_seed: int = 12345
    world_seed: int = 0

    def validate(self) -> None:
        name = type(self).__name__
        require(isinstance(self.batch_size, int) and self.batch_size >= 1, f"{name}.batch_size", self.batch_size,
                "a batch needs samples", "an int >= 1")
        require(isinstance(self.n_samples, int) and self.n_samples >= self.batch_size, f"{name}.n_samples",
                self.n_samples, f"at least one batch of batch_size = {self.batch_size} is needed",
                f"an int >= {self.batch_size}")
        positive(self, "lr")
        require(isinstance(self.eval_samples, int) and self.eval_samples >= 2, f"{name}.eval_samples",
                self.eval_samples, "evaluation needs at least two samples", "an int >= 2")
        for field in ("eval_seed", "world_seed"):
            v = getattr(self, field)
            require(isinstance(v, int) and v >= 0, f"{name}.{field}", v, "seeds are non-negative ints", "an int >= 0")

    @property
    def n_steps(self) -> int:
        return self.n_samples // self.batch_size


# ---- validation helpers for recipe configs ---------------------------------------------------
def positive(cfg: Config, field: str) -> None:
    v = getattr(cfg, field)
    require(v > 0, f"{type(cfg).__name__}.{field}", v, "this value must be strictly positive", "a number > 0")


def in_unit_interval(cfg: Config, field: str, closed: bool = True) -> None:
    v = getattr(cfg, field)
    ok = 0 <= v <= 1 if closed else 0 < v < 1
    require(ok, f"{type(cfg).__name__}.{field}", v, "a fraction", "a float in [0, 1]" if closed else "a float in (0, 1)")


def nonempty_unique(cfg: Config, field: str, minimum: int = 1) -> None:
    v = getattr(cfg, field)
    require(len(v) >= minimum, f"{type(cfg).__name__}.{field}", v, f"needs at least {minimum} value(s)",
            f"a list of >= {minimum} distinct values")
    require(len(set(v)) == len(v), f"{type(cfg).__name__}.{field}", v, "values repeat", "distinct values")


def seeds_ok(cfg: Config, field: str = "seeds", minimum: int = 1) -> None:
    nonempty_unique(cfg, field, minimum)
    v = getattr(cfg, field)
    require(all(isinstance(s, int) and s >= 0 for s in v), f"{type(cfg).__name__}.{field}", v,
            "seeds are non-negative ints", "a list of ints >= 0")


def preset_ok(cfg: Config, field: str = "world") -> None:
    name = getattr(cfg, field)
    if name not in PRESETS:
        fail(f"{type(cfg).__name__}.{field}", name, "unknown world preset", f"one of {PRESETS.available()}")


def check_sae_spec(where: str, variant: str, hyper: dict[str, Any], m: int) -> None:
    """Raise ValueError unless `make(variant, d, m, **hyper)` would accept these hyperparameters."""
    if variant not in SAE_CONFIGS:
        fail(where, variant, "unknown SAE variant", f"one of {SAE_CONFIGS.available()}")
    require(isinstance(hyper, dict), where, hyper, "hyperparameters are a table", "a dict of SAE config fields")
    for key in ("d", "m"):
        require(key not in hyper, f"{where}.{key}", hyper.get(key), "set by the recipe", "leave it out")
    SAE_CONFIGS.get(variant).from_dict({"d": 8, "m": m, **hyper}, path=where)


def grid_axis(where: str, hyper: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A hyperparameter table with exactly one list-valued entry -> (its name, one dict per value)."""
    lists = [k for k, v in hyper.items() if isinstance(v, (list, tuple))]
    require(len(lists) == 1, where, hyper, f"exactly one hyperparameter must be a list (the sweep axis); found {lists}",
            'e.g. {"k": [4, 8, 16]}')
    axis = lists[0]
    require(len(hyper[axis]) >= 1, f"{where}.{axis}", hyper[axis], "the sweep axis is empty", "a non-empty list")
    return axis, [{**hyper, axis: v} for v in hyper[axis]]


# ---- worlds, training, evaluation ------------------------------------------------------------
def preset_world(cfg: RecipeConfig, params: dict[str, Any] | None = None):
    """The WorldConfig of a recipe whose every cell uses the preset `cfg.world` seeded `cfg.world_seed`."""
    return preset_config(cfg.world, seed=cfg.world_seed)


def make_world(preset: str, seed: int, **overrides: Any) -> World:
    """`World.preset(preset, seed=seed, **overrides)`."""
    return World.preset(preset, seed=seed, **overrides)


def train_sae(variant: str, world: World, m: int, hyper: dict[str, Any], cfg: RecipeConfig, seed: int,
              device: torch.device, progress: bool, data_seed: int | None = None, lr: float | None = None,
              **train_kwargs: Any) -> tuple[SAE, TrainHistory]:
    """Build `variant` with m latents (init seeded `seed`) and train it on `world` with the recipe's
    n_samples / batch_size / lr (or `lr`); data batches are seeded `data_seed` (default: `seed`)."""
    sae = make(variant, d=world.d, m=m, seed=seed, **hyper)
    history = train(sae, world, n_samples=cfg.n_samples, batch_size=cfg.batch_size, lr=cfg.lr if lr is None else lr,
                    seed=seed if data_seed is None else data_seed, device=device, progress=progress, **train_kwargs)
    sae.eval()
    return sae, history


EVAL_CORE = ("reconstruction", "recovery")


def evaluate_sae(sae: SAE, world: World, cfg: RecipeConfig, metrics: Sequence[str] = EVAL_CORE, **kw: Any) -> Report:
    """`synthsae.evaluate` on the recipe's evaluation samples."""
    return evaluate(sae, world, n=cfg.eval_samples, seed=cfg.eval_seed, metrics=tuple(metrics), **kw)


def pick(report: Report, keys: Sequence[str]) -> dict[str, float]:
    """{key: float} for the given `Report.metrics` keys (NaN for a key the report does not have)."""
    return {k: float(report.metrics.get(k, float("nan"))) for k in keys}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN std for one value), ignoring NaNs."""
    a = np.asarray([v for v in values if not (isinstance(v, float) and math.isnan(v))], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


def fmt(v: float, digits: int = 3) -> str:
    """A number in a check's evidence: `synthsae.tables.fmt` to `digits` significant digits."""
    return tables.fmt(v, digits)


def matched_difference(pts: list[dict], ref: list[dict], l0: str, ev: str) -> float:
    """Mean of y(pts) - y(ref) at matched x, for two curves given as row dicts with x = row[l0] > 0 and
    y = row[ev]: each curve is interpolated linearly in log x at every measured x of either curve
    inside the overlap of their x ranges. NaN when the ranges do not overlap."""
    pts, ref = sorted(pts, key=lambda p: p[l0]), sorted(ref, key=lambda p: p[l0])
    xv = np.log([max(p[l0], 1e-9) for p in pts])
    yv = np.array([p[ev] for p in pts])
    xr = np.log([max(p[l0], 1e-9) for p in ref])
    yr = np.array([p[ev] for p in ref])
    lo, hi = max(xv.min(), xr.min()), min(xv.max(), xr.max())
    grid = np.concatenate([xr[(xr >= lo) & (xr <= hi)], xv[(xv >= lo) & (xv <= hi)]])
    if grid.size == 0 or lo > hi:
        return float("nan")
    return float(np.mean(np.interp(grid, xv, yv) - np.interp(grid, xr, yr)))


# ---- plots ----------------------------------------------------------------------------------
def line_figure(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str, title: str,
                logx: bool = False, hlines: Sequence[tuple[float, str]] = ()):
    """One line per series name: (x, y). Returns a matplotlib Figure."""
    fig, ax = new_figure(figsize=(5.5, 3.8))
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o", ms=3, lw=1.5, label=name)
    for y, label in hlines:
        ax.axhline(y, color="gray", ls=":", lw=1)
        ax.text(ax.get_xlim()[0], y, f" {label}", fontsize=7, va="bottom", color="gray")
    if logx:
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, ... in plain numbers
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    label_axes(ax, xlabel, ylabel, title)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bar_figure(values: dict[str, float], errors: dict[str, float] | None, ylabel: str, title: str):
    """A bar per name (optional error bars). Returns a matplotlib Figure."""
    names = list(values)
    fig, ax = new_figure(figsize=(5.5, 3.8))
    err = [0.0 if errors is None or math.isnan(errors.get(n, float("nan"))) else errors[n] for n in names]
    ax.bar(range(len(names)), [values[n] for n in names], yerr=err, color="tab:blue", capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# ---- verdict guards -------------------------------------------------------------------------
def require_trained(checks: list, evs: dict[str, float], min_ev: float) -> list:
    """If any SAE named in `evs` (name -> explained variance) is below `min_ev`, every check becomes
    inconclusive (outcome None): a claim about trained SAEs cannot be judged on untrained ones."""
    from synthsae.experiments.recipes.base import Check

    low = {k: v for k, v in evs.items() if not v >= min_ev}
    if not low:
        return checks
    why = ", ".join(f"{k} EV {fmt(v)}" for k, v in low.items())
    return [Check(c.statement, None, f"{c.evidence.rstrip('.')}. Inconclusive: undertrained ({why} < min_ev = {min_ev}); "
                                     "would have been: " + {True: "held", False: "did not hold", None: "inconclusive"}[c.outcome])
            for c in checks]
