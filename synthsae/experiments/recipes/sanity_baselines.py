"""Recipe `sanity_baselines`: trained SAEs versus the baselines of arXiv 2602.14111 -- a frozen
random decoder, a "soft-frozen" decoder (cos >= 0.8 to its random start) and a frozen random
encoder -- with the recovery rate of the true features next to explained variance.

All four are the same TopK SAE (`topk`, `frozen_decoder`, `soft_frozen_decoder`,
`frozen_encoder`: see synthsae/sae/frozen.py) with the same k (so the same L0), width, data and
steps, trained at two budgets (x1 and x4 `n_samples`): the headline "few features recovered at high
EV" depends on the training length and the learning rate (an audit found 7.6% recovery at 1M samples
and 51% at 4M for the same SAE at lr 1e-3; at the default lr 1e-2, 55% at 1M and 58% at 4M), so the
report gives the verdict at both budgets and says whether it changed.

Checks (per budget; the verdict is the largest budget's, the other's are sub-claims), each on
per-seed values with the 2-SE rule of `synthsae.stats`:
* "baseline b nearly matches the trained SAE's EV": d = EV(trained) - EV(b) per seed; held when
  mean(d) + 2 SE <= ev_margin, did not hold when mean(d) - 2 SE > ev_margin, else inconclusive;
* "the trained SAE recovers far fewer features than its EV suggests": g = EV - recovery@0.9 per
  seed; held when mean(g) - 2 SE >= recovery_gap, did not hold when mean(g) + 2 SE < recovery_gap.
The claim has two parts (baselines match; recovery is low): when one held and the other did not the
verdict is "mixed", not "did not hold".
"""

from __future__ import annotations

import dataclasses

from synthsae import stats
from synthsae.errors import require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict

BASELINES = ("frozen_decoder", "soft_frozen_decoder", "frozen_encoder")
VARIANTS = ("topk",) + BASELINES
KEYS = ("reconstruction.explained_variance", "recovery.rate@0.8", "recovery.rate@0.9", "recovery.mcc", "sparsity.l0",
        "latents.dead_fraction")
EV, REC = "reconstruction.explained_variance", "recovery.rate@0.9"
# The published comparison: "SAEs recovered only ~9% of true features while reaching 71% EV".
PUBLISHED = {"recovery": 0.09, "explained_variance": 0.71}


@dataclasses.dataclass(frozen=True)
class SanityConfig(C.RecipeConfig):
    """world: preset or world file / folder. k, m_sae: the TopK SAE (and baselines). seeds (>= 2 for a
    verdict). ev_margin: a baseline "nearly matches" when the trained SAE's EV exceeds its EV by at most
    this. recovery_gap: the trained SAE recovers "far fewer features than its EV suggests" when
    EV - rate@0.9 >= recovery_gap. budgets: multiples of n_samples each SAE is trained at."""

    n_samples: int = 1_000_000
    world: str = "hierarchy"
    k: int = 12
    m_sae: int = 512
    seeds: tuple[int, ...] = (0, 1, 2)
    ev_margin: float = 0.1
    recovery_gap: float = 0.3
    budgets: tuple[int, ...] = (1, 4)

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.seeds_ok(self)
        for v in VARIANTS:
            C.check_sae_spec(f"{name}.k/m_sae", v, {"k": self.k}, self.m_sae)
        C.in_unit_interval(self, "ev_margin", closed=False)
        C.in_unit_interval(self, "recovery_gap", closed=False)
        C.nonempty_unique(self, "budgets")
        require(all(isinstance(b, int) and b >= 1 for b in self.budgets), f"{name}.budgets", self.budgets,
                "budgets are multiples of n_samples", "ints >= 1, e.g. [1, 4]")

    @classmethod
    def small(cls) -> "SanityConfig":
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, world="toy", k=4, m_sae=128, seeds=(0, 1))


def _cells(cfg: SanityConfig) -> list[Cell]:
    return [Cell(f"x{b}-{variant}-seed{seed}", {"variant": variant, "seed": seed, "budget": b})
            for b in cfg.budgets for variant in VARIANTS for seed in cfg.seeds]



def _run_cell(cfg: SanityConfig, cell: Cell, ctx) -> dict:
    world = ctx.world()
    p = cell.params
    sae, _ = ctx.train(p["variant"], world, cfg.m_sae, {"k": cfg.k}, p["seed"], n_samples=cfg.n_samples * p["budget"])
    return {"row": {**C.pick(C.evaluate_sae(sae, world, cfg), KEYS), "world_m": world.m}}


def _label(p: dict) -> str:
    return f"x{p['budget']} {p['variant']} seed={p['seed']}"


def _band_check(statement: str, values: list[float], bound: float, below: bool, what: str, uses) -> Check:
    """held when the per-seed mean is beyond `bound` by 2 SE on the claimed side (below: mean + 2 SE <=
    bound; else mean - 2 SE >= bound), did not hold when beyond it by 2 SE on the other, else inconclusive."""
    vals = C.finite(values)
    if len(vals) < 2:
        return Check(statement, None, f"{what}: {C.summary_text(values)}; needs >= 2 seeds for the 2-SE rule", uses=uses)
    s = stats.summarize(vals)
    lo, hi = s.mean - stats.DEFAULT_THRESHOLD * s.se, s.mean + stats.DEFAULT_THRESHOLD * s.se
    if below:
        outcome = True if hi <= bound else False if lo > bound else None
        rule = f"held when mean + 2 SE <= {bound}, did not hold when mean - 2 SE > {bound}, else inconclusive"
    else:
        outcome = True if lo >= bound else False if hi < bound else None
        rule = f"held when mean - 2 SE >= {bound}, did not hold when mean + 2 SE < {bound}, else inconclusive"
    return Check(statement, outcome, f"{what}: {s.text()}, mean ± 2 SE = [{lo:.3g}, {hi:.3g}] (rule: {rule})", uses=uses)


def _checks(cfg: SanityConfig, results: list[CellResult], b: int) -> list[Check]:
    def per_seed(variant, key):
        return {r.params["seed"]: r.row[key] for r in results
                if (r.params["budget"], r.params["variant"]) == (b, variant)}

    trained_ev, trained_rec = per_seed("topk", EV), per_seed("topk", REC)
    checks = []
    for base in BASELINES:
        ev = per_seed(base, EV)
        gap = [trained_ev[s] - ev[s] for s in cfg.seeds if s in ev and s in trained_ev]
        checks.append(_band_check(
            f"{base} nearly matches the trained SAE's explained variance", gap, cfg.ev_margin, True,
            f"EV(trained) - EV({base}) per seed (trained {C.summary_text(list(trained_ev.values()))}, {base} "
            f"{C.summary_text(list(ev.values()))}; recovery@0.9 {base} {C.summary_text(list(per_seed(base, REC).values()))})",
            (f"x{b} topk ", f"x{b} {base} ")))
    diff = [trained_ev[s] - trained_rec[s] for s in cfg.seeds if s in trained_ev and s in trained_rec]
    checks.append(_band_check(
        "the trained SAE recovers far fewer features than its EV suggests", diff, cfg.recovery_gap, False,
        f"EV - recovery@0.9 of the trained SAE per seed (recovery@0.9 {C.summary_text(list(trained_rec.values()))} at EV "
        f"{C.summary_text(list(trained_ev.values()))}; published: {PUBLISHED['recovery']:.0%} at "
        f"{PUBLISHED['explained_variance']:.0%})", (f"x{b} topk ",)))
    return checks


def _conclude(config: SanityConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `sanity_baselines` from its finished cells (see the module
    docstring for what is measured and the verdict)."""
    cfg = config
    runs = [{**r.params, "sae": _label(r.params), **r.row} for r in results]
    world_m = int(results[0].row["world_m"])
    summary = []
    for b in cfg.budgets:
        for variant in VARIANTS:
            rows = [r.row for r in results if (r.params["budget"], r.params["variant"]) == (b, variant)]
            row = {"budget": b, "variant": variant, "n_samples": cfg.n_samples * b}
            for key in KEYS:
                row[key], row[f"{key}.ci95"] = C.mean_ci([r[key] for r in rows])
            row["converged"] = sum(bool(r.get("converged")) for r in rows)
            summary.append(row)
    problems = {k + " ": v for k, v in C.convergence_problems(results, lambda r, _: _label(r.params)).items()}
    top = max(cfg.budgets)
    checks, by_budget = [], {}
    for b in sorted(cfg.budgets, reverse=True):
        cb = C.guard_convergence(_checks(cfg, results, b), {k: v for k, v in problems.items() if k.startswith(f"x{b} ")},
                                 cfg.n_samples * b)
        by_budget[b] = cb
        if b != top:
            cb = [dataclasses.replace(c, statement=f"(budget x{b}) {c.statement}", sub_claim=True) for c in cb]
        checks += cb
    verdicts = {b: verdict(by_budget[b]) for b in cfg.budgets}
    metrics = {f"x{r['budget']}.{r['variant']}.{key}": r[key] for r in summary for key in KEYS[:4]}
    metrics["unconverged_saes"] = float(sum(1 for v in problems.values() if v))
    label = lambda r: f"{r['variant']} x{r['budget']}"  # noqa: E731
    figures = {
        "explained_variance": C.bar_figure({label(r): r[EV] for r in summary}, {label(r): r[f"{EV}.ci95"] for r in summary},
                                           "explained variance", "EV: trained vs baselines (95% CI over seeds)"),
        "recovery": C.bar_figure({label(r): r[REC] for r in summary}, {label(r): r[f"{REC}.ci95"] for r in summary},
                                 "recovery rate @ |cos| >= 0.9",
                                 "recovered true features: trained vs baselines (95% CI over seeds)"),
    }
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}, m = {world_m} true features): a trained TopK SAE and the three "
        f"baselines, each with k = {cfg.k} (the same L0) and {cfg.m_sae} latents, seeds {list(cfg.seeds)}, at budgets "
        + ", ".join(f"x{b} ({cfg.n_samples * b} samples, {cfg.n_samples * b // cfg.batch_size} steps of {cfg.batch_size})"
                    for b in cfg.budgets)
        + f". On {cfg.eval_samples} fresh samples: EV, MCC and the recovery rate (share of true features whose "
        "Hungarian-matched latent has |cos| >= 0.8 / 0.9), the kind of number behind \"9% of features at 71% EV\". "
        "Every number compared is a mean over seeds with its 95% t interval; a check on an SAE that did not converge "
        "is inconclusive.")
    claim = ("On synthetic data SAEs recovered only ~9% of the true features while reaching 71% explained variance, and "
             "baselines with a frozen random decoder, a soft-frozen decoder (cosine >= 0.8 to its random start) or a "
             "frozen random encoder nearly match trained SAEs (arXiv 2602.14111; background claim 6).")
    trained = {b: next(r for r in summary if (r["budget"], r["variant"]) == (b, "topk")) for b in cfg.budgets}
    changed = len(set(verdicts.values())) > 1
    sections = [("Training length", (
        " ".join(f"At x{b} ({cfg.n_samples * b} samples) the trained SAE recovers {C.fmt(trained[b][REC])} of the "
                 f"features at |cos| >= 0.9 at EV {C.fmt(trained[b][EV])}; the verdict is **{verdicts[b]}**."
                 for b in cfg.budgets)
        + (" The conclusion **changed** with the training length: the headline depends on how long the SAE trained."
           if changed else " The conclusion did not change between budgets.")
        + f" The verdict above is the one at x{top}.")),
        ("Reading this", (
            "EV near the trained SAE's while recovery is far lower means EV alone cannot certify that features were "
            "found. The published 9% / 71% depends on the paper's world and training length; here the world is stated "
            "above, so absolute numbers differ -- the comparison that transfers is baseline vs trained at equal settings. "
            "\"Mixed\" means one part of the claim held and the other did not; \"did not hold\" that every judged part "
            "failed."))]
    return RecipeResult("sanity_baselines", cfg, claim, measured, verdict(by_budget[top]), metrics,
                        {"runs": runs, "summary": summary, "convergence": C.convergence_table(runs)}, figures, sections,
                        checks)


RECIPE = register_grid_recipe(
    "sanity_baselines", SanityConfig,
    "trained TopK SAEs vs frozen / soft-frozen decoder and frozen encoder: recovery next to EV, at two budgets",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)
