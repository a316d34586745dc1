"""Recipe `shrinkage`: the l1 -> l0 story. Per variant, a sweep of its sparsity knob gives points
(L0, EV, magnitude ratio): the per-feature magnitude ratio (`recovery.shrinkage_median`, the
median over true features of rho_j, 1 = no shrinkage, docs/metrics.md) and the sparsity-fidelity
frontier (EV against L0).

Criteria. (1) relu_l1 shrinks: its median ratio is below `shrink_below` at every sweep point.
(2) Each other variant shrinks less: mean |1 - ratio| over its points below relu_l1's.
(3) Each other variant sits on a better frontier: at the L0 values where both were measured
(linear interpolation in log L0 over the overlap of their L0 ranges), its EV is higher on average;
inconclusive when the L0 ranges do not overlap.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from synthsae.errors import require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict

KEYS = ("sparsity.l0", "reconstruction.explained_variance", "recovery.shrinkage_median", "recovery.mcc",
        "latents.dead_fraction")


def _default_sweeps() -> dict[str, dict[str, Any]]:
    return {
        "relu_l1": {"l1_coefficient": [0.01, 0.03, 0.1, 0.3]},
        "gated": {"l1_coefficient": [0.01, 0.03, 0.1, 0.3]},
        "topk": {"k": [2, 4, 8, 16]},
        "jumprelu": {"l0_coefficient": [0.001, 0.003, 0.01, 0.03], "threshold_init": 0.1, "bandwidth": 0.05},
        "aen": {"l1_coefficient": [0.01, 0.03, 0.1, 0.3]},
    }


@dataclasses.dataclass(frozen=True)
class ShrinkageConfig(C.RecipeConfig):
    """world: preset. sweeps: variant -> hyperparameters with exactly one list (its sparsity axis);
    must include relu_l1 (the reference). m_sae: latents. seed: one SAE per point.
    shrink_below: relu_l1 "shrinks" when its median magnitude ratio is below this."""

    n_samples: int = 2_000_000
    world: str = "toy"
    sweeps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=_default_sweeps)
    m_sae: int = 256
    seed: int = 0
    shrink_below: float = 0.95

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        require(isinstance(self.sweeps, dict) and "relu_l1" in self.sweeps, f"{name}.sweeps", list(self.sweeps),
                "relu_l1 is the reference every variant is compared with", "a table including relu_l1")
        for v, hyper in self.sweeps.items():
            _, points = C.grid_axis(f"{name}.sweeps.{v}", hyper)
            for p in points:
                C.check_sae_spec(f"{name}.sweeps.{v}", v, p, self.m_sae)
        require(self.seed >= 0, f"{name}.seed", self.seed, "seeds are non-negative", "an int >= 0")
        C.positive(self, "shrink_below")

    @classmethod
    def small(cls) -> "ShrinkageConfig":
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, m_sae=128,
                   sweeps={"relu_l1": {"l1_coefficient": [0.03, 0.3]}, "topk": {"k": [2, 8]}})


def _cells(cfg: ShrinkageConfig) -> list[Cell]:
    out = []
    for variant, hyper in cfg.sweeps.items():
        axis, grid = C.grid_axis(variant, hyper)
        out += [Cell(f"{variant}-{axis}{hp[axis]:g}", {"variant": variant, "knob": axis, "value": hp[axis],
                                                        "hyperparameters": hp}) for hp in grid]
    return out



def _run_cell(cfg: ShrinkageConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    sae, _ = ctx.train(p["variant"], world, cfg.m_sae, p["hyperparameters"], cfg.seed)
    return {"row": C.pick(C.evaluate_sae(sae, world, cfg), KEYS)}


def _conclude(config: ShrinkageConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `shrinkage` from its finished cells (see the module docstring
    for what is measured and the verdict)."""
    cfg = config
    points = [{"variant": r.params["variant"], "knob": r.params["knob"], "value": r.params["value"], **r.row}
              for r in results]
    by = {v: sorted((p for p in points if p["variant"] == v), key=lambda p: p["sparsity.l0"]) for v in cfg.sweeps}
    ratio, ev, l0 = "recovery.shrinkage_median", "reconstruction.explained_variance", "sparsity.l0"
    ref = by["relu_l1"]
    checks = [Check(
        "relu_l1 shrinks feature magnitudes", bool(all(p[ratio] < cfg.shrink_below for p in ref)),
        "median magnitude ratio per point: " + ", ".join(f"{C.fmt(p[ratio])}" for p in ref)
        + f" (criterion: all < {cfg.shrink_below})")]
    ref_dev = float(np.nanmean([abs(1 - p[ratio]) for p in ref]))
    metrics = {"relu_l1.mean_abs_deviation_from_1": ref_dev}
    for v, pts in by.items():
        if v == "relu_l1":
            continue
        dev = float(np.nanmean([abs(1 - p[ratio]) for p in pts]))
        metrics[f"{v}.mean_abs_deviation_from_1"] = dev
        checks.append(Check(f"{v} shrinks less than relu_l1", bool(dev < ref_dev),
                            f"mean |1 - ratio| {dev:.3f} vs relu_l1 {ref_dev:.3f} (criterion: smaller)"))
        adv = C.matched_difference(pts, ref, l0, ev)
        metrics[f"{v}.ev_advantage_over_relu_l1"] = adv
        checks.append(Check(
            f"{v} has a better sparsity-fidelity frontier than relu_l1", None if np.isnan(adv) else bool(adv > 0),
            f"mean EV difference at matched L0 = {C.fmt(adv)} (criterion: > 0; inconclusive without L0 overlap)"))
    figures = {
        "frontier": C.line_figure({v: ([p[l0] for p in pts], [p[ev] for p in pts]) for v, pts in by.items()},
                                  "L0", "explained variance", "sparsity-fidelity frontier", logx=True),
        "magnitude_ratio": C.line_figure({v: ([p[l0] for p in pts], [p[ratio] for p in pts]) for v, pts in by.items()},
                                         "L0", "median magnitude ratio", "shrinkage (1 = none)", logx=True,
                                         hlines=[(1.0, "no shrinkage")]),
    }
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}): for each variant a sweep of its sparsity knob ("
        + "; ".join(f"{v}: {C.grid_axis(v, h)[0]} in {h[C.grid_axis(v, h)[0]]}" for v, h in cfg.sweeps.items())
        + f"), {cfg.m_sae} latents, seed {cfg.seed}, {cfg.n_steps} steps of {cfg.batch_size}; on {cfg.eval_samples} fresh "
        "samples: L0, EV and the median per-feature magnitude ratio of correctly detected features."
    )
    claim = ("The l1 -> l0 story: ReLU+l1 SAEs shrink feature magnitudes; Gated, TopK, JumpReLU (and AEN's adaptive "
             "reweighting) remove shrinkage and improve the sparsity-fidelity frontier (Wright & Sharkey 2024; Rajamanoharan "
             "et al. 2024a/b; Gao et al. 2024; arXiv 2605.05341; background claims 2 and 4).")
    return RecipeResult("shrinkage", cfg, claim, measured, verdict(checks), metrics, {"points": points}, figures, [], checks)


RECIPE = register_grid_recipe(
    "shrinkage", ShrinkageConfig, "magnitude shrinkage per variant and the sparsity-fidelity frontier (EV vs L0)",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)
