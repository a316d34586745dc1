"""Recipe `sanity_baselines`: trained SAEs versus the baselines of arXiv 2602.14111 -- a frozen
random decoder, a "soft-frozen" decoder (cos >= 0.8 to its random start) and a frozen random
encoder -- with the recovery rate of the true features next to explained variance.

All four are the same TopK SAE (`topk`, `frozen_decoder`, `soft_frozen_decoder`,
`frozen_encoder`: see synthsae/sae/frozen.py) with the same k, width, data and steps.
"""

from __future__ import annotations

import dataclasses

from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict

BASELINES = ("frozen_decoder", "soft_frozen_decoder", "frozen_encoder")
KEYS = ("reconstruction.explained_variance", "recovery.rate@0.8", "recovery.rate@0.9", "recovery.mcc", "sparsity.l0",
        "latents.dead_fraction")
# The published comparison: "SAEs recovered only ~9% of true features while reaching 71% EV".
PUBLISHED = {"recovery": 0.09, "explained_variance": 0.71}


@dataclasses.dataclass(frozen=True)
class SanityConfig(C.RecipeConfig):
    """world: preset. k, m_sae: the TopK SAE (and baselines). seeds. ev_margin: a baseline "nearly
    matches" when its EV is within this of the trained SAE's. recovery_gap: the trained SAE recovers
    "far fewer features than its EV suggests" when rate@0.9 <= EV - recovery_gap."""

    n_samples: int = 2_000_000
    world: str = "hierarchy"
    k: int = 12
    m_sae: int = 512
    seeds: tuple[int, ...] = (0, 1, 2)
    ev_margin: float = 0.1
    recovery_gap: float = 0.3
    min_ev: float = 0.5

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.seeds_ok(self)
        for v in ("topk",) + BASELINES:
            C.check_sae_spec(f"{name}.k/m_sae", v, {"k": self.k}, self.m_sae)
        C.in_unit_interval(self, "ev_margin", closed=False)
        C.in_unit_interval(self, "recovery_gap", closed=False)
        C.in_unit_interval(self, "min_ev")

    @classmethod
    def small(cls) -> "SanityConfig":
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, world="toy", k=4, m_sae=128, seeds=(0,))


def _cells(cfg: SanityConfig) -> list[Cell]:
    return [Cell(f"{variant}-seed{seed}", {"variant": variant, "seed": seed})
            for variant in ("topk",) + BASELINES for seed in cfg.seeds]



def _run_cell(cfg: SanityConfig, cell: Cell, ctx) -> dict:
    world = ctx.world()
    sae, _ = ctx.train(cell.params["variant"], world, cfg.m_sae, {"k": cfg.k}, cell.params["seed"])
    return {"row": {**C.pick(C.evaluate_sae(sae, world, cfg), KEYS), "world_m": world.m}}


def _conclude(config: SanityConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `sanity_baselines` from its finished cells (see the module
    docstring for what is measured and the verdict)."""
    cfg = config
    runs = [{**r.params, **{k: r.row[k] for k in KEYS}} for r in results]
    world_m = int(results[0].row["world_m"])
    summary = []
    for variant in ("topk",) + BASELINES:
        rows = [r for r in runs if r["variant"] == variant]
        row = {"variant": variant}
        for key in KEYS:
            row[key], row[f"{key}.std"] = C.mean_std([r[key] for r in rows])
        summary.append(row)
    by = {r["variant"]: r for r in summary}
    ev_key, rec_key = "reconstruction.explained_variance", "recovery.rate@0.9"
    trained = by["topk"]
    checks = []
    for b in BASELINES:
        gap = trained[ev_key] - by[b][ev_key]
        checks.append(Check(
            f"{b} nearly matches the trained SAE's explained variance", bool(gap <= cfg.ev_margin),
            f"EV trained {trained[ev_key]:.3f} vs {b} {by[b][ev_key]:.3f}, recovery@0.9 {trained[rec_key]:.3f} vs "
            f"{by[b][rec_key]:.3f} (criterion: EV gap <= {cfg.ev_margin})"))
    checks.append(Check(
        "the trained SAE recovers far fewer features than its EV suggests",
        bool(trained[rec_key] <= trained[ev_key] - cfg.recovery_gap),
        f"recovery@0.9 {trained[rec_key]:.3f} at EV {trained[ev_key]:.3f} (published: {PUBLISHED['recovery']:.0%} at "
        f"{PUBLISHED['explained_variance']:.0%}; criterion: recovery <= EV - {cfg.recovery_gap})"))
    checks = C.require_trained(checks, {"topk": trained[ev_key]}, cfg.min_ev)
    metrics = {f"{r['variant']}.{key}": r[key] for r in summary for key in KEYS[:4]}
    figures = {
        "explained_variance": C.bar_figure({r["variant"]: r[ev_key] for r in summary},
                                           {r["variant"]: r[f"{ev_key}.std"] for r in summary}, "explained variance",
                                           "EV: trained vs baselines"),
        "recovery": C.bar_figure({r["variant"]: r[rec_key] for r in summary},
                                 {r["variant"]: r[f"{rec_key}.std"] for r in summary}, "recovery rate @ |cos| >= 0.9",
                                 "recovered true features: trained vs baselines"),
    }
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}, m = {world_m} true features): a trained TopK SAE and the three "
        f"baselines, each with k = {cfg.k} and {cfg.m_sae} latents, seeds {list(cfg.seeds)}, {cfg.n_steps} steps of "
        f"{cfg.batch_size}. On {cfg.eval_samples} fresh samples: EV, MCC and the recovery rate (share of true features "
        "whose Hungarian-matched latent has |cos| >= 0.8 / 0.9), the kind of number behind \"9% of features at 71% EV\"."
    )
    claim = ("On synthetic data SAEs recovered only ~9% of the true features while reaching 71% explained variance, and "
             "baselines with a frozen random decoder, a soft-frozen decoder (cosine >= 0.8 to its random start) or a "
             "frozen random encoder nearly match trained SAEs (arXiv 2602.14111; background claim 6).")
    sections = [("Reading this", (
        "EV near the trained SAE's while recovery is far lower means EV alone cannot certify that features were found. "
        "The published 9% / 71% depends on the paper's world; here the world is stated above, so absolute numbers "
        "differ -- the comparison that transfers is baseline vs trained at equal settings."))]
    return RecipeResult("sanity_baselines", cfg, claim, measured, verdict(checks), metrics,
                        {"runs": runs, "summary": summary}, figures, sections, checks)


RECIPE = register_grid_recipe(
    "sanity_baselines", SanityConfig,
    "trained TopK SAEs vs frozen / soft-frozen decoder and frozen encoder: recovery next to EV",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)
