"""Pieces shared by the recipes: the training knobs every recipe has, SAE specs (a variant name
plus its hyperparameters, validated up front), train-and-evaluate, and small plotting helpers.

Conventions as everywhere in synthsae: decoders are (m, d) with atoms as rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthsae import stats, tables
from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.metrics import Report, evaluate
from synthsae.plots import label_axes, new_figure
from synthsae.sae import SAE, TrainHistory, make, train
from synthsae.sae.base import SAE_CONFIGS
from synthsae.sae.train import TrainSettings
from synthsae.world import World
from synthsae.world.presets import PRESETS


@dataclasses.dataclass(frozen=True)
class RecipeConfig(Config):
    """Knobs shared by every recipe.

    n_samples: training samples per SAE; batch_size; lr: Adam learning rate;
    eval_samples: fresh world samples each SAE is evaluated on (seeded `eval_seed`, disjoint from
    training batches, which use the SAE's own seed); world_seed: seed of the planted world.
    """

    n_samples: int = 1_000_000
    batch_size: int = 1024
    lr: float = 1e-2  # Adam; 1e-3 left SAEs far from converged at these budgets (docs/recipes.md)
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
    """`cfg.<field>` names a world: a preset, a world TOML / JSON file, or a folder saved by
    `synthsae world --save` / `World.save` (see `world_config`)."""
    name = getattr(cfg, field)
    where = f"{type(cfg).__name__}.{field}"
    require(isinstance(name, str) and name != "", where, name, "a world is named by a string",
            f"a preset ({', '.join(PRESETS.available())}) or a path to a world TOML or saved world folder")
    if name in PRESETS:
        return
    path = Path(name)
    if not path.exists():
        fail(where, name, "neither a world preset nor an existing path",
             f"one of {PRESETS.available()}, or a world TOML file / saved world folder")
    if path.is_dir() and not (path / "config.json").is_file():
        fail(where, name, "this folder has no config.json, so it is not a saved world",
             "a folder written by `synthsae world --save` (or World.save), or a world TOML file")


world_ok = preset_ok


def world_config(spec: str, seed: int = 0):
    """The `WorldConfig` a recipe's `world` field names: a preset (built with `seed`: the recipe's
    world_seed), a world TOML / JSON file (`WorldConfig.load`; its own seed, world_seed is ignored)
    or a saved world folder (the config it was saved with; its own seed). A saved world is rebuilt
    from its config, which reproduces it for every world built from a config (`World.save` records
    the config the tensors were built with)."""
    from synthsae.io import read_json
    from synthsae.world import WorldConfig
    from synthsae.world.presets import preset_config

    if spec in PRESETS:
        return preset_config(spec, seed=seed)
    path = Path(spec)
    if path.is_dir():
        meta = read_json(path / "config.json")
        require(isinstance(meta, dict) and "world" in meta, str(path / "config.json"), type(meta).__name__,
                "not a saved world's config", "a folder written by World.save")
        return WorldConfig.from_dict(meta["world"], path=str(path / "config.json"))
    return WorldConfig.load(path)


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
    """The WorldConfig of a recipe whose every cell uses the world `cfg.world` (a preset seeded
    `cfg.world_seed`, a world TOML / JSON file or a saved world folder: `world_config`)."""
    return world_config(cfg.world, cfg.world_seed)


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
def line_figure(series: dict[str, tuple], xlabel: str, ylabel: str, title: str, logx: bool = False,
                hlines: Sequence[tuple[float, str]] = (), logy: bool = False):
    """One line per series name: (x, y) or (x, y, yerr) -- yerr (same length as y; NaN = none) is drawn
    as error bars (recipes pass the half-width of the 95% CI over seeds, `stats.summarize`). Log axes
    get plain-number ticks at 1, 2, 5 x 10^k. Returns a matplotlib Figure."""
    fig, ax = new_figure(figsize=(5.5, 3.8))
    for name, xy in series.items():
        x, y = xy[0], xy[1]
        err = xy[2] if len(xy) > 2 else None
        if err is not None:
            e = np.asarray([0.0 if v is None or not math.isfinite(v) else v for v in err], dtype=float)
            ax.errorbar(x, y, yerr=e, marker="o", ms=3, lw=1.5, capsize=3, label=name)
        else:
            ax.plot(x, y, marker="o", ms=3, lw=1.5, label=name)
    for y, label in hlines:
        ax.axhline(y, color="gray", ls=":", lw=1)
        ax.text(ax.get_xlim()[0], y, f" {label}", fontsize=7, va="bottom", color="gray")
    if logx:
        ax.set_xscale("log")
        _readable_log_ticks(ax.xaxis)
    if logy:
        ax.set_yscale("log")
        _readable_log_ticks(ax.yaxis)
    label_axes(ax, xlabel, ylabel, title)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _readable_log_ticks(axis) -> None:
    """Major ticks at 1, 2, 5 x 10^k written as plain numbers (0.01, 0.02, ..., 1000), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


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


# ---- uncertainty over seeds (synthsae.stats) -------------------------------------------------
def finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summary_text(values: Sequence[float], digits: int = 3) -> str:
    """`stats.summarize(values).text()` over the finite values ("n/a" if none; NaNs counted)."""
    kept = finite(values)
    if not kept:
        return "n/a"
    text = stats.summarize(kept).text(digits)
    missing = len(values) - len(kept)
    return text + (f" [{missing} NaN left out]" if missing else "")


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval) over the finite values; NaN where undefined (for
    error bars)."""
    kept = finite(values)
    if not kept:
        return float("nan"), float("nan")
    s = stats.summarize(kept)
    return s.mean, (s.hi - s.lo) / 2 if s.n > 1 else float("nan")


NOISE_RULES = ("inconclusive", "did not hold")


def directional_check(statement: str, a: Sequence[float], b: Sequence[float], *, expect: int,
                      names: tuple[str, str], quantity: str, opposite: str, noise: str = "inconclusive",
                      uses: tuple[str, ...] = (), sub_claim: bool = False, digits: int = 3,
                      threshold: float = stats.DEFAULT_THRESHOLD):
    """A check of "a is larger than b" (expect=+1) or "a is smaller than b" (expect=-1) from per-seed
    values, with `stats.compare` (difference beyond `threshold` standard errors):

    * the expected direction       -> held;
    * the opposite direction       -> did not hold, with `finding` "<opposite>: <a> vs <b>" (the
                                      verdict line repeats it, e.g. "AEN increases starvation: ...");
    * within noise                 -> `noise`: "inconclusive" (default: a claim of a difference is
                                      not refuted by a non-detection) or "did not hold" (for claims
                                      whose form is "clearly better", where no detectable difference
                                      is itself a failure);
    * fewer than 2 seeds on a side -> inconclusive.
    a, b: per-seed values (finite; paired or not); names: the two sides' names; quantity: what is
    compared (for the evidence); opposite: the sentence that states the reverse finding."""
    from synthsae.experiments.recipes.base import Check

    require(expect in (1, -1), "directional_check.expect", expect, "a direction", "+1 (a > b) or -1 (a < b)")
    require(noise in NOISE_RULES, "directional_check.noise", noise, "the rule for a difference within noise",
            f"one of {list(NOISE_RULES)}")
    fa, fb = finite(a), finite(b)
    if not fa or not fb:
        return Check(statement, None, f"{quantity}: no finite values ({names[0]}: {len(fa)}, {names[1]}: {len(fb)})",
                     uses=uses, sub_claim=sub_claim)
    cmp = stats.compare(fa, fb, threshold)
    ta, tb = summary_text(fa, digits), summary_text(fb, digits)
    evidence = (f"{quantity}: {names[0]} {ta} vs {names[1]} {tb}; {cmp.text(names[0], names[1], digits)} "
                f"(rule: held when the difference is beyond {threshold:g} SE in the claimed direction, did not hold "
                f"beyond it in the other, {noise} within noise)")
    finding = ""
    if cmp.direction is None:
        outcome = None
    elif cmp.direction == expect:
        outcome = True
    elif cmp.direction == -expect:
        outcome = False
        finding = f"{opposite}: {quantity} {names[0]} {ta} vs {names[1]} {tb}"
    else:
        outcome = None if noise == "inconclusive" else False
    return Check(statement, outcome, evidence, finding=finding, sub_claim=sub_claim, uses=uses)


def threshold_check(statement: str, values: Sequence[float], criterion: float, *, expect: int, quantity: str,
                    opposite: str, digits: int = 3, threshold: float = stats.DEFAULT_THRESHOLD):
    """A check of "the per-seed `values` lie above (expect=+1) / below (expect=-1) `criterion`": the
    mean is *called* on one side when it is more than `threshold` standard errors of the mean away from
    the criterion (the same rule as `directional_check`, against a constant). Expected side ->
    held; the other side -> did not hold with the finding "<opposite>: <values>"; within noise, or
    fewer than 2 finite values -> inconclusive."""
    from synthsae.experiments.recipes.base import Check

    require(expect in (1, -1), "threshold_check.expect", expect, "a direction", "+1 (above) or -1 (below)")
    vals = finite(values)
    side = "above" if expect == 1 else "below"
    rule = (f"rule: held when the mean is {side} {criterion:g} by more than {threshold:g} SE, did not hold when "
            f"beyond {threshold:g} SE on the other side, inconclusive within noise")
    if len(vals) < 2:
        return Check(statement, None, f"{quantity}: {summary_text(values, digits)}; needs >= 2 seeds with a finite "
                                      f"value ({rule})")
    s = stats.summarize(vals)
    text = summary_text(values, digits)
    diff = s.mean - criterion
    evidence = f"{quantity}: {text}; mean − {criterion:g} = {diff:.{digits}g}, SE {s.se:.2g} ({rule})"
    if abs(diff) > threshold * s.se:
        if (diff > 0) == (expect == 1):
            return Check(statement, True, evidence)
        return Check(statement, False, evidence, finding=f"{opposite}: {quantity} {text}")
    return Check(statement, None, evidence)


def sign_check(statement: str, values, *, quantity: str, opposite: str, uses: tuple[str, ...] = ()):
    """Held when the 95% t-interval over seeds of `values` lies above 0, did not hold (finding
    `opposite`) when it lies below 0, inconclusive when it contains 0 or fewer than 2 finite values."""
    from synthsae.experiments.recipes.base import Check

    kept = finite(values)
    if len(kept) < 2:
        return Check(statement, None, f"{quantity}: needs >= 2 seeds with finite values (got {len(kept)})", uses=uses)
    s = stats.summarize(kept)
    text = summary_text(kept)
    rule = "rule: held when the 95% t-interval over seeds lies above 0, did not hold below 0, inconclusive if it contains 0"
    if s.lo > 0:
        return Check(statement, True, f"{quantity}: {text} ({rule})", uses=uses)
    if s.hi < 0:
        return Check(statement, False, f"{quantity}: {text} ({rule})", finding=f"{opposite}: {quantity} {text}",
                     uses=uses)
    return Check(statement, None, f"{quantity}: {text}; the interval contains 0 ({rule})", uses=uses)


# ---- combining checks; matched L0 as a usability condition ------------------------------------
def all_of(statement: str, parts: Sequence[tuple[str, Any]], uses: tuple[str, ...] = (),
           sub_claim: bool = False):
    """One check from several (label, check) parts that must all hold: did not hold when any part did
    not hold (its findings kept), held when every part held, inconclusive otherwise."""
    from synthsae.experiments.recipes.base import Check

    outcomes = [c.outcome for _, c in parts]
    outcome = False if False in outcomes else (True if parts and all(o is True for o in outcomes) else None)
    evidence = "; ".join(f"[{label}] {c.evidence}" for label, c in parts) + " (all parts must hold)"
    finding = "; ".join(f"{label}: {c.finding}" for label, c in parts if c.finding)
    return Check(statement, outcome, evidence, finding=finding, sub_claim=sub_claim, uses=uses)


L0_TOLERANCE = 0.1


def add_l0_problems(problems: dict[str, str | None], results: Sequence[Any], label, target_of,
                    tolerance: float = L0_TOLERANCE, key: str = "sparsity.l0") -> dict[str, str | None]:
    """Matched L0 as a usability condition: an SAE whose measured L0 on fresh samples (`row[key]`) is
    more than `tolerance` (relative) off its target `target_of(result)` is added to `problems`
    (label -> why), unless it already has a convergence problem. results: CellResults; label(result)
    -> the SAE's label (as in `convergence_problems`)."""
    out = dict(problems)
    for r in results:
        measured, target = float(r.row.get(key, float("nan"))), float(target_of(r))
        if not abs(measured - target) <= tolerance * target and not out.get(label(r)):
            out[label(r)] = (f"measured L0 {fmt(measured)} is more than {tolerance:.0%} off its target {target:g} "
                             "(L0 not matched)")
    return out


# ---- convergence guard -----------------------------------------------------------------------
CONVERGED_TOL = TrainSettings.converged_tol  # the trainer's default criterion (synthsae.sae.convergence)
CONVERGENCE_KEYS = ("converged", "collapsed", "probe_ev", "probe_l0", "ev_change", "recovery_change", "steps")


def convergence_row(history: TrainHistory, prefix: str = "") -> dict[str, Any]:
    """The convergence diagnostic of one training run as row entries (`<prefix>converged`,
    `collapsed`, `probe_ev`, `probe_l0` (final measured L0), `ev_change`, `recovery_change` (absolute
    changes over the last doubling of training, before the lr decay if it decays), `steps`). Every
    cell that trains an SAE puts this in its row (one prefix per SAE when it trains several)."""
    c = history.convergence_result()
    if c is None:
        vals = {"converged": False, "collapsed": False, "probe_ev": float("nan"), "probe_l0": float("nan"),
                "ev_change": float("nan"), "recovery_change": float("nan")}
    else:
        vals = {"converged": bool(c.converged), "collapsed": bool(c.collapsed), "probe_ev": float(c.ev),
                "probe_l0": float(c.l0), "ev_change": float(c.ev_change),
                "recovery_change": float("nan") if c.recovery_change is None else float(c.recovery_change)}
    vals["steps"] = int(history.n_steps)
    return {f"{prefix}{k}": v for k, v in vals.items()}


def convergence_problem(row: Mapping[str, Any], prefix: str = "") -> str | None:
    """Why the SAE whose `convergence_row` (under `prefix`) is in `row` cannot be trusted, or None."""
    get = lambda k: row.get(f"{prefix}{k}")  # noqa: E731
    if get("converged") is None and get("collapsed") is None:
        return "no convergence diagnostic recorded"
    if get("collapsed"):
        return f"collapsed (probe EV {fmt(_num(get('probe_ev')))} <= 0)"
    if not get("converged"):
        ev, rec = _num(get("ev_change")), _num(get("recovery_change"))
        parts = [f"EV changed {_abs(ev)}"] + ([f"recovery changed {_abs(rec)}"] if math.isfinite(rec) else [])
        return (f"not converged ({', '.join(parts)} over the last doubling of {get('steps')} steps; "
                f"criterion < {CONVERGED_TOL:g})")
    return None


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _abs(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.2g}"


def guard_convergence(checks: list, problems: Mapping[str, str | None], n_samples: int,
                      factor: int = 4) -> list:
    """Every check computed from an SAE that did not converge or collapsed becomes inconclusive.

    problems: SAE label -> `convergence_problem(...)` (None = fine). A check uses the SAEs whose label
    starts with one of its `uses` prefixes (every SAE when `uses` is empty). Its evidence then names
    those SAEs and why, keeps what the outcome would have been, and suggests a budget: train `factor`x
    longer (`--set n_samples=<factor x n_samples>`); a collapsed SAE needs a weaker sparsity
    coefficient or a `target_l0` instead. A finding in the opposite direction is withdrawn (kept in
    the evidence as "would have found")."""
    from synthsae.experiments.recipes.base import Check, verdict_word

    bad = {k: v for k, v in problems.items() if v}
    if not bad:
        return list(checks)
    out = []
    for c in checks:
        hit = {k: v for k, v in bad.items() if not c.uses or any(k.startswith(u) for u in c.uses)}
        if not hit:
            out.append(c)
            continue
        shown = "; ".join(f"{k.strip()}: {v}" for k, v in list(hit.items())[:4])
        if len(hit) > 4:
            shown += f"; and {len(hit) - 4} more"
        advice = []
        if any(not v.startswith("collapsed") for v in hit.values()):
            advice.append(f"train {factor}x longer: n_samples = {factor * n_samples} "
                          f"(--set n_samples={factor * n_samples})")
        if any(v.startswith("collapsed") for v in hit.values()):
            advice.append("for a collapsed SAE: a weaker sparsity coefficient or target_l0")
        evidence = (f"{c.evidence.rstrip('.')}. Inconclusive: {len(hit)} SAE(s) not usable ({shown}); would have been: "
                    f"{verdict_word(c.outcome)}" + (f" (would have found: {c.finding})" if c.finding else "")
                    + f". Suggested budget: {'; '.join(advice)}.")
        out.append(Check(c.statement, None, evidence, "", c.sub_claim, c.uses))
    return out


def convergence_table(rows: Sequence[Mapping[str, Any]], label: str = "sae", prefix: str = "") -> list[dict]:
    """One row per SAE: its label and the convergence diagnostic (for a report table)."""
    return [{label: r.get(label), **{k: r.get(f"{prefix}{k}") for k in CONVERGENCE_KEYS},
             "problem": convergence_problem(r, prefix) or ""} for r in rows]


def convergence_rows(results: Sequence[Any], label, problems: Mapping[str, str | None]) -> list[dict]:
    """One row per cell in `results` (CellResults, one SAE each, unprefixed) for a report's convergence
    table: the SAE's label(result), its convergence diagnostic and its entry in `problems` (label ->
    why it is not usable, e.g. from `convergence_problems` and `add_l0_problems`; "" when fine)."""
    return [{"sae": label(r), **{k: r.row.get(k) for k in CONVERGENCE_KEYS}, "problem": problems.get(label(r)) or ""}
            for r in results]


# ---- matched sparsity ------------------------------------------------------------------------
def has_sparsity_coefficient(variant: str) -> bool:
    """True for variants whose L0 is set by a coefficient (relu_l1, gated, jumprelu, aen, ...): those
    can be trained to a target L0; False for variants whose L0 is set by k (topk, batchtopk, ...)."""
    from synthsae.sae.base import SAES

    return bool(getattr(SAES.get(variant), "sparsity_terms", None))


def matched_l0(variant: str, k: float) -> dict[str, Any]:
    """Train options that put `variant` at the L0 of a TopK-like arm with k active latents:
    {"target_l0": k} for a variant with a sparsity coefficient (the coefficient is adapted during
    training: synthsae.sae.l0_control), {} for one whose L0 is set by k already. Pass them to
    `ctx.train(..., **matched_l0(variant, k))` and report the measured L0s (`matched_l0_text`)."""
    return {"target_l0": float(k)} if has_sparsity_coefficient(variant) else {}


def matched_l0_text(target: float, measured: Mapping[str, Sequence[float]]) -> str:
    """The sentence a report gives about matched sparsity: the target and each arm's measured L0
    (final probe L0 over seeds, mean ± CI)."""
    parts = "; ".join(f"{name} {summary_text(v)}" for name, v in measured.items())
    return (f"Compared at matched L0: every SAE with a sparsity coefficient was trained with target_l0 = {target:g} "
            f"(the coefficient adapted during training, frozen for the final stretch), TopK-like SAEs with k = "
            f"{target:g}. Measured L0 on the held-out probe set: {parts}.")


# ---- the AEN arm -----------------------------------------------------------------------------
AEN_WARMUP_FRACTION = 0.3
AEN_RAMP_FRACTION = 0.1


def aen_schedule(n_steps: int, warmup_fraction: float = AEN_WARMUP_FRACTION,
                 ramp_fraction: float = AEN_RAMP_FRACTION) -> dict[str, int]:
    """AEN's warmup_steps / ramp_steps as shares of the run (so its adaptive weights switch on in any
    run length; the AEN default of 10,000 warmup steps never switches on in a 2,000-step run)."""
    require(0 <= warmup_fraction and 0 < ramp_fraction and warmup_fraction + ramp_fraction < 1,
            "aen_schedule", (warmup_fraction, ramp_fraction), "warmup and ramp must end before the run does",
            "warmup_fraction >= 0, ramp_fraction > 0, their sum < 1")
    return {"warmup_steps": int(warmup_fraction * n_steps), "ramp_steps": max(1, int(ramp_fraction * n_steps))}


def aen_arm(n_steps: int, warmup_fraction: float = AEN_WARMUP_FRACTION, ramp_fraction: float = AEN_RAMP_FRACTION,
            **hyper: Any) -> dict[str, Any]:
    """AEN hyperparameters `hyper` with the schedule scaled to a run of `n_steps` (`aen_schedule`)."""
    return {**hyper, **aen_schedule(n_steps, warmup_fraction, ramp_fraction)}


def aen_switches_on(hyper: Mapping[str, Any], n_steps: int) -> bool:
    """True when an AEN built with `hyper` has its adaptive weights fully on before the run's last step
    (checked with the AEN class's own `ramp`)."""
    sae = make("aen", d=2, m=2, **dict(hyper))
    return n_steps >= 1 and sae.ramp(n_steps - 1) >= 1.0


def convergence_problems(results: Sequence[Any], label, names: Sequence[str] = ("sae",)) -> dict[str, str | None]:
    """SAE label -> `convergence_problem` for every SAE trained by the cells in `results` (CellResults).
    label(result, name) -> the SAE's label (what checks' `uses` prefixes match); names: the SAE
    names the cells trained (`ctx.train(name=...)`; "sae" is the default, stored unprefixed). A
    cell that trained no SAE under a name (e.g. an analysis cell) is skipped for it."""
    out: dict[str, str | None] = {}
    for r in results:
        for name in names:
            prefix = "" if name == "sae" else f"{name}."
            if f"{prefix}converged" not in r.row and f"{prefix}collapsed" not in r.row:
                continue
            out[label(r, name)] = convergence_problem(r.row, prefix)
    return out


def aen_arms_of(recipe: Any, config: Any) -> list[tuple[str, dict[str, Any], int]]:
    """The AEN arms a recipe declares for `config` (its module's `aen_arms(config)`; [] if none)."""
    import sys

    module = sys.modules[(recipe.run_cell or recipe.run).__module__]
    fn = getattr(module, "aen_arms", None)
    return [] if fn is None else list(fn(config))


# ---- dead latents: one definition --------------------------------------------------------------
@torch.no_grad()
def never_fired(sae: SAE, world: World, n: int, seed: int, device: Any = None, chunk: int = 4096) -> np.ndarray:
    """(m,) bool: latents that never fired (code != 0) on `n` fresh samples of `world` drawn with
    `seed` -- the one definition of "dead" the recipes use (the in-training window count,
    `sae.dead_mask()`, is reported beside it)."""
    dev = next(sae.parameters()).device if device is None else torch.device(device)
    x = world.sample(n, seed=seed, device=dev, dtype=torch.float32).x
    fired = torch.zeros(sae.config.m, dtype=torch.bool, device=dev)
    for i in range(0, n, chunk):
        fired |= (sae.encode(x[i:i + chunk]) != 0).any(dim=0)
    return (~fired).cpu().numpy()
