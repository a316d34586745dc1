"""Recipe `starvation`: dead latents of ReLU+l1 SAEs across l1 weight x learning rate x dictionary
size x seeds, whether the same latents die, and whether AEN reduces death at matched L0.

Claim (background claims 1-2): l1 SAEs lose 15-40% of their latents depending on hyperparameters;
which latents die depends on the seed; the adaptive elastic-net SAE (arXiv 2605.05341) reduces
death without resampling. No run here resamples (`resample_every=None`).

Dead, one definition: a latent is dead when it never fires on `eval_samples` fresh samples (seeded
`eval_seed`, disjoint from training). It drives the checks, tables and plots; the in-training count
(no fire in the last `dead_after_steps` training steps, `sae.dead_mask()`) is reported beside it.

Two arms, each at two budgets (x1 and x4 `n_samples`, `budgets`):
* grid: relu_l1 over l1 x lr x m x seeds (the death-rate and seed-dependence checks);
* matched: relu_l1, aen and topk (`compare`) over lr x m x seeds at the same L0 -- topk with k =
  `topk_k`, relu_l1 and aen trained with `target_l0 = topk_k` (their coefficient adapted during
  training, starting at `matched_start_l1`) -- for the AEN check, a directional 2-SE comparison over
  seeds that can also find that AEN *increases* starvation.

"Same latents across seeds": every run of a grid cell starts from the *same* initialization
(`init_seed`) and differs only in its data seed, so latent i is the same starting direction in
every run and dead sets can be compared index by index (Jaccard overlap against the overlap two
independent random sets of the same sizes would have).

The verdict is the checks at the largest budget; the checks at the smaller budget are reported as
sub-claims, and a section says whether the conclusion changed between budgets.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from synthsae import stats
from synthsae.errors import fail, require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict

COMPARABLE = ("aen", "topk")


@dataclasses.dataclass(frozen=True)
class StarvationConfig(C.RecipeConfig):
    """world: preset or world file / folder. l1_coefficients x learning_rates x dictionary_sizes x seeds:
    the relu_l1 grid. seeds are data seeds; every run starts from the initialization `init_seed`.
    compare: variants of the matched-L0 arm besides relu_l1 (aen, topk). topk_k: TopK's k and the
    target L0 of the matched relu_l1 / aen SAEs; matched_start_l1: their starting coefficient.
    aen_l2_coefficient; aen_warmup_fraction / aen_ramp_fraction: AEN's adaptive weights start after
    this share of the steps and fade in over the next share (scaled to every run length).
    dead_after_steps: the in-training dead window (reported beside the fresh-sample definition).
    death_band: the claimed range of l1 death rates. budgets: multiples of n_samples each cell is
    trained at. (`lr` is unused: see learning_rates.)"""

    n_samples: int = 1_000_000
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
    aen_ramp_fraction: float = 0.1
    topk_k: int = 4
    matched_start_l1: float = 0.03
    dead_after_steps: int = 500
    death_band: tuple[float, ...] = (0.15, 0.40)
    budgets: tuple[int, ...] = (1, 4)

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
        C.positive(self, "matched_start_l1")
        C.in_unit_interval(self, "aen_warmup_fraction")
        C.in_unit_interval(self, "aen_ramp_fraction", closed=False)
        require(self.aen_warmup_fraction + self.aen_ramp_fraction < 1, f"{name}.aen_warmup_fraction",
                self.aen_warmup_fraction, f"with aen_ramp_fraction = {self.aen_ramp_fraction} AEN's adaptive weights "
                "would not be fully on before the run ends", f"< {1 - self.aen_ramp_fraction:g}")
        require(self.topk_k >= 1, f"{name}.topk_k", self.topk_k, "k must be positive", "an int >= 1")
        require(1 <= self.dead_after_steps < self.n_steps, f"{name}.dead_after_steps", self.dead_after_steps,
                f"death is only observable if the window is shorter than the run ({self.n_steps} steps)",
                f"an int in [1, {self.n_steps - 1}]")
        require(len(self.death_band) == 2, f"{name}.death_band", self.death_band, "a range has two ends", "[lo, hi]")
        lo, hi = self.death_band
        require(0 <= lo < hi <= 1, f"{name}.death_band", self.death_band, "a range of fractions", "(lo, hi), 0 <= lo < hi <= 1")
        C.nonempty_unique(self, "budgets")
        require(all(isinstance(b, int) and b >= 1 for b in self.budgets), f"{name}.budgets", self.budgets,
                "budgets are multiples of n_samples", "ints >= 1, e.g. [1, 4]")

    @classmethod
    def small(cls) -> "StarvationConfig":
        return cls(n_samples=30 * 256, batch_size=256, eval_samples=2048, l1_coefficients=(0.3,),
                   learning_rates=(3e-3,), dictionary_sizes=(128,), seeds=(0, 1), dead_after_steps=10)


def _steps(cfg: StarvationConfig, budget: int) -> int:
    return cfg.n_samples * budget // cfg.batch_size


def _hyper(cfg: StarvationConfig, p: dict) -> tuple[dict, dict]:
    """(SAE hyperparameters, extra train options) of a cell."""
    common = {"dead_after_steps": cfg.dead_after_steps}
    variant = p["variant"]
    if variant == "topk":
        return {**common, "k": cfg.topk_k}, {}
    l1 = p["l1"] if p["arm"] == "grid" else cfg.matched_start_l1
    extra = {} if p["arm"] == "grid" else C.matched_l0(variant, cfg.topk_k)
    if variant == "relu_l1":
        return {**common, "l1_coefficient": l1}, extra
    return C.aen_arm(_steps(cfg, p["budget"]), cfg.aen_warmup_fraction, cfg.aen_ramp_fraction, **common,
                     l1_coefficient=l1, l2_coefficient=cfg.aen_l2_coefficient), extra


def aen_arms(cfg: StarvationConfig) -> list[tuple[str, dict, int]]:
    """The AEN arms (label, hyperparameters, steps): the conformance test checks they switch on."""
    return [(f"x{b} matched aen", _hyper(cfg, {"arm": "matched", "variant": "aen", "budget": b})[0], _steps(cfg, b))
            for b in cfg.budgets if "aen" in cfg.compare]


def _jaccard(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Observed Jaccard of two dead masks and the Jaccard expected for independent random sets of the
    same sizes (E|A n B| = |A||B|/m). NaN when both are empty."""
    na, nb, m = int(a.sum()), int(b.sum()), a.size
    if na + nb == 0:
        return float("nan"), float("nan")
    inter = int((a & b).sum())
    e = na * nb / m
    return inter / (na + nb - inter), e / (na + nb - e)


def _cell_list(cfg: StarvationConfig) -> list[Cell]:
    out = []
    for b in cfg.budgets:
        for l1, lr, m, seed in itertools.product(cfg.l1_coefficients, cfg.learning_rates, cfg.dictionary_sizes, cfg.seeds):
            out.append(Cell(f"x{b}-grid-relu_l1-l1{l1:g}-lr{lr:g}-m{m}-seed{seed}",
                            {"arm": "grid", "variant": "relu_l1", "l1": l1, "lr": lr, "m": m, "seed": seed, "budget": b}))
        for variant, lr, m, seed in itertools.product(("relu_l1",) + tuple(cfg.compare), cfg.learning_rates,
                                                      cfg.dictionary_sizes, cfg.seeds):
            out.append(Cell(f"x{b}-matched-{variant}-lr{lr:g}-m{m}-seed{seed}",
                            {"arm": "matched", "variant": variant, "l1": None, "lr": lr, "m": m, "seed": seed,
                             "budget": b}))
    return out



def _run_cell(cfg: StarvationConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    hyper, extra = _hyper(cfg, p)
    n = cfg.n_samples * p["budget"]
    sae, _ = ctx.train(p["variant"], world, p["m"], hyper, cfg.init_seed, data_seed=p["seed"], lr=p["lr"],
                       n_samples=n, log_every=max(1, n // cfg.batch_size // 50), **extra)
    dead = C.never_fired(sae, world, cfg.eval_samples, cfg.eval_seed, ctx.device)
    rep = C.evaluate_sae(sae, world, cfg)
    row = {"dead_fraction": float(dead.mean()), "dead_window_fraction": float(sae.dead_mask().float().mean()),
           "l0": rep["sparsity.l0"], "explained_variance": rep["reconstruction.explained_variance"],
           "mcc": rep["recovery.mcc"]}
    return {"row": row, "data": {"dead": [int(i) for i in np.flatnonzero(dead)]}}


def _label(p: dict) -> str:
    l1 = "" if p.get("l1") is None else f" l1={p['l1']:g}"
    return f"x{p['budget']} {p['arm']} {p['variant']}{l1} lr={p['lr']:g} m={p['m']} seed={p['seed']}"


def _group_label(c: dict) -> str:
    l1 = "" if c.get("l1") is None else f" l1={c['l1']:g}"
    return f"x{c['budget']} {c['arm']} {c['variant']}{l1} lr={c['lr']:g} m={c['m']}"


def _conclude(config: StarvationConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `starvation` from its finished cells (see the module docstring
    for what is measured and the verdict)."""
    cfg = config
    runs = [{**r.params, "sae": _label(r.params), **r.row} for r in results]
    groups: dict[tuple, list[CellResult]] = {}
    for r in results:
        p = r.params
        groups.setdefault((p["budget"], p["arm"], p["variant"], p["l1"], p["lr"], p["m"]), []).append(r)
    cells = []
    for (b, arm, variant, l1, lr, m), rs in groups.items():
        masks = []
        for r in rs:
            mask = np.zeros(m, dtype=bool)
            mask[r.data["dead"]] = True
            masks.append(mask)
        pairs = [_jaccard(a, c) for a, c in itertools.combinations(masks, 2)]
        jac = C.finite([p[0] for p in pairs])
        chance = C.finite([p[1] for p in pairs])
        dead = [r.row["dead_fraction"] for r in rs]
        mean, half = C.mean_ci(dead)
        cells.append({"budget": b, "arm": arm, "variant": variant, "l1": l1, "lr": lr, "m": m,
                      "dead_mean": mean, "dead_ci": half, "dead": C.summary_text(dead),
                      "dead_window_mean": C.mean_ci([r.row["dead_window_fraction"] for r in rs])[0],
                      "l0": C.summary_text([r.row["l0"] for r in rs]),
                      "probe_l0_mean": C.mean_ci([r.row.get("probe_l0", float("nan")) for r in rs])[0],
                      "ev_mean": C.mean_ci([r.row["explained_variance"] for r in rs])[0],
                      "jaccard": float(np.mean(jac)) if jac else float("nan"),
                      "jaccard_chance": float(np.mean(chance)) if chance else float("nan")})
    problems = C.convergence_problems(results, lambda r, _: _label(r.params))
    top = max(cfg.budgets)
    checks, by_budget = [], {}
    for b in sorted(cfg.budgets, reverse=True):
        cb = C.guard_convergence(_checks(cfg, [c for c in cells if c["budget"] == b], results, b),
                                 {k: v for k, v in problems.items() if k.startswith(f"x{b} ")}, cfg.n_samples * b)
        by_budget[b] = cb
        if b != top:
            cb = [dataclasses.replace(c, statement=f"(budget x{b}) {c.statement}", sub_claim=True) for c in cb]
        checks += cb

    metrics = {}
    for b in cfg.budgets:
        for (arm, v) in sorted({(c["arm"], c["variant"]) for c in cells}):
            vals = [c["dead_mean"] for c in cells if (c["budget"], c["arm"], c["variant"]) == (b, arm, v)]
            metrics[f"x{b}.{arm}.{v}.dead_fraction_min"] = float(min(vals))
            metrics[f"x{b}.{arm}.{v}.dead_fraction_max"] = float(max(vals))
        grid = [c for c in cells if c["budget"] == b and c["arm"] == "grid"]
        metrics[f"x{b}.grid.relu_l1.jaccard_across_seeds"] = _nanmean([c["jaccard"] for c in grid])
        metrics[f"x{b}.grid.relu_l1.jaccard_chance"] = _nanmean([c["jaccard_chance"] for c in grid])
    metrics["unconverged_saes"] = float(sum(1 for v in problems.values() if v))

    figures = {"dead_vs_l1": _dead_figure(cfg, cells),
               "dead_matched_l0": C.bar_figure({_group_label(c): c["dead_mean"] for c in cells if c["arm"] == "matched"},
                                               {_group_label(c): c["dead_ci"] for c in cells if c["arm"] == "matched"},
                                               f"never fired on {cfg.eval_samples} fresh samples",
                                               f"dead latents at matched L0 = {cfg.topk_k} (95% CI over seeds)")}
    matched_l0 = {v: [r.row.get("probe_l0", float("nan")) for r in results
                      if (r.params["budget"], r.params["arm"], r.params["variant"]) == (top, "matched", v)]
                  for v in ("relu_l1",) + tuple(cfg.compare)}
    verdicts = {b: verdict(by_budget[b]) for b in cfg.budgets}
    changed = len(set(verdicts.values())) > 1
    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}). Grid arm: relu_l1 for l1 {list(cfg.l1_coefficients)} x lr "
        f"{list(cfg.learning_rates)} x m {list(cfg.dictionary_sizes)}. Matched arm: relu_l1"
        + (f", {', '.join(cfg.compare)}" if cfg.compare else "")
        + f" for every lr x m at L0 = {cfg.topk_k}. {C.matched_l0_text(cfg.topk_k, matched_l0)} Every SAE is trained "
        f"once per data seed {list(cfg.seeds)}, all from the initialization seeded {cfg.init_seed}, with no resampling, "
        f"at budgets {', '.join(f'x{b} ({cfg.n_samples * b} samples, {_steps(cfg, b)} steps of {cfg.batch_size})' for b in cfg.budgets)}. "
        f"AEN's adaptive weights start after {cfg.aen_warmup_fraction:.0%} of the steps and are fully on after "
        f"{cfg.aen_warmup_fraction + cfg.aen_ramp_fraction:.0%}. Dead = never fired on {cfg.eval_samples} fresh samples "
        f"(seed {cfg.eval_seed}); the in-training count (no fire in the last {cfg.dead_after_steps} steps) is the "
        "`dead_window_mean` column. Dead sets of the seeds of one cell are compared by Jaccard overlap, next to the "
        "overlap of independent random sets of the same sizes. Every number compared is a mean over seeds with its 95% "
        "t interval; every SAE's convergence diagnostic is in `runs` and a check on an SAE that did not converge is "
        "inconclusive.")
    claim = ("Standard ReLU+l1 SAEs suffer feature starvation: 15-40% of latents die depending on l1 weight, "
             "learning rate and dictionary size, and which latents die depends on the seed; the adaptive "
             "elastic-net SAE reduces dead latents without resampling (background claims 1-2; AEN-SAE, "
             "arXiv 2605.05341; death rates as reported for l1 SAEs, e.g. Bricken et al. 2023).")
    sections = [("Training length", (
        " ".join(f"At budget x{b} ({cfg.n_samples * b} samples) the verdict is **{verdicts[b]}**." for b in cfg.budgets)
        + (" The conclusion **changed** with the training length." if changed else
           " The conclusion did not change between budgets.")
        + f" The verdict above is the one at x{top}; the x{min(cfg.budgets)} checks are listed as sub-claims."))]
    conv_rows = C.convergence_table(runs)
    return RecipeResult("starvation", cfg, claim, measured, verdict(by_budget[top]), metrics,
                        {"runs": runs, "cells": cells, "convergence": conv_rows}, figures, sections, checks)


RECIPE = register_grid_recipe(
    "starvation", StarvationConfig,
    "dead latents of l1 SAEs across l1 x lr x size x seeds, which latents die, and AEN / TopK at matched L0",
    cells=_cell_list, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)


def _nanmean(values: list[float]) -> float:
    kept = C.finite(values)
    return float(np.mean(kept)) if kept else float("nan")


def _checks(cfg: StarvationConfig, cells: list[dict], results: list[CellResult], b: int) -> list[Check]:
    lo, hi = cfg.death_band
    grid = [c for c in cells if c["arm"] == "grid"]
    rates = [c["dead_mean"] for c in grid]
    in_band = [c for c in grid if lo <= c["dead_mean"] <= hi]
    checks = [Check(
        f"l1 death rates fall in {lo:.0%}-{hi:.0%} depending on hyperparameters", bool(in_band),
        f"dead = never fired on {cfg.eval_samples} fresh samples; mean dead fraction per grid cell ranges "
        f"{min(rates):.3f}-{max(rates):.3f}; {len(in_band)} of {len(grid)} cells in the band (criterion: at least one "
        f"cell's mean over seeds in [{lo}, {hi}])", uses=(f"x{b} grid",))]
    with_death = [c for c in grid if not np.isnan(c["jaccard"])]
    if len(cfg.seeds) < 2 or not with_death:
        checks.append(Check("which latents die depends on the seed", None,
                            "needs >= 2 seeds and dead latents in some grid cell", uses=(f"x{b} grid",)))
    else:
        j = float(np.mean([c["jaccard"] for c in with_death]))
        jc = float(np.mean([c["jaccard_chance"] for c in with_death]))
        checks.append(Check(
            "which latents die depends on the seed", j < 0.5,
            f"mean Jaccard of dead sets across data seeds (same initialization) = {j:.3f}, chance = {jc:.3f}, over "
            f"{len(with_death)} grid cells with dead latents (criterion: < 0.5, i.e. most dead latents differ between "
            "seeds)", uses=(f"x{b} grid",)))
    if "aen" in cfg.compare:
        checks.append(_aen_check(cfg, cells, results, b))
    return checks


def _per_seed(results: list[CellResult], b: int, variant: str, seeds) -> list[float]:
    """Per data seed: the dead fraction of `variant`'s matched-arm SAEs, averaged over lr x m."""
    out = []
    for s in seeds:
        vals = [r.row["dead_fraction"] for r in results if (r.params["budget"], r.params["arm"], r.params["variant"],
                                                            r.params["seed"]) == (b, "matched", variant, s)]
        if vals:
            out.append(float(np.mean(vals)))
    return out


def _aen_check(cfg: StarvationConfig, cells: list[dict], results: list[CellResult], b: int) -> Check:
    """AEN vs relu_l1 at matched L0, always computed: a 2-SE comparison over seeds that can call either
    direction (the finding names the per-cell ranges, e.g. "AEN increases starvation: 2.5-15% vs 0%")."""
    aen, relu = _per_seed(results, b, "aen", cfg.seeds), _per_seed(results, b, "relu_l1", cfg.seeds)
    check = C.directional_check(
        "AEN reduces dead latents without resampling (vs relu_l1 at matched L0)", aen, relu, expect=-1,
        names=("aen", "relu_l1"), quantity=f"dead fraction (never fired on {cfg.eval_samples} fresh samples, mean over "
        "lr x m per seed)", opposite="AEN increases starvation", uses=(f"x{b} matched aen", f"x{b} matched relu_l1"))
    if check.finding:
        rng = {v: [c["dead_mean"] for c in cells if c["arm"] == "matched" and c["variant"] == v] for v in ("aen", "relu_l1")}
        check = dataclasses.replace(check, finding=(
            f"AEN increases starvation at matched L0 = {cfg.topk_k}: {_pct_range(rng['aen'])} of aen latents never fire "
            f"vs {_pct_range(rng['relu_l1'])} for relu_l1 (per-cell means over seeds)"))
    return check


def _pct_range(vals: list[float]) -> str:
    lo, hi = min(vals), max(vals)
    return f"{100 * lo:.3g}%" if lo == hi else f"{100 * lo:.3g}–{100 * hi:.3g}%"


def _dead_figure(cfg: StarvationConfig, cells: list[dict]):
    series = {}
    for c in sorted((c for c in cells if c["arm"] == "grid"), key=lambda c: c["l1"]):
        name = f"x{c['budget']} lr={c['lr']:g} m={c['m']}"
        xs, ys, es = series.setdefault(name, ([], [], []))
        xs.append(c["l1"])
        ys.append(c["dead_mean"])
        es.append(c["dead_ci"])
    lo, hi = cfg.death_band
    return C.line_figure(series, "l1 coefficient", f"dead fraction (never fired on {cfg.eval_samples} samples)",
                         "relu_l1: dead latents (mean and 95% CI over seeds)", logx=True,
                         hlines=((lo, "claimed band"), (hi, "")))
