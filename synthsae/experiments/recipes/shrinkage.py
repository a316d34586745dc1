"""Recipe `shrinkage`: the l1 -> l0 story, at matched L0 over seeds.

Every variant is trained at every target L0 of `l0s` and every seed: TopK-like variants with k = L0,
variants with a sparsity coefficient (relu_l1, gated, jumprelu, aen) with `target_l0 = L0` (the
coefficient adapted during training, `_common.matched_l0`), so the arms are compared at the same
sparsity. AEN's warmup / ramp are shares of the run (`_common.aen_arm`), so its adaptive weights
switch on in any run length.

Per SAE, on fresh samples: measured L0, EV, and two readings of shrinkage:

* the **global scale** alpha = <x_c, x_hat_c> / <x_hat_c, x_hat_c> summed over samples, with x_c,
  x_hat_c the inputs and reconstructions centred by their own sample means (the least-squares
  alpha of x ~ alpha x_hat + beta, so b_dec and the data mean drop out). alpha > 1: the
  reconstruction is too small, i.e. shrunk; `global_shrinkage` = 1 - 1/alpha is the fraction
  missing. Splitting a feature over several latents does not change the reconstruction, so it does
  not move alpha: this is the quantity the checks use.
* the median per-feature magnitude ratio rho (`recovery.shrinkage_median`, docs/metrics.md),
  reported beside it: it conflates shrinkage with splitting (a feature's mass spread over several
  latents reads as a small ratio), so TopK at large k gets rho << 1 without shrinking anything.

Checks (every comparison a 2-SE rule over seeds, `_common.directional_check`; per seed the value is
averaged over the L0 grid, so seeds are the replicates): (1) relu_l1 shrinks: its global shrinkage
is above 0; (2) each other variant shrinks less: |global shrinkage| below relu_l1's; (3) each other
variant has a better frontier: higher EV at the same L0. Checks on SAEs that did not converge or
collapsed are inconclusive (`_common.guard_convergence`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from synthsae.errors import require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, RecipeResult, register_grid_recipe, verdict

KEYS = ("sparsity.l0", "reconstruction.explained_variance", "recovery.shrinkage_median", "recovery.mcc",
        "latents.dead_fraction")
SCALE, SHRINK = "global_scale", "global_shrinkage"


def _default_sweeps() -> dict[str, dict[str, Any]]:
    grid = [2, 4, 8, 16]
    return {"relu_l1": {"target_l0": grid}, "gated": {"target_l0": grid}, "topk": {"k": grid},
            "jumprelu": {"target_l0": grid, "threshold_init": 0.1, "bandwidth": 0.05}, "aen": {"target_l0": grid}}


def l0_knob(variant: str) -> str:
    """The sweep axis that sets a variant's L0: `target_l0` (trained to it) for variants with a
    sparsity coefficient, `k` for TopK-like ones."""
    return "target_l0" if C.has_sparsity_coefficient(variant) else "k"


@dataclasses.dataclass(frozen=True)
class ShrinkageConfig(C.RecipeConfig):
    """world: a preset or world file. sweeps: variant -> hyperparameters with exactly one list, its L0
    axis: `target_l0` for variants with a sparsity coefficient (relu_l1, gated, jumprelu, aen: trained
    to that L0), `k` for TopK-like variants; every variant sweeps the same L0 grid (matched L0). Must
    include relu_l1 (the reference). m_sae: latents. seeds: one SAE per (variant, L0, seed)."""

    n_samples: int = 2_000_000
    world: str = "toy"
    sweeps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=_default_sweeps)
    m_sae: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        require(isinstance(self.sweeps, dict) and "relu_l1" in self.sweeps, f"{name}.sweeps",
                list(self.sweeps) if isinstance(self.sweeps, dict) else self.sweeps,
                "relu_l1 is the reference every variant is compared with", "a table including relu_l1")
        C.seeds_ok(self)
        grids = {}
        for v, hyper in self.sweeps.items():
            axis, _ = C.grid_axis(f"{name}.sweeps.{v}", hyper)
            require(axis == l0_knob(v), f"{name}.sweeps.{v}", axis,
                    "the sweep axis must set the L0, so that variants are compared at matched L0",
                    f"a list of {l0_knob(v)!r} values")
            grids[v] = list(hyper[axis])
            fixed = sorted({"warmup_steps", "ramp_steps"} & set(hyper)) if v == "aen" else []
            require(not fixed, f"{name}.sweeps.aen", fixed, "the recipe scales AEN's warmup / ramp to the run so its "
                    "adaptive weights switch on (_common.aen_arm)", "leave warmup_steps and ramp_steps out")
        ref = grids["relu_l1"]
        require(all(isinstance(k, int) and 1 <= k <= self.m_sae for k in ref) and len(set(ref)) == len(ref),
                f"{name}.sweeps.relu_l1.target_l0", ref, "an L0 is a number of active latents",
                f"distinct ints in [1, m_sae = {self.m_sae}]")
        for v, grid in grids.items():
            require(sorted(grid) == sorted(ref), f"{name}.sweeps.{v}.{l0_knob(v)}", grid,
                    "every variant must sweep the same L0 grid (matched L0)", f"the values {ref}")
            for l0 in ref:
                C.check_sae_spec(f"{name}.sweeps.{v}", v, _hyper(self, v, l0), self.m_sae)

    @property
    def l0s(self) -> tuple[int, ...]:
        """The L0 grid (relu_l1's; every variant sweeps the same)."""
        return tuple(self.sweeps["relu_l1"]["target_l0"])

    @property
    def variants(self) -> list[str]:
        return list(self.sweeps)

    @classmethod
    def small(cls) -> "ShrinkageConfig":
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, m_sae=128, seeds=(0, 1),
                   sweeps={"relu_l1": {"target_l0": [2, 8]}, "topk": {"k": [2, 8]}, "aen": {"target_l0": [2, 8]}})


def _hyper(cfg: ShrinkageConfig, variant: str, l0: int) -> dict[str, Any]:
    """The SAE's hyperparameters at L0 `l0`: k for TopK-like variants (a coefficient variant gets
    target_l0 at training time instead); AEN's warmup / ramp scaled to the run."""
    hyper = {k: v for k, v in cfg.sweeps[variant].items() if k not in ("k", "target_l0")}
    if l0_knob(variant) == "k":
        hyper["k"] = l0
    if variant == "aen":
        hyper = C.aen_arm(cfg.n_steps, **hyper)
    return hyper


def aen_arms(cfg: ShrinkageConfig) -> list[tuple[str, dict[str, Any], int]]:
    """Every AEN arm (label, hyperparameters, steps) of the grid (conformance: they switch on)."""
    return [(f"aen L0={l0}", _hyper(cfg, "aen", l0), cfg.n_steps) for l0 in cfg.l0s if "aen" in cfg.variants]


def _cells(cfg: ShrinkageConfig) -> list[Cell]:
    return [Cell(f"{v}-L0{l0}-seed{s}", {"variant": v, "l0": l0, "seed": s, "hyperparameters": _hyper(cfg, v, l0),
                                        "train": C.matched_l0(v, l0)})
            for v in cfg.sweeps for l0 in cfg.l0s for s in cfg.seeds]


@torch.no_grad()
def global_scale(sae, x: torch.Tensor, chunk: int = 8192) -> float:
    """The alpha minimizing sum_samples ||x_c - alpha x_hat_c||^2, x_c and x_hat_c centred by their
    sample means (x: (n, d)): alpha = <x_c, x_hat_c> / <x_hat_c, x_hat_c>. 1 = no shrinkage, > 1 =
    reconstructions too small. NaN when the reconstruction is constant (nothing to scale).
    (Used by this recipe only; a candidate for `synthsae.metrics` when a second one needs it.)"""
    xs, hs = [], []
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        xs.append(xb.double())
        hs.append(sae.decode(sae.encode(xb)).double())
    X, H = torch.cat(xs), torch.cat(hs)
    Xc, Hc = X - X.mean(dim=0), H - H.mean(dim=0)
    den = float((Hc * Hc).sum())
    return float((Xc * Hc).sum()) / den if den > 0 else float("nan")


def _run_cell(cfg: ShrinkageConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    sae, _ = ctx.train(p["variant"], world, cfg.m_sae, p["hyperparameters"], p["seed"], **p["train"])
    row = C.pick(C.evaluate_sae(sae, world, cfg), KEYS)
    x = world.sample(cfg.eval_samples, seed=cfg.eval_seed, device=ctx.device).x
    alpha = global_scale(sae, x)
    row[SCALE] = alpha
    row[SHRINK] = 1 - 1 / alpha if math.isfinite(alpha) and alpha != 0 else float("nan")
    return {"row": row}


def _label(r: CellResult, name: str = "sae") -> str:
    return f"{r.params['variant']} L0={r.params['l0']} seed{r.params['seed']}"


def _per_seed(rows: list[dict], variant: str, key: str, cfg: ShrinkageConfig, fn=lambda v: v) -> list[float]:
    """Per seed: the mean over the L0 grid of fn(row[key]) for `variant` (NaN when a value is missing)."""
    out = []
    for s in cfg.seeds:
        vals = [fn(r[key]) for r in rows if r["variant"] == variant and r["seed"] == s]
        out.append(float(np.mean(vals)) if vals and all(math.isfinite(v) for v in vals) else float("nan"))
    return out


def _conclude(config: ShrinkageConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `shrinkage` from its finished cells (module docstring)."""
    cfg = config
    ratio, ev, l0 = "recovery.shrinkage_median", "reconstruction.explained_variance", "sparsity.l0"
    rows = [{"variant": r.params["variant"], "l0": r.params["l0"], "seed": r.params["seed"], **r.row} for r in results]
    summary = []
    for v in cfg.variants:
        for t in cfg.l0s:
            sel = [r for r in rows if r["variant"] == v and r["l0"] == t]
            row = {"variant": v, "target_l0": t}
            for key in (l0, ev, SCALE, SHRINK, ratio, "recovery.mcc", "latents.dead_fraction"):
                row[key], row[f"{key}.ci"] = C.mean_ci([r[key] for r in sel])
            summary.append(row)
    ref = _per_seed(rows, "relu_l1", SHRINK, cfg)
    checks = [C.directional_check(
        "relu_l1 shrinks feature magnitudes (global scale fit: its reconstructions are too small)", ref,
        [0.0] * len(cfg.seeds), expect=1, names=("relu_l1", "no shrinkage"),
        quantity="global shrinkage 1 - 1/alpha (per seed, mean over the L0 grid)",
        opposite="relu_l1 over-scales its reconstructions", uses=("relu_l1",))]
    ref_abs = _per_seed(rows, "relu_l1", SHRINK, cfg, abs)
    ref_ev = _per_seed(rows, "relu_l1", ev, cfg)
    metrics: dict[str, float] = {}
    for v in cfg.variants:
        if v == "relu_l1":
            continue
        checks.append(C.directional_check(
            f"{v} shrinks less than relu_l1", _per_seed(rows, v, SHRINK, cfg, abs), ref_abs, expect=-1,
            names=(v, "relu_l1"), quantity="|global shrinkage| (per seed, mean over the L0 grid)",
            opposite=f"{v} shrinks more than relu_l1", uses=(v, "relu_l1")))
        checks.append(C.directional_check(
            f"{v} has a better sparsity-fidelity frontier than relu_l1 (higher EV at matched L0)",
            _per_seed(rows, v, ev, cfg), ref_ev, expect=1, names=(v, "relu_l1"),
            quantity="EV (per seed, mean over the L0 grid)", opposite=f"{v} has a worse frontier than relu_l1",
            uses=(v, "relu_l1")))
    problems = C.add_l0_problems(C.convergence_problems(results, _label), results, _label, lambda r: r.params["l0"])
    checks = C.guard_convergence(checks, problems, cfg.n_samples)
    for s in summary:
        for key in (l0, ev, SCALE, SHRINK, ratio):
            metrics[f"{s['variant']}.L0{s['target_l0']}.{key}"] = s[key]

    def series(key):
        return {v: ([s[l0] for s in summary if s["variant"] == v], [s[key] for s in summary if s["variant"] == v],
                    [s[f"{key}.ci"] for s in summary if s["variant"] == v]) for v in cfg.variants}

    figures = {
        "frontier": C.line_figure(series(ev), "L0 (measured)", "explained variance",
                                  "sparsity-fidelity frontier (mean ± 95% CI over seeds)", logx=True),
        "global_shrinkage": C.line_figure(series(SHRINK), "L0 (measured)", "global shrinkage 1 - 1/alpha",
                                          "shrinkage from the global scale fit (0 = none)", logx=True,
                                          hlines=[(0.0, "no shrinkage")]),
        "magnitude_ratio": C.line_figure(series(ratio), "L0 (measured)", "median magnitude ratio rho",
                                         "rho (1 = none; conflates splitting with shrinkage)", logx=True,
                                         hlines=[(1.0, "no shrinkage")]),
    }
    measured_l0 = {f"{v} (target {t})": [r[l0] for r in rows if r["variant"] == v and r["l0"] == t]
                   for v in cfg.variants for t in cfg.l0s}
    sch = C.aen_schedule(cfg.n_steps)
    aen_text = (f" (AEN: warmup {sch['warmup_steps']} steps, ramp {sch['ramp_steps']} steps, so its adaptive weights are "
                f"fully on from step {sch['warmup_steps'] + sch['ramp_steps']})" if "aen" in cfg.variants else "")
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}): {', '.join(cfg.variants)} with {cfg.m_sae} latents at target "
        f"L0 in {list(cfg.l0s)}, seeds {list(cfg.seeds)}, {cfg.n_steps} steps of {cfg.batch_size}"
        + aen_text
        + f"; on {cfg.eval_samples} fresh samples: measured L0, EV, the global scale alpha of the centred "
        "reconstruction (least squares; global shrinkage = 1 - 1/alpha) and the median per-feature magnitude ratio "
        "rho. Every number is mean ± 95% CI over seeds.\n\nCompared at matched L0: the coefficient variants were "
        "trained with target_l0 = each grid L0 (coefficient adapted during training, frozen for the final stretch), "
        f"TopK-like variants with k = L0; an SAE more than {C.L0_TOLERANCE:.0%} off its target makes the checks that "
        "use it inconclusive. Measured L0 on fresh samples: " + "; ".join(f"{k} {C.summary_text(v)}" for k, v in measured_l0.items())
        + "."
    )
    sections = [("Why the checks use the global scale, not rho", (
        "rho (median over features of the magnitude ratio on true positives) falls below 1 whenever a feature's mass "
        "is split over several latents, which TopK does at large k without any shrinkage; the global scale fit alpha "
        "is unchanged by splitting (the reconstruction is the same) and moves only when reconstructions are "
        "systematically too small. Compare the two columns in `summary`: "
        + "; ".join(f"{s['variant']} L0 {s['target_l0']}: rho {C.fmt(s[ratio])}, global shrinkage {C.fmt(s[SHRINK])}"
                    for s in summary if s["target_l0"] == max(cfg.l0s)) + "."))]
    claim = ("The l1 -> l0 story: ReLU+l1 SAEs shrink feature magnitudes; Gated, TopK, JumpReLU (and AEN's adaptive "
             "reweighting) remove shrinkage and improve the sparsity-fidelity frontier (Wright & Sharkey 2024; Rajamanoharan "
             "et al. 2024a/b; Gao et al. 2024; arXiv 2605.05341; background claims 2 and 4).")
    tables = {"summary": summary, "points": rows,
              "convergence": C.convergence_rows(results, _label, problems)}
    return RecipeResult("shrinkage", cfg, claim, measured, verdict(checks), metrics, tables, figures, sections, checks)


RECIPE = register_grid_recipe(
    "shrinkage", ShrinkageConfig,
    "magnitude shrinkage (global scale fit and rho) per variant at matched L0, and the sparsity-fidelity frontier",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)
