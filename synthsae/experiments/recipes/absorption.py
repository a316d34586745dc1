"""Recipe `absorption`: feature absorption on the "hierarchy" world across variants and L0,
Matryoshka versus BatchTopK (Report metrics `absorption.*`, docs/metrics.md).

Claim: Matryoshka SAEs (nested dictionary prefixes, Bussmann et al. 2025; Nabeshima 2024) absorb
parent features into child latents less than flat BatchTopK SAEs at the same L0.
Criterion, per k: the difference of mean absorption rates (BatchTopK - Matryoshka) over seeds is
"clear" when it exceeds twice its standard error (seed-to-seed spread; with one seed every
non-zero difference counts). Held if Matryoshka is clearly lower at every k; did not hold if it
is clearly higher at some k; inconclusive otherwise. Because the measured L0 of BatchTopK-style
SAEs differs from k (inference threshold), a second check compares the two at matched measured L0
(interpolation in log L0, `_common.matched_difference`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from synthsae.errors import fail, require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict
from synthsae.sae.base import SAE_CONFIGS
from synthsae.sae.topk import TopKConfig

KEYS = ("absorption.rate", "absorption.full_rate", "absorption.partial_rate", "absorption.parent_miss_rate",
        "reconstruction.explained_variance", "sparsity.l0", "recovery.mcc", "recovery.rate@0.8")


@dataclasses.dataclass(frozen=True)
class AbsorptionConfig(C.RecipeConfig):
    """world: a preset with a hierarchy. variants: SAE variants that take k (the L0 knob), with
    optional extra hyperparameters in `options` (variant -> dict). ks: the L0 grid. m_sae: latents
    per SAE. seeds: one SAE per (variant, k, seed). min_ev: an SAE below this EV is undertrained
    and makes the verdict inconclusive."""

    n_samples: int = 2_000_000
    world: str = "hierarchy"
    variants: tuple[str, ...] = ("batchtopk", "matryoshka", "topk")
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    ks: tuple[int, ...] = (4, 8, 16, 32)
    m_sae: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    min_ev: float = 0.5

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.nonempty_unique(self, "variants")
        C.nonempty_unique(self, "ks")
        C.seeds_ok(self)
        C.in_unit_interval(self, "min_ev")
        for v in self.variants:
            if v not in SAE_CONFIGS or not issubclass(SAE_CONFIGS.get(v), TopKConfig):
                k_variants = [n for n in SAE_CONFIGS.available() if issubclass(SAE_CONFIGS.get(n), TopKConfig)]
                fail(f"{name}.variants", v, "this recipe sweeps k, so every variant must take k", f"some of {k_variants}")
        for v in self.options:
            require(v in self.variants, f"{name}.options", v, "options for a variant that is not run",
                    f"keys among {list(self.variants)}")
        for v in self.variants:
            for k in self.ks:
                C.check_sae_spec(f"{name}.options.{v}", v, {**self.options.get(v, {}), "k": k}, self.m_sae)

    @classmethod
    def small(cls) -> "AbsorptionConfig":
        return cls(n_samples=30 * 256, batch_size=256, eval_samples=2048, variants=("batchtopk", "matryoshka"),
                   ks=(4,), m_sae=64, seeds=(0,))


def _cells(cfg: AbsorptionConfig) -> list[Cell]:
    return [Cell(f"{variant}-k{k}-seed{seed}", {"variant": variant, "k": k, "seed": seed})
            for variant in cfg.variants for k in cfg.ks for seed in cfg.seeds]



def _run_cell(cfg: AbsorptionConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    sae, _ = ctx.train(p["variant"], world, cfg.m_sae, {**cfg.options.get(p["variant"], {}), "k": p["k"]}, p["seed"])
    rep = C.evaluate_sae(sae, world, cfg, metrics=("reconstruction", "recovery", "absorption"))
    if "absorption" in rep.not_applicable:
        fail("absorption recipe world", cfg.world, rep.not_applicable["absorption"], "a world with a hierarchy")
    return {"row": C.pick(rep, KEYS)}


def _conclude(config: AbsorptionConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of the `absorption` recipe from its finished cells (see the
    module docstring for what is measured and the verdict)."""
    cfg = config
    runs = [{**r.params, **r.row} for r in results]
    summary = []
    for variant in cfg.variants:
        for k in cfg.ks:
            rows = [r for r in runs if r["variant"] == variant and r["k"] == k]
            row = {"variant": variant, "k": k}
            for key in KEYS:
                row[key], row[f"{key}.std"] = C.mean_std([r[key] for r in rows])
            summary.append(row)
    checks = C.require_trained([_check(cfg, summary), _check_matched_l0(cfg, summary)], {f"{r['variant']} k={r['k']}": r["reconstruction.explained_variance"]
                                                        for r in summary}, cfg.min_ev)
    metrics = {f"{r['variant']}.k{r['k']}.{key}": r[key] for r in summary for key in ("absorption.rate", "sparsity.l0",
                                                                                       "reconstruction.explained_variance")}
    figures = {}
    for key, label in (("absorption.rate", "absorption rate (full + partial)"), ("absorption.full_rate", "full absorption"),
                       ("reconstruction.explained_variance", "explained variance")):
        series = {v: ([r["sparsity.l0"] for r in summary if r["variant"] == v], [r[key] for r in summary if r["variant"] == v])
                  for v in cfg.variants}
        figures[key.replace(".", "_")] = C.line_figure(series, "L0 (measured)", label, f"{label} vs L0", logx=True)
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}): {', '.join(cfg.variants)} with {cfg.m_sae} latents at k in "
        f"{list(cfg.ks)}, seeds {list(cfg.seeds)}, {cfg.n_steps} steps of {cfg.batch_size}; each evaluated on "
        f"{cfg.eval_samples} fresh samples with the `absorption.*` metrics of docs/metrics.md (full + partial absorption "
        "of a parent by its child's matched latent, on samples where both are active)."
    )
    claim = ("Feature absorption: under a feature hierarchy a parent stops firing where a child fires and the child "
             "latent absorbs the parent direction; Matryoshka SAEs reduce absorption relative to BatchTopK at equal L0 "
             "(Bussmann et al. 2025, \"Learning Multi-Level Features with Matryoshka SAEs\"; Chanin et al. 2024 on "
             "absorption; background claims 4-5).")
    return RecipeResult("absorption", cfg, claim, measured, verdict(checks), metrics,
                        {"runs": runs, "summary": summary}, figures, [], checks)


RECIPE = register_grid_recipe(
    "absorption", AbsorptionConfig, "feature absorption on a hierarchy world: Matryoshka vs BatchTopK across L0",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)


def _check_matched_l0(cfg: AbsorptionConfig, summary: list[dict]) -> Check:
    statement = "Matryoshka absorbs less than BatchTopK at matched measured L0"
    if not {"batchtopk", "matryoshka"} <= set(cfg.variants):
        return Check(statement, None, "needs both batchtopk and matryoshka in variants")
    rows = {v: [r for r in summary if r["variant"] == v] for v in ("batchtopk", "matryoshka")}
    diff = C.matched_difference(rows["batchtopk"], rows["matryoshka"], "sparsity.l0", "absorption.rate")
    return Check(statement, None if diff != diff else bool(diff > 0),
                 f"BatchTopK minus Matryoshka absorption rate, interpolated in log L0 over the overlap of their measured "
                 f"L0 ranges: {C.fmt(diff)} (criterion: > 0; inconclusive without overlap). k alone does not fix L0: "
                 "BatchTopK's inference threshold and Matryoshka's prefixes move it.")


def _check(cfg: AbsorptionConfig, summary: list[dict]) -> Check:
    statement = "Matryoshka absorbs less than BatchTopK at every L0"
    if not {"batchtopk", "matryoshka"} <= set(cfg.variants):
        return Check(statement, None, "needs both batchtopk and matryoshka in variants")
    n = len(cfg.seeds)
    verdicts, parts = [], []
    for k in cfg.ks:
        b = next(r for r in summary if r["variant"] == "batchtopk" and r["k"] == k)
        m = next(r for r in summary if r["variant"] == "matryoshka" and r["k"] == k)
        diff = b["absorption.rate"] - m["absorption.rate"]
        sds = [s for s in (b["absorption.rate.std"], m["absorption.rate.std"]) if not math.isnan(s)]
        se = math.sqrt(sum(s * s for s in sds) / n) if len(sds) == 2 else 0.0
        clear = abs(diff) > 2 * se if not math.isnan(diff) else False
        verdicts.append(0 if not clear else (1 if diff > 0 else -1))
        parts.append(f"k={k}: {b['absorption.rate']:.3f} vs {m['absorption.rate']:.3f} (diff {diff:+.3f}, 2SE {2 * se:.3f})")
    outcome = True if all(v == 1 for v in verdicts) else (False if any(v == -1 for v in verdicts) else None)
    return Check(statement, outcome, "BatchTopK vs Matryoshka absorption rate, " + "; ".join(parts)
                 + " (criterion: Matryoshka lower by > 2 SE at every k)")
