"""Recipe `absorption`: feature absorption on the "hierarchy" world across variants and L0,
Matryoshka versus BatchTopK (Report metrics `absorption.*`, docs/metrics.md).

Claim: Matryoshka SAEs (nested dictionary prefixes, Bussmann et al. 2025; Nabeshima 2024) absorb
parent features into child latents less than flat BatchTopK SAEs at the same L0.

Matched L0: both are TopK-like (k active latents per sample in training), but their *measured* L0
differs from k (BatchTopK's inference threshold, Matryoshka's prefixes), so every comparison is made
where the measured L0s agree: (1) per k, a 2-SE comparison over seeds of the absorption rates
(`_common.directional_check`, which can report the opposite direction), made only where the two
mean measured L0s are within `l0_tolerance` of each other (inconclusive otherwise, with the L0s);
held when Matryoshka is lower at every matched k, did not hold when it is higher at some k;
(2) per seed, both absorption-vs-L0 curves interpolated in log measured L0 over the overlap of
their ranges (`_common.matched_difference`), the per-seed means compared with the same 2-SE rule.
Checks on SAEs that did not converge or collapsed are inconclusive (`_common.guard_convergence`).
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
    per SAE. seeds: one SAE per (variant, k, seed). l0_tolerance: two arms count as matched at a k
    when their mean measured L0s differ by at most this fraction (of the larger)."""

    n_samples: int = 2_000_000
    world: str = "hierarchy"
    variants: tuple[str, ...] = ("batchtopk", "matryoshka", "topk")
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    ks: tuple[int, ...] = (4, 8, 16, 32)
    m_sae: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    l0_tolerance: float = 0.1

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.nonempty_unique(self, "variants")
        C.nonempty_unique(self, "ks")
        C.seeds_ok(self)
        C.in_unit_interval(self, "l0_tolerance", closed=False)
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
                   ks=(4,), m_sae=64, seeds=(0, 1))


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


def _label(r: CellResult, name: str = "sae") -> str:
    return f"{r.params['variant']} k={r.params['k']} seed{r.params['seed']}"


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
                row[key], row[f"{key}.ci"] = C.mean_ci([r[key] for r in rows])
            summary.append(row)
    problems = C.convergence_problems(results, _label)
    checks = C.guard_convergence([_check(cfg, runs, summary), _check_matched_l0(cfg, runs)], problems, cfg.n_samples)
    metrics = {f"{r['variant']}.k{r['k']}.{key}": r[key] for r in summary for key in ("absorption.rate", "sparsity.l0",
                                                                                       "reconstruction.explained_variance")}
    figures = {}
    for key, label in (("absorption.rate", "absorption rate (full + partial)"), ("absorption.full_rate", "full absorption"),
                       ("reconstruction.explained_variance", "explained variance")):
        series = {v: ([r["sparsity.l0"] for r in summary if r["variant"] == v], [r[key] for r in summary if r["variant"] == v],
                      [r[f"{key}.ci"] for r in summary if r["variant"] == v]) for v in cfg.variants}
        figures[key.replace(".", "_")] = C.line_figure(series, "L0 (measured)", label,
                                                       f"{label} vs L0 (mean ± 95% CI over seeds)", logx=True)
    measured_l0 = {f"{v} k={k}": [r["sparsity.l0"] for r in runs if r["variant"] == v and r["k"] == k]
                   for v in cfg.variants for k in cfg.ks}
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}): {', '.join(cfg.variants)} with {cfg.m_sae} latents at k in "
        f"{list(cfg.ks)}, seeds {list(cfg.seeds)}, {cfg.n_steps} steps of {cfg.batch_size}; each evaluated on "
        f"{cfg.eval_samples} fresh samples with the `absorption.*` metrics of docs/metrics.md (full + partial absorption "
        "of a parent by its child's matched latent, on samples where both are active). Numbers are mean ± 95% CI over "
        f"seeds. Matched L0: the arms share k, and a k counts as matched only where the mean measured L0s differ by at "
        f"most {cfg.l0_tolerance:.0%}. Measured L0 on fresh samples: "
        + "; ".join(f"{name} {C.summary_text(v)}" for name, v in measured_l0.items()) + "."
    )
    claim = ("Feature absorption: under a feature hierarchy a parent stops firing where a child fires and the child "
             "latent absorbs the parent direction; Matryoshka SAEs reduce absorption relative to BatchTopK at equal L0 "
             "(Bussmann et al. 2025, \"Learning Multi-Level Features with Matryoshka SAEs\"; Chanin et al. 2024 on "
             "absorption; background claims 4-5).")
    tables = {"runs": runs, "summary": summary,
              "convergence": C.convergence_rows(results, _label, problems)}
    return RecipeResult("absorption", cfg, claim, measured, verdict(checks), metrics, tables, figures, [], checks)


RECIPE = register_grid_recipe(
    "absorption", AbsorptionConfig, "feature absorption on a hierarchy world: Matryoshka vs BatchTopK at matched L0",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)

PAIR = ("matryoshka", "batchtopk")
USES = ("matryoshka", "batchtopk")


def _check_matched_l0(cfg: AbsorptionConfig, runs: list[dict]) -> Check:
    statement = "Matryoshka absorbs less than BatchTopK at matched measured L0 (interpolated)"
    if not set(PAIR) <= set(cfg.variants):
        return Check(statement, None, "needs both batchtopk and matryoshka in variants")
    if len(cfg.ks) < 2:
        return Check(statement, None, "needs >= 2 values of k to interpolate in L0", uses=USES)
    per_seed = {v: [] for v in PAIR}
    for s in cfg.seeds:
        curves = {v: [r for r in runs if r["variant"] == v and r["seed"] == s] for v in PAIR}
        diff = C.matched_difference(curves["matryoshka"], curves["batchtopk"], "sparsity.l0", "absorption.rate")
        # matched_difference is the mean of (matryoshka - batchtopk) on the common grid; keep it as a pair of
        # values (diff, 0) per seed so the 2-SE rule applies to the per-seed differences
        per_seed["matryoshka"].append(diff)
        per_seed["batchtopk"].append(0.0 if math.isfinite(diff) else float("nan"))
    return C.directional_check(statement, per_seed["matryoshka"], per_seed["batchtopk"], expect=-1,
                            names=("matryoshka - batchtopk", "zero"),
                            quantity="per seed, absorption-rate difference interpolated in log measured L0 over the "
                                     "overlap of the two L0 ranges", opposite="Matryoshka absorbs more than BatchTopK",
                            uses=USES)


def _check(cfg: AbsorptionConfig, runs: list[dict], summary: list[dict]) -> Check:
    statement = "Matryoshka absorbs less than BatchTopK at every matched L0"
    if not set(PAIR) <= set(cfg.variants):
        return Check(statement, None, "needs both batchtopk and matryoshka in variants")
    parts = []
    for k in cfg.ks:
        vals = {v: [r["absorption.rate"] for r in runs if r["variant"] == v and r["k"] == k] for v in PAIR}
        l0 = {v: next(r["sparsity.l0"] for r in summary if r["variant"] == v and r["k"] == k) for v in PAIR}
        gap = abs(l0["matryoshka"] - l0["batchtopk"]) / max(l0["matryoshka"], l0["batchtopk"], 1e-12)
        if not gap <= cfg.l0_tolerance:
            parts.append((f"k={k}", Check(statement, None, f"L0 not matched: measured L0 matryoshka {C.fmt(l0['matryoshka'])} "
                                                           f"vs batchtopk {C.fmt(l0['batchtopk'])} (differ by {gap:.0%} > "
                                                           f"{cfg.l0_tolerance:.0%}); not compared")))
            continue
        parts.append((f"k={k}", C.directional_check(
            statement, vals["matryoshka"], vals["batchtopk"], expect=-1, names=("matryoshka", "batchtopk"),
            quantity=f"absorption rate (measured L0 {C.fmt(l0['matryoshka'])} vs {C.fmt(l0['batchtopk'])})",
            opposite="Matryoshka absorbs more than BatchTopK")))
    return C.all_of(statement, parts, uses=USES)
