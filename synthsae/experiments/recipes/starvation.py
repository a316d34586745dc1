"""Recipe `starvation`: dead latents of ReLU+l1 SAEs across l1 weight x learning rate x dictionary
size x seeds, and whether the same latents die; then AEN and TopK+AuxK on the same grid.

Claim (background claims 1-2): l1 SAEs lose 15-40% of their latents depending on hyperparameters;
which latents die depends on the seed; the adaptive elastic-net SAE (arXiv 2605.05341) reduces
death without resampling. No run here resamples (`resample_every=None`).

"Same latents across seeds": every run of a grid cell starts from the *same* initialization
(`init_seed`) and differs only in its data seed, so latent i is the same starting direction in
every run and dead sets can be compared index by index (Jaccard overlap against the overlap two
independent random sets of the same sizes would have).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from synthsae.errors import fail, require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict

COMPARABLE = ("aen", "topk")


@dataclasses.dataclass(frozen=True)
class StarvationConfig(C.RecipeConfig):
    """world: preset. l1_coefficients x learning_rates x dictionary_sizes x seeds: the grid (relu_l1 and
    aen use every l1 value; topk, which has no l1 weight, uses k = topk_k). seeds are data seeds; every
    run starts from the initialization `init_seed`. compare: variants run on the same grid (aen, topk).
    aen_l2_coefficient, aen_warmup_fraction: AEN's l2 weight and the share of steps before its adaptive
    weights start (ramp over a further tenth). dead_after_steps: a latent that has not fired for this many
    training steps is dead. death_band: the claimed range of l1 death rates. (`lr` is unused: see
    learning_rates.)"""

    n_samples: int = 4_000_000
    batch_size: int = 1024
    eval_samples: int = 20_000
    world: str = "toy"
    l1_coefficients: tuple[float, ...] = (0.01, 0.03, 0.1)
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    dictionary_sizes: tuple[int, ...] = (512, 2048)
    seeds: tuple[int, ...] = (0, 1, 2)
    init_seed: int = 0
    compare: tuple[str, ...] = COMPARABLE
    aen_l2_coefficient: float = 1e-4
    aen_warmup_fraction: float = 0.3
    topk_k: int = 4
    dead_after_steps: int = 500
    death_band: tuple[float, ...] = (0.15, 0.40)

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.nonempty_unique(self, "l1_coefficients")
        C.nonempty_unique(self, "learning_rates")
        C.nonempty_unique(self, "dictionary_sizes")
        C.seeds_ok(self)
        require(all(v > 0 for v in self.l1_coefficients + self.learning_rates), f"{name}.l1_coefficients/learning_rates",
                (self.l1_coefficients, self.learning_rates), "weights and learning rates must be positive", "floats > 0")
        require(all(isinstance(v, int) and v >= self.topk_k for v in self.dictionary_sizes), f"{name}.dictionary_sizes",
                self.dictionary_sizes, f"sizes are ints of at least topk_k = {self.topk_k}", f"ints >= {self.topk_k}")
        for v in self.compare:
            if v not in COMPARABLE:
                fail(f"{name}.compare", v, "not a variant this recipe can run", f"a subset of {list(COMPARABLE)}")
        C.positive(self, "aen_l2_coefficient")
        C.in_unit_interval(self, "aen_warmup_fraction")
        require(self.topk_k >= 1, f"{name}.topk_k", self.topk_k, "k must be positive", "an int >= 1")
        require(1 <= self.dead_after_steps < self.n_steps, f"{name}.dead_after_steps", self.dead_after_steps,
                f"death is only observable if the window is shorter than the run ({self.n_steps} steps)",
                f"an int in [1, {self.n_steps - 1}]")
        require(len(self.death_band) == 2, f"{name}.death_band", self.death_band, "a range has two ends", "[lo, hi]")
        lo, hi = self.death_band
        require(0 <= lo < hi <= 1, f"{name}.death_band", self.death_band, "a range of fractions", "(lo, hi), 0 <= lo < hi <= 1")

    @classmethod
    def small(cls) -> "StarvationConfig":
        return cls(n_samples=30 * 256, batch_size=256, eval_samples=2048, l1_coefficients=(0.3,),
                   learning_rates=(3e-3,), dictionary_sizes=(128,), seeds=(0, 1), dead_after_steps=10)


def _hyper(cfg: StarvationConfig, variant: str, l1: float | None) -> dict:
    common = {"dead_after_steps": cfg.dead_after_steps}
    if variant == "relu_l1":
        return {**common, "l1_coefficient": l1}
    if variant == "aen":
        warm = int(cfg.aen_warmup_fraction * cfg.n_steps)
        return {**common, "l1_coefficient": l1, "l2_coefficient": cfg.aen_l2_coefficient, "warmup_steps": warm,
                "ramp_steps": max(1, cfg.n_steps // 10)}
    return {**common, "k": cfg.topk_k}


def _nanmean(values: list[float]) -> float:
    """Mean of the non-NaN values (NaN if there are none)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _jaccard(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Observed Jaccard of two dead masks and the Jaccard expected for independent random sets of the
    same sizes (E|A n B| = |A||B|/m). NaN when both are empty."""
    na, nb, m = int(a.sum()), int(b.sum()), a.size
    if na + nb == 0:
        return float("nan"), float("nan")
    inter = int((a & b).sum())
    e = na * nb / m
    return inter / (na + nb - inter), e / (na + nb - e)


def _grid(cfg: StarvationConfig) -> list[tuple[str, float | None, float, int]]:
    """(variant, l1, lr, m) of every grid cell (topk has no l1 weight: None), in report order."""
    variants = ("relu_l1",) + tuple(cfg.compare)
    return [(variant, l1, lr, m) for variant, lr, m in itertools.product(variants, cfg.learning_rates,
                                                                         cfg.dictionary_sizes)
            for l1 in (cfg.l1_coefficients if variant != "topk" else (None,))]


def _cell_list(cfg: StarvationConfig) -> list[Cell]:
    out = []
    for variant, l1, lr, m in _grid(cfg):
        for seed in cfg.seeds:
            name = f"{variant}" + ("" if l1 is None else f"-l1{l1:g}") + f"-lr{lr:g}-m{m}-seed{seed}"
            out.append(Cell(name, {"variant": variant, "l1": l1, "lr": lr, "m": m, "seed": seed}))
    return out



def _run_cell(cfg: StarvationConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    sae, hist = ctx.train(p["variant"], world, p["m"], _hyper(cfg, p["variant"], p["l1"]), cfg.init_seed,
                          data_seed=p["seed"], lr=p["lr"], log_every=max(1, cfg.n_steps // 50))
    dead = sae.dead_mask().cpu().numpy()
    rep = C.evaluate_sae(sae, world, cfg)
    row = {"dead_fraction": float(dead.mean()), "never_fired_eval_fraction": rep["latents.dead_fraction"],
           "l0": rep["sparsity.l0"], "explained_variance": rep["reconstruction.explained_variance"],
           "mcc": rep["recovery.mcc"]}
    # the dead set (for overlaps across seeds) and the dead count over training (for the curves)
    data = {"dead": [int(i) for i in np.flatnonzero(dead)], "samples": [int(v) for v in hist.samples],
            "dead_curve": [int(v) for v in hist.dead]}
    return {"row": row, "data": data}


def _conclude(config: StarvationConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `starvation` from its finished cells (see the module docstring
    for what is measured and the verdict)."""
    cfg = config
    variants = ("relu_l1",) + tuple(cfg.compare)
    by_cell = {r.cell.id: r for r in results}
    runs, curves = [], {}
    for variant, l1, lr, m in _grid(cfg):
        masks = []
        for cell in _cell_list(cfg):
            p = cell.params
            if (p["variant"], p["l1"], p["lr"], p["m"]) != (variant, l1, lr, m):
                continue
            res = by_cell[cell.id]
            dead = np.zeros(m, dtype=bool)
            dead[res.data["dead"]] = True
            masks.append(dead)
            runs.append({"variant": variant, "l1": l1, "lr": lr, "m": m, "seed": p["seed"], **res.row})
            curves.setdefault((variant, l1, lr, m), []).append(
                (np.asarray(res.data["samples"]), np.asarray(res.data["dead_curve"], dtype=float) / m))
        pairs = [_jaccard(a, b) for a, b in itertools.combinations(masks, 2)]
        observed, chance = _nanmean([p[0] for p in pairs]), _nanmean([p[1] for p in pairs])
        for row in runs[-len(cfg.seeds):]:
            row["jaccard_across_seeds"], row["jaccard_chance"] = observed, chance

    cells = _cells(runs)
    checks = _checks(cfg, cells)
    metrics = {}
    for v in variants:
        vals = [c["dead_mean"] for c in cells if c["variant"] == v]
        metrics[f"{v}.dead_fraction_min"] = float(min(vals))
        metrics[f"{v}.dead_fraction_max"] = float(max(vals))
        metrics[f"{v}.dead_fraction_mean"] = float(np.mean(vals))
    metrics["relu_l1.jaccard_across_seeds"] = _nanmean([c["jaccard"] for c in cells if c["variant"] == "relu_l1"])
    metrics["relu_l1.jaccard_chance"] = _nanmean([c["jaccard_chance"] for c in cells if c["variant"] == "relu_l1"])

    figures = {"dead_over_training": _curve_figure(curves, "relu_l1"),
               "dead_by_cell": C.bar_figure({_label(c): c["dead_mean"] for c in cells},
                                            {_label(c): c["dead_std"] for c in cells},
                                            "dead fraction (mean over seeds)", "final dead fraction per grid cell")}
    for v in cfg.compare:
        figures[f"dead_over_training_{v}"] = _curve_figure(curves, v)
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}). For each cell of l1 {list(cfg.l1_coefficients)} x lr "
        f"{list(cfg.learning_rates)} x m {list(cfg.dictionary_sizes)} we trained relu_l1"
        + (f" and {', '.join(cfg.compare)}" if cfg.compare else "")
        + f" (topk: k = {cfg.topk_k} instead of an l1 weight) for {cfg.n_steps} steps of {cfg.batch_size} samples, "
        f"once per data seed {list(cfg.seeds)}, all from the initialization seeded {cfg.init_seed}, with no resampling. "
        f"A latent is dead when it has not fired for {cfg.dead_after_steps} steps (`sae.dead_mask()`; over training: "
        f"`TrainHistory.dead`). Dead sets of the seeds of one cell are compared by Jaccard overlap, next to the overlap "
        f"of independent random sets of the same sizes. Each SAE is also evaluated on {cfg.eval_samples} fresh samples "
        "(L0, EV, MCC and the share of latents that never fired there)."
    )
    claim = ("Standard ReLU+l1 SAEs suffer feature starvation: 15-40% of latents die depending on l1 weight, "
             "learning rate and dictionary size, and which latents die depends on the seed; the adaptive "
             "elastic-net SAE reduces dead latents without resampling (background claims 1-2; AEN-SAE, "
             "arXiv 2605.05341; death rates as reported for l1 SAEs, e.g. Bricken et al. 2023).")
    return RecipeResult("starvation", cfg, claim, measured, verdict(checks), metrics,
                        {"runs": runs, "cells": cells}, figures, [], checks)


RECIPE = register_grid_recipe(
    "starvation", StarvationConfig,
    "dead latents of l1 SAEs across l1 x lr x size x seeds, which latents die, and AEN / TopK+AuxK",
    cells=_cell_list, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)


def _cells(runs: list[dict]) -> list[dict]:
    out = {}
    for r in runs:
        out.setdefault((r["variant"], r["l1"], r["lr"], r["m"]), []).append(r)
    cells = []
    for (v, l1, lr, m), rows in out.items():
        mean, std = C.mean_std([r["dead_fraction"] for r in rows])
        cells.append({"variant": v, "l1": l1, "lr": lr, "m": m, "dead_mean": mean, "dead_std": std,
                      "l0_mean": C.mean_std([r["l0"] for r in rows])[0],
                      "ev_mean": C.mean_std([r["explained_variance"] for r in rows])[0],
                      "jaccard": rows[0]["jaccard_across_seeds"], "jaccard_chance": rows[0]["jaccard_chance"]})
    return cells


def _checks(cfg: StarvationConfig, cells: list[dict]) -> list[Check]:
    lo, hi = cfg.death_band
    l1 = [c for c in cells if c["variant"] == "relu_l1"]
    rates = [c["dead_mean"] for c in l1]
    in_band = [c for c in l1 if lo <= c["dead_mean"] <= hi]
    checks = [Check(
        f"l1 death rates fall in {lo:.0%}-{hi:.0%} depending on hyperparameters",
        bool(in_band),
        f"mean dead fraction per cell ranges {min(rates):.3f}-{max(rates):.3f}; {len(in_band)} of {len(l1)} cells in "
        f"the band (criterion: at least one cell in [{lo}, {hi}])")]
    with_death = [c for c in l1 if not np.isnan(c["jaccard"])]
    if len(cfg.seeds) < 2 or not with_death:
        checks.append(Check("which latents die depends on the seed", None,
                            "needs >= 2 seeds and dead latents in some cell"))
    else:
        j = float(np.mean([c["jaccard"] for c in with_death]))
        jc = float(np.mean([c["jaccard_chance"] for c in with_death]))
        checks.append(Check(
            "which latents die depends on the seed", j < 0.5,
            f"mean Jaccard of dead sets across data seeds (same initialization) = {j:.3f}, chance = {jc:.3f} "
            "(criterion: < 0.5, i.e. most dead latents differ between seeds)"))
    if "aen" in cfg.compare:
        pairs = [(c, next(a for a in cells if a["variant"] == "aen" and (a["l1"], a["lr"], a["m"]) ==
                          (c["l1"], c["lr"], c["m"]))) for c in l1]
        if max(rates) == 0:
            checks.append(Check("AEN reduces dead latents without resampling", None,
                                "no relu_l1 cell had dead latents, so there was nothing to reduce"))
        else:
            diff = [c["dead_mean"] - a["dead_mean"] for c, a in pairs]
            better = sum(d > 0 for d in diff)
            checks.append(Check(
                "AEN reduces dead latents without resampling", float(np.mean(diff)) > 0 and better > len(diff) / 2,
                f"relu_l1 minus aen dead fraction, mean over cells = {np.mean(diff):.3f}; aen lower in {better} of "
                f"{len(diff)} cells (criterion: mean > 0 and lower in a majority of cells)"))
    return checks


def _label(c: dict) -> str:
    l1 = "" if c["l1"] is None else f" l1={c['l1']:g}"
    return f"{c['variant']}{l1} lr={c['lr']:g} m={c['m']}"


def _curve_figure(curves: dict, variant: str):
    series = {}
    for (v, l1, lr, m), runs in curves.items():
        if v != variant:
            continue
        x = runs[0][0]
        y = np.mean([r[1] for r in runs], axis=0)
        series[_label({"variant": v, "l1": l1, "lr": lr, "m": m})] = (x, y)
    return C.line_figure(series, "training samples", "dead fraction (mean over seeds)",
                         f"{variant}: dead latents over training")
