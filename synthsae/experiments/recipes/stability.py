"""Recipe `stability`: K seeds per variant on the "subspaces" world (Gerasimov et al. 2026,
"Unstable Features, Reproducible Subspaces").

Measured per variant: reappearance probabilities (`synthsae.metrics.stability`), the share of
explained variance carried by stable latents; for each planted subspace group, the principal angles
between the spans of the latents two seeds put inside it (`cross_seed_subspace_angles`), against
the angles between random subspaces of the same rank; and pooling: the seeds are split in two
halves, each half's latents are pooled (most reproducible first, duplicates at |cos| >= threshold
dropped, at most m_sae kept) into a new SAE that is briefly retrained, and the two pooled SAEs --
built from disjoint seeds -- are compared with each other as single SAEs are.

Group vs free features: each SAE's latents are Hungarian-matched to the true features; the latents
matched to features of a planted subspace group are compared with the latents matched to free
(ungrouped) features -- surplus latents, matched to nothing, are left out, since counting them as
"outside the groups" confounds width with stability -- by their reappearance probability, per seed,
with the 2-SE rule (`_common.directional_check`, which can also find the opposite). Feature-level
recovery (share of group / free features whose matched latent has |cos| >= recovery_threshold) is
reported beside it.

Variants with a sparsity coefficient are trained to `target_l0` (matched to TopK's k); pooling is a
sub-claim (not part of the published claim: reported, not in the verdict). A check on an SAE that
did not converge is inconclusive (`_common.guard_convergence`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
import torch

from synthsae._rng import generator
from synthsae.errors import require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, Check, RecipeResult, register_grid_recipe, verdict
from synthsae.metrics import cosine_matrix, cross_seed_subspace_angles, principal_angles, reappearance, stability
from synthsae.metrics.matching import hungarian_match
from synthsae.plots import stability_histogram
from synthsae.sae import make
from synthsae.tables import restore

SUBSPACE_PROJ_THRESHOLD = 0.9  # as EvalConfig.subspace_proj_threshold: a latent lies in a group's span


def _default_variants() -> dict[str, dict[str, Any]]:
    return {"topk": {"k": 8}, "relu_l1": {"l1_coefficient": 0.03}}


@dataclasses.dataclass(frozen=True)
class StabilityConfig(C.RecipeConfig):
    """world: preset with subspace groups. variants: name -> hyperparameters. m_sae: latents per SAE.
    seeds: one SAE per seed and variant (>= 2; pooling needs >= 4). threshold / stable_threshold: as
    `synthsae.metrics.stability`. pool_fraction: retraining of a pooled SAE, as a share of n_samples.
    ev_tolerance: "equal EV" means within this of the single SAEs' mean EV. baseline_draws: random
    subspace pairs for the chance level of principal angles. target_l0: variants with a
    sparsity coefficient are trained to this L0 (None: at their configured coefficient), matching
    TopK's k. recovery_threshold: a true feature is recovered when its matched latent has |cos| >= it."""

    n_samples: int = 2_000_000
    world: str = "subspaces"
    variants: dict[str, dict[str, Any]] = dataclasses.field(default_factory=_default_variants)
    m_sae: int = 256
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    threshold: float = 0.7
    stable_threshold: float = 0.5
    pool_fraction: float = 0.25
    ev_tolerance: float = 0.02
    baseline_draws: int = 200
    target_l0: float | None = 8.0
    recovery_threshold: float = 0.9

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        C.preset_ok(self)
        C.seeds_ok(self, minimum=2)
        require(isinstance(self.variants, dict) and len(self.variants) >= 1, f"{name}.variants", self.variants,
                "at least one SAE variant is needed", 'a table like {"topk": {"k": 8}}')
        for v, hyper in self.variants.items():
            C.check_sae_spec(f"{name}.variants.{v}", v, hyper, self.m_sae)
        require(isinstance(self.m_sae, int) and self.m_sae >= 1, f"{name}.m_sae", self.m_sae, "a width", "an int >= 1")
        C.in_unit_interval(self, "threshold")
        C.in_unit_interval(self, "stable_threshold")
        C.in_unit_interval(self, "pool_fraction")
        require(self.pool_fraction * self.n_samples >= self.batch_size, f"{name}.pool_fraction", self.pool_fraction,
                "pooled SAEs need at least one retraining batch", f">= {self.batch_size / self.n_samples:.3g}")
        C.positive(self, "ev_tolerance")
        C.in_unit_interval(self, "recovery_threshold")
        require(self.target_l0 is None or 0 < self.target_l0 <= self.m_sae, f"{name}.target_l0", self.target_l0,
                f"an L0 is a positive number of latents, at most m_sae = {self.m_sae}", "a float in (0, m_sae] or None")
        require(self.baseline_draws >= 20, f"{name}.baseline_draws", self.baseline_draws,
                "a 5th percentile needs draws", "an int >= 20")

    @classmethod
    def small(cls) -> "StabilityConfig":
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, m_sae=96, seeds=(0, 1, 2, 3),
                   variants={"topk": {"k": 8}}, baseline_draws=20, pool_fraction=0.5)


def _group_masks(W: torch.Tensor, D: torch.Tensor, groups: torch.Tensor) -> dict[int, tuple[np.ndarray, int]]:
    """Per group id: (latents whose unit direction lies in span(D_g) up to SUBSPACE_PROJ_THRESHOLD, rank of D_g)."""
    Wn = torch.nn.functional.normalize(W.double(), dim=1)
    out = {}
    for g in sorted(int(v) for v in torch.unique(groups) if v >= 0):
        Dg = D[groups == g].double()
        Q, R = torch.linalg.qr(Dg.T)
        rank = int((R.diagonal().abs() > 1e-6 * R.diagonal().abs().max()).sum())
        proj = (Wn @ Q[:, :rank]).norm(dim=1)
        out[g] = ((proj >= SUBSPACE_PROJ_THRESHOLD).numpy(), rank)
    return out


def _random_max_angles(d: int, rank: int, draws: int, seed: int) -> np.ndarray:
    """Largest principal angle (degrees) between pairs of random rank-`rank` subspaces of R^d."""
    g = generator(seed)
    out = []
    for _ in range(draws):
        A = torch.randn(rank, d, generator=g, dtype=torch.float64)
        B = torch.randn(rank, d, generator=g, dtype=torch.float64)
        out.append(np.degrees(principal_angles(A, B)).max())
    return np.asarray(out)


def pool_latents(decoders: list[torch.Tensor], threshold: float, m_max: int) -> torch.Tensor:
    """Pooled unique unit decoder rows (k, d), k <= m_max, from K >= 2 decoders (m_i, d) (rows = atoms):
    rows ordered by their reappearance probability among `decoders` (most reproducible first, ties
    in input order), a row dropped when its |cos| with an already kept row is >= threshold."""
    W = torch.cat([w.detach().cpu().float() for w in decoders])
    probs = np.concatenate(reappearance(decoders, threshold))
    order = np.argsort(-probs, kind="stable")
    cos = cosine_matrix(W, W).numpy()
    kept: list[int] = []
    for i in order:
        if len(kept) == m_max:
            break
        if not kept or cos[i, kept].max() < threshold:
            kept.append(int(i))
    return torch.nn.functional.normalize(W[kept], dim=1)


def _pooled_sae(variant, hyper, rows, world, cfg, seed, ctx, name):
    sae = make(variant, d=world.d, m=rows.shape[0], seed=seed, **hyper)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(rows.T)
    n = max(cfg.batch_size, int(cfg.pool_fraction * cfg.n_samples) // cfg.batch_size * cfg.batch_size)
    sae, _ = ctx.train(variant, world, rows.shape[0], hyper, seed, name=name, n_samples=n, sae=sae,
                       **_matched(cfg, variant))
    return sae


def _cells(cfg: StabilityConfig) -> list[Cell]:
    """One training cell per (variant, seed); one analysis cell per variant, reading that variant's SAEs."""
    out = []
    for variant in cfg.variants:
        train_ids = [f"{variant}-seed{s}" for s in cfg.seeds]
        out += [Cell(i, {"stage": "train", "variant": variant, "seed": s}) for i, s in zip(train_ids, cfg.seeds)]
        out.append(Cell(f"{variant}-analysis", {"stage": "analysis", "variant": variant}, tuple(train_ids)))
    return out



def _matched(cfg: StabilityConfig, variant: str) -> dict:
    return {} if cfg.target_l0 is None else C.matched_l0(variant, cfg.target_l0)


def _sae_label(r: CellResult, name: str) -> str:
    return f"{r.params['variant']} seed={r.params['seed']}" if name == "sae" else f"{r.params['variant']} {name}"


def _run_cell(cfg: StabilityConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    variant, hyper = p["variant"], cfg.variants[p["variant"]]
    world = ctx.world()
    if p["stage"] == "train":
        sae, _ = ctx.train(variant, world, cfg.m_sae, hyper, p["seed"], **_matched(cfg, variant))
        ctx.save_sae(sae)
        return {"row": {}}
    saes = [ctx.load_sae(i) for i in cell.needs]
    for sae in saes:
        sae.eval()
    st = stability(saes, world, n=cfg.eval_samples, seed=cfg.eval_seed, threshold=cfg.threshold,
                   stable_threshold=cfg.stable_threshold, device=ctx.device)
    groups = world.groups
    data = {"metrics": st.metrics, "per_sae": st.per_sae, "probabilities": [p_.tolist() for p_ in st.probabilities],
            "has_groups": groups is not None and bool((groups >= 0).any())}
    if data["has_groups"]:
        data["subspaces"] = _subspace_measure(variant, saes, st, world, cfg)
        data["features"] = _feature_measure(saes, st, world, cfg)
    data["pooling"] = _pool_measure(variant, hyper, saes, st, world, cfg, ctx)
    return {"row": dict(st.metrics), "data": data}


def _conclude(config: StabilityConfig, results: list[CellResult]) -> RecipeResult:
    """The checks, tables and figures of `stability` from its finished cells (see the module docstring
    for what is measured and the verdict)."""
    cfg = config
    metrics, checks, figures = {}, [], {}
    per_sae, group_rows, pool_rows, feature_rows = [], [], [], []
    analyses = {r.params["variant"]: r.data for r in results if r.params["stage"] == "analysis"}
    for variant in cfg.variants:
        a = analyses[variant]
        st_metrics = {k: restore(v) for k, v in a["metrics"].items()}
        for key, v in st_metrics.items():
            metrics[f"{variant}.{key}"] = v
        for s, p in zip(cfg.seeds, a["per_sae"]):
            per_sae.append({"variant": variant, "seed": s, **{k: restore(v) for k, v in p.items()}})
        probabilities = [np.asarray([restore(v) for v in p], dtype=float) for p in a["probabilities"]]
        figures[f"reappearance_{variant}"] = stability_histogram(probabilities, cfg.stable_threshold)
        share, frac = st_metrics["stability.ev_share_stable"], st_metrics["stability.stable_fraction"]
        checks.append(Check(
            f"{variant}: stable latents carry most of the explained variance",
            None if frac == 0 else bool(share >= 0.5 and share > frac),
            f"EV share of stable latents {C.fmt(share)} (per seed {C.summary_text(_per_seed(a, 'stability.ev_share_stable'))}) "
            f"for {C.fmt(frac)} of the latents (per seed {C.summary_text(_per_seed(a, 'stability.stable_fraction'))}) "
            "(criterion: mean share >= 0.5 and larger than their headcount share; inconclusive when no latent is "
            "stable)", uses=(f"{variant} seed",)))
        if a["has_groups"]:
            checks += _feature_checks(variant, a["features"], cfg, metrics, feature_rows)
            checks += _subspace_checks(variant, a["subspaces"], metrics, group_rows)
        checks.append(_pool_check(variant, a["pooling"], cfg, metrics, pool_rows))
    problems = C.convergence_problems(results, _sae_label, names=("sae", "pooled0", "pooled1"))
    checks = C.guard_convergence(checks, problems, cfg.n_samples)
    metrics["unconverged_saes"] = float(sum(1 for v in problems.values() if v))
    conv_rows = [{"sae": _sae_label(r, name), **{k: r.row.get(f"{prefix}{k}") for k in C.CONVERGENCE_KEYS},
                  "problem": C.convergence_problem(r.row, prefix) or ""}
                 for r in results for name, prefix in (("sae", ""), ("pooled0", "pooled0."), ("pooled1", "pooled1."))
                 if f"{prefix}converged" in r.row]

    measured = (
        f"World `{cfg.world}` (seed {cfg.world_seed}): for each variant ({', '.join(cfg.variants)}), {len(cfg.seeds)} SAEs "
        f"with {cfg.m_sae} latents (seeds {list(cfg.seeds)}; the seed sets both initialization and data) trained for "
        f"{cfg.n_steps} steps of {cfg.batch_size}. A latent reappears in another SAE when some latent there has |cos| >= "
        f"{cfg.threshold}; it is stable when it reappears in >= {cfg.stable_threshold:.0%} of the others. EV shares on "
        f"{cfg.eval_samples} fresh samples. For each planted subspace group and each pair of seeds, the *unstable* latents "
        f"lying in the group's span (projection >= {SUBSPACE_PROJ_THRESHOLD}) are compared by principal angles (largest "
        "angle; a case needs at least rank-many such latents in both seeds), "
        f"against {cfg.baseline_draws} pairs of random subspaces of the same rank. Group vs free features: each SAE's "
        "latents are Hungarian-matched to the true features; latents matched to group features are compared with "
        "latents matched to free features (surplus latents excluded) by reappearance, per seed (2-SE rule), and the "
        f"share of group / free features recovered at |cos| >= {cfg.recovery_threshold} is reported. Pooling: see the "
        "section below."
    )
    claim = ("Per-feature stability (probability that a feature with |cos| >= 0.7 reappears in an independently trained "
             "SAE) varies; stable features carry most of the reconstruction signal; unstable features are individually "
             "non-reproducible but span reproducible low-rank subspaces; pooling unique cross-seed features gives more "
             "stable SAEs at equal explained variance (Gerasimov et al. 2026, \"Unstable Features, Reproducible "
             "Subspaces\"; background claim 3).")
    sections = [("Pooling", (
        "Seeds are split into two halves. In each half, every latent of every SAE is ranked by its reappearance "
        "probability *within that half*; latents are kept greedily in that order unless one already kept has |cos| >= "
        f"{cfg.threshold}, up to m_sae = {cfg.m_sae}. A new SAE of the same variant starts from those decoder rows "
        f"(encoder = decoder transpose) and is retrained for {cfg.pool_fraction:.0%} of n_samples. The two pooled SAEs "
        "come from disjoint seeds, so their agreement is not built in; it is compared with the mean reappearance of "
        "single SAEs and their EV with the single SAEs' EV. Pooling is not part of the published claim: it is a "
        "sub-claim, reported but left out of the verdict."))]
    if cfg.target_l0 is not None:
        measured_l0 = {v: [r.row.get("probe_l0", float("nan")) for r in results
                           if r.params["stage"] == "train" and r.params["variant"] == v] for v in cfg.variants}
        measured += " " + C.matched_l0_text(cfg.target_l0, measured_l0)
    tables = {"per_sae": per_sae, "pooling": pool_rows, "convergence": conv_rows}
    if feature_rows:
        tables["group_vs_free"] = feature_rows
    if group_rows:
        tables["subspace_groups"] = group_rows
    return RecipeResult("stability", cfg, claim, measured, verdict(checks), metrics, tables, figures, sections, checks)


def _subspace_measure(variant, saes, st, world, cfg) -> dict:
    """The cross-seed principal angles of the unstable latents inside each planted group (JSON-able;
    `_subspace_checks` judges them)."""
    D, groups = world.dictionary, world.groups
    masks = [_group_masks(s.W_dec.detach().cpu(), D, groups) for s in saes]
    angles, baselines, rows = [], {}, []
    unstable = [~np.asarray(s) for s in st.stable]
    for (a, ma), (b, mb) in itertools.combinations(enumerate(masks), 2):
        for g, (in_a, rank) in ma.items():
            sel_a, sel_b = in_a & unstable[a], mb[g][0] & unstable[b]
            if sel_a.sum() < rank or sel_b.sum() < rank:
                continue
            ang = cross_seed_subspace_angles(saes[a].W_dec.detach().cpu(), saes[b].W_dec.detach().cpu(), sel_a, sel_b,
                                             rank=rank)
            if rank not in baselines:
                baselines[rank] = _random_max_angles(world.d, rank, cfg.baseline_draws, cfg.eval_seed)
            angles.append(float(ang.max()))
            rows.append({"variant": variant, "seed_a": cfg.seeds[a], "seed_b": cfg.seeds[b], "group": g, "rank": rank,
                         "latents_a": int(sel_a.sum()), "latents_b": int(sel_b.sum()), "max_angle_deg": float(ang.max()),
                         "random_max_angle_p5_deg": float(np.percentile(baselines[rank], 5))})
    p5 = float(min(np.percentile(b, 5) for b in baselines.values())) if baselines else float("nan")
    return {"angles": angles, "random_p5": p5, "rows": rows}


def _per_seed(analysis: dict, key: str) -> list[float]:
    return [restore(p.get(key)) for p in analysis["per_sae"] if p.get(key) is not None]


def _subspace_checks(variant, m: dict, metrics, rows) -> list[Check]:
    rows += m["rows"]
    angles = m["angles"]
    uses = (f"{variant} seed",)
    if not angles:
        return [Check(f"{variant}: unstable latents span reproducible subspaces", None,
                      "no group had rank-many unstable latents in both seeds of any pair", uses=uses)]
    med = float(np.median(angles))
    p5 = restore(m["random_p5"])
    metrics[f"{variant}.cross_seed_group_max_angle_median_deg"] = med
    metrics[f"{variant}.random_subspace_max_angle_p5_deg"] = p5
    return [Check(
        f"{variant}: unstable latents span reproducible subspaces", bool(med < p5),
        f"median over {len(angles)} (group, seed pair) cases of the largest cross-seed principal angle = {med:.1f} deg; "
        f"random subspaces of the same rank: 5th percentile {p5:.1f} deg (criterion: median below it)", uses=uses)]


def _feature_measure(saes, st, world, cfg) -> list[dict]:
    """Per SAE: mean reappearance of the latents Hungarian-matched to group features and to free
    features (surplus latents excluded), and the share of group / free features recovered at
    |cos| >= recovery_threshold."""
    D, groups = world.dictionary.detach().cpu(), world.groups.cpu().numpy()
    out = []
    for sae, probs in zip(saes, st.probabilities):
        match = hungarian_match(D, sae.W_dec.detach().cpu())
        feats, lats, cos = np.asarray(match.rows), np.asarray(match.cols), np.abs(np.asarray(match.cos))
        in_group = groups[feats] >= 0
        row = {}
        for name, sel in (("group", in_group), ("free", ~in_group)):
            row[f"reappearance_{name}"] = float(probs[lats[sel]].mean()) if sel.any() else float("nan")
            row[f"recovered_{name}"] = float((cos[sel] >= cfg.recovery_threshold).mean()) if sel.any() else float("nan")
            row[f"latents_{name}"] = int(sel.sum())
        row["latents_surplus"] = int(sae.W_dec.shape[0] - len(lats))
        out.append(row)
    return out


def _feature_checks(variant, rows: list[dict], cfg, metrics, table) -> list[Check]:
    rows = [{k: restore(v) for k, v in r.items()} for r in rows]
    table += [{"variant": variant, "seed": s, **r} for s, r in zip(cfg.seeds, rows)]
    for key in ("reappearance_group", "reappearance_free", "recovered_group", "recovered_free"):
        metrics[f"{variant}.{key}"] = C.mean_ci([r[key] for r in rows])[0]
    uses = (f"{variant} seed",)
    latents = (f"{rows[0]['latents_group']} / {rows[0]['latents_free']} latents matched to group / free features, "
               f"{rows[0]['latents_surplus']} surplus latents excluded (seed {cfg.seeds[0]})")
    return [
        C.directional_check(
            f"{variant}: latents matched to planted-subspace features are individually less reproducible than latents "
            "matched to free features", [r["reappearance_group"] for r in rows], [r["reappearance_free"] for r in rows],
            expect=-1, names=("group", "free"), quantity=f"mean reappearance per seed ({latents})",
            opposite="latents matched to planted-subspace features are *more* reproducible than those matched to free "
                     "features", uses=uses),
        C.directional_check(
            f"{variant}: group features are recovered individually less often than free features",
            [r["recovered_group"] for r in rows], [r["recovered_free"] for r in rows], expect=-1, names=("group", "free"),
            quantity=f"share of features recovered at |cos| >= {cfg.recovery_threshold} per seed",
            opposite="group features are recovered individually *more* often than free features", uses=uses,
            sub_claim=True),
    ]


def _pool_measure(variant, hyper, saes, st, world, cfg, ctx) -> dict | None:
    """Pool each half of the seeds into a new SAE, retrain it briefly (checkpointed), and measure the
    two pooled SAEs as single ones are measured; None with fewer than 4 seeds."""
    half = len(saes) // 2
    if half < 2:
        return None
    pooled = []
    for h, part in enumerate((saes[:half], saes[half:2 * half])):
        rows_h = pool_latents([s.W_dec for s in part], cfg.threshold, cfg.m_sae)
        pooled.append(_pooled_sae(variant, hyper, rows_h, world, cfg, 10_000 + h, ctx, f"pooled{h}"))
    pst = stability(pooled, world, n=cfg.eval_samples, seed=cfg.eval_seed, threshold=cfg.threshold,
                    stable_threshold=cfg.stable_threshold, device=ctx.device)
    rows = []
    for name, res in (("single (mean over seeds)", st), ("pooled", pst)):
        rows.append({"variant": variant, "kind": name, "latents": int(np.mean([p.size for p in res.probabilities])),
                     "mean_reappearance": res.metrics["stability.mean_reappearance"],
                     "stable_fraction": res.metrics["stability.stable_fraction"],
                     "explained_variance": res.metrics["stability.ev_full"]})
    return {"single_reappearance": st.metrics["stability.mean_reappearance"],
            "pooled_reappearance": pst.metrics["stability.mean_reappearance"],
            "single_ev": st.metrics["stability.ev_full"], "pooled_ev": pst.metrics["stability.ev_full"], "rows": rows}


def _pool_check(variant, m: dict | None, cfg, metrics, rows) -> Check:
    statement = f"{variant}: pooling unique cross-seed latents gives a more stable SAE at equal EV"
    if m is None:
        return Check(statement, None, f"needs >= 4 seeds (two halves of >= 2), got {len(cfg.seeds)}", sub_claim=True)
    single_r, pooled_r = restore(m["single_reappearance"]), restore(m["pooled_reappearance"])
    single_ev, pooled_ev = restore(m["single_ev"]), restore(m["pooled_ev"])
    rows += [{k: restore(v) if k not in ("variant", "kind") else v for k, v in r.items()} for r in m["rows"]]
    metrics[f"{variant}.pooled_mean_reappearance"] = pooled_r
    metrics[f"{variant}.pooled_explained_variance"] = pooled_ev
    ok = pooled_r > single_r and pooled_ev >= single_ev - cfg.ev_tolerance
    return Check(statement, bool(ok), sub_claim=True, uses=(f"{variant} ",), evidence=
                 f"mean reappearance pooled {C.fmt(pooled_r)} vs single {C.fmt(single_r)}; EV pooled {C.fmt(pooled_ev)} vs "
                 f"single {C.fmt(single_ev)} (criterion: higher reappearance and EV within {cfg.ev_tolerance})")


RECIPE = register_grid_recipe(
    "stability", StabilityConfig,
    "cross-seed stability: reappearance, EV of stable latents, reproducible subspaces, pooling",
    cells=_cells, world=C.preset_world, run_cell=_run_cell, conclude=_conclude)
