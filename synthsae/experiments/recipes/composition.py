"""Recipe `composition`: structural instability of composition. Does pushing one feature move other
latents, and does steering fidelity degrade (nonlinearly) as the feature interaction depth grows?

Claim (background claim 7, seed 000's first paper): perturbing one feature's activation propagates
unpredictably into other latents, so steering along a feature is not reliable, and steering fidelity
degrades nonlinearly as the depth of feature interactions grows.

Interaction depth: hierarchy depth D in `depths` (a forest of binary trees, children fire only
where their parent fires). The forest holds about `forest_features` features at every depth (roots
= forest_features / (2^(D+1) - 1), rounded), the rest of the m features are free, so depth changes
how deeply features are nested, not how many are nested. Firing: base probability `firing_p` for
every feature (a child's marginal is its parent's times it), so deeper worlds have rarer deep
features and a lower L0: the SAEs' k is set per world to its expected L0 (rounded), and every SAE
with a sparsity coefficient is trained to that L0 (matched L0, `_common.matched_l0`).

Per (depth, variant, seed) one SAE; per (depth, seed) the reference: the exact non-negative
elastic-net code of the true dictionary (`synthsae.solvers.sparse_code`, l1 = `exact_l1`, l2 =
`exact_l2`), wrapped as an SAE whose decoder is the true dictionary. On both, steering
(`synthsae.metrics.steering.steering_fidelity`): push x along true forest feature j by its mean
magnitude and measure on-target (1 ideal), off-target (0 ideal) and leakage = off / (|on| + off)
(0 ideal) over `steering_features` random forest features x `steering_samples` fresh samples.
The quantity judged is the excess leakage: SAE leakage minus the exact code's on the same world and
samples.

Checks per variant (each can conclude the opposite; inconclusive when an SAE it uses did not
converge or collapsed, `_common.guard_convergence`):
* "pushing one feature moves other latents": the SAE's leakage (mean over depths, per seed) is above
  the exact code's, by the 2-SE rule (`_common.directional_check`);
* "degrades with depth": the slope of a per-seed least-squares line of excess leakage on depth;
  held when the 95% t-interval of the slope over seeds lies above 0, did not hold (leakage falls
  with depth) when it lies below 0, inconclusive otherwise;
* "nonlinearly": the curvature c2 of a per-seed quadratic fit c0 + c1 D + c2 D^2 (needs >= 3
  depths); held when its 95% t-interval lies above 0 (convex: faster than linear), did not hold
  when it lies below 0 (concave: the degradation saturates), inconclusive when it contains 0 (a
  line fits within noise).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from synthsae.errors import fail, require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, RecipeResult, register_grid_recipe, verdict
from synthsae.metrics.matching import hungarian_match
from synthsae.metrics.steering import steering_fidelity
from synthsae.solvers import sparse_code
from synthsae.world import World, WorldConfig
from synthsae.world.firing import Constant
from synthsae.world.hierarchy import HierarchyConfig
from synthsae.world.magnitudes import Uniform

VARIANTS = ("topk", "relu_l1", "matryoshka")
STEERING = ("on_target", "off_target", "leakage")


@dataclasses.dataclass(frozen=True)
class CompositionConfig(C.RecipeConfig):
    """World: d, m, depths (hierarchy depths, branching 2), forest_features (features inside the
    forest at every depth), firing_p (base firing probability of every feature), magnitudes
    U[0.5, 1.5]. SAEs: variants, sae_width, seeds (init and data seed). Reference: the exact
    non-negative elastic-net code with exact_l1, exact_l2 (solver scale: 1/2 ||x - zD||^2 +
    l1 |z|_1 + l2/2 ||z||^2). Steering: steering_features forest features x steering_samples samples."""

    n_samples: int = 1_000_000
    batch_size: int = 1024
    lr: float = 1e-2  # Adam; 1e-3 left SAEs far from converged at these budgets (docs/recipes.md)
    eval_samples: int = 20_000
    d: int = 64
    m: int = 256
    depths: tuple[int, ...] = (1, 2, 3, 4)
    forest_features: int = 120
    firing_p: float = 0.05
    variants: tuple[str, ...] = VARIANTS
    sae_width: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    l1_coefficient: float = 3e-3
    exact_l1: float = 0.05
    exact_l2: float = 0.0
    steering_features: int = 32
    steering_samples: int = 128

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        for field in ("d", "m", "sae_width", "forest_features", "steering_features", "steering_samples"):
            v = getattr(self, field)
            require(isinstance(v, int) and v >= 1, f"{name}.{field}", v, "a size must be a positive int", "an int >= 1")
        C.nonempty_unique(self, "depths", minimum=3)
        require(all(isinstance(v, int) and v >= 1 for v in self.depths), f"{name}.depths", self.depths,
                "hierarchy depths count levels below the roots", "ints >= 1 (at least 3 of them, for the curvature)")
        for depth in self.depths:
            require(_roots(self.forest_features, depth) * (2 ** (depth + 1) - 1) <= self.m, f"{name}.forest_features",
                    self.forest_features, f"the forest at depth {depth} needs more than m = {self.m} features",
                    f"forest_features <= about {self.m}")
        C.in_unit_interval(self, "firing_p", closed=False)
        C.nonempty_unique(self, "variants")
        for v in self.variants:
            if v not in VARIANTS:
                fail(f"{name}.variants", v, "not a variant this recipe runs", f"a subset of {list(VARIANTS)}")
        C.seeds_ok(self, minimum=2)
        C.positive(self, "l1_coefficient")
        C.positive(self, "exact_l1")
        require(self.exact_l2 >= 0, f"{name}.exact_l2", self.exact_l2, "an l2 weight is non-negative", "a float >= 0")

    @classmethod
    def small(cls) -> "CompositionConfig":
        """CI size: 16 dims, 64 features, depths 1-3, 2 seeds, 40 steps, topk and relu_l1."""
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, d=16, m=64, depths=(1, 2, 3),
                   forest_features=28, firing_p=0.1, variants=("topk", "relu_l1"), sae_width=64, seeds=(0, 1),
                   l1_coefficient=1e-2, steering_features=8, steering_samples=32)


def _roots(forest_features: int, depth: int) -> int:
    return max(1, round(forest_features / (2 ** (depth + 1) - 1)))


def world_config(cfg: CompositionConfig, depth: int) -> WorldConfig:
    """The world at hierarchy depth `depth` (binary trees, about cfg.forest_features nested features)."""
    return WorldConfig(d=cfg.d, m=cfg.m, firing=Constant(p=cfg.firing_p),
                       hierarchy=HierarchyConfig(roots=_roots(cfg.forest_features, depth), branching=2, depth=depth),
                       magnitudes=Uniform(low=0.5, high=1.5), seed=cfg.world_seed)


def k_for(world: World) -> int:
    """The SAEs' k (and target L0) in `world`: its expected L0, rounded (>= 1)."""
    return max(1, int(round(float(world.firing_probabilities.sum()))))


def forest_mask(world: World) -> np.ndarray:
    """(m,) bool: features with a parent or a child (the nested ones)."""
    parents = world.parents.numpy()
    mask = parents >= 0
    mask[parents[parents >= 0]] = True
    return mask


class ExactCodeMap(torch.nn.Module):
    """The exact-code map of a dictionary as an SAE-like object for the metrics: W_dec = D (m, d),
    encode(x) = argmin_z>=0 1/2 ||x - zD||^2 + l1 |z|_1 + l2/2 ||z||^2 (`sparse_code`, certified),
    decode(z) = zD."""

    def __init__(self, D: torch.Tensor, l1: float, l2: float = 0.0):
        super().__init__()
        self.W_dec = torch.nn.Parameter(D.detach().float().clone(), requires_grad=False)
        self.l1, self.l2 = float(l1), float(l2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        res = sparse_code(x.detach().double().cpu(), self.W_dec.double().cpu(), self.l1, self.l2, nonneg=True, warn=False)
        return res.z.to(device=x.device, dtype=x.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec


def hyper(cfg: CompositionConfig, variant: str, k: int) -> dict:
    if variant == "relu_l1":
        return {"l1_coefficient": cfg.l1_coefficient}
    return {"k": k}


def _cells(cfg: CompositionConfig) -> list[Cell]:
    out = []
    for depth in cfg.depths:
        for s in cfg.seeds:
            out.append(Cell(f"exact-depth{depth}-seed{s}", {"variant": "exact", "depth": depth, "seed": s}))
            out += [Cell(f"{v}-depth{depth}-seed{s}", {"variant": v, "depth": depth, "seed": s}) for v in cfg.variants]
    return out


def _world(cfg: CompositionConfig, params: dict):
    return world_config(cfg, params["depth"])


def _steer(model, world: World, sigma: np.ndarray, sign: np.ndarray, cfg: CompositionConfig, seed: int) -> dict:
    """Steering metrics over forest features only (others are masked out of the matching)."""
    sigma = np.where(forest_mask(world), sigma, -1)
    require(bool((sigma >= 0).any()), "composition steering", "no matched forest feature",
            "steering needs a true forest feature with a matched latent", "an SAE at least as wide as the forest")
    metrics, _ = steering_fidelity(model, world, sigma, sign, n_features=cfg.steering_features,
                                   n_samples=cfg.steering_samples, seed=cfg.eval_seed + seed)
    return {name: metrics[f"steering.{name}"] for name in STEERING}


def _run_cell(cfg: CompositionConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    k = k_for(world)
    if p["variant"] == "exact":
        model = ExactCodeMap(world.dictionary, cfg.exact_l1, cfg.exact_l2)
        ident = np.arange(world.m)
        return {"row": {"k": k, **_steer(model, world, ident, np.ones(world.m), cfg, p["seed"])}}
    variant = p["variant"]
    sae, _ = ctx.train(variant, world, cfg.sae_width, hyper(cfg, variant, k), p["seed"],
                       log_every=max(1, cfg.n_steps // 50), **C.matched_l0(variant, k))
    match = hungarian_match(world.dictionary, sae.W_dec.detach().cpu())
    sigma = match.a_to_b(world.m)
    cos = np.zeros(world.m)
    cos[match.rows] = match.cos
    rep = C.evaluate_sae(sae, world, cfg)
    row = {"k": k, **_steer(sae, world, sigma, np.where(cos < 0, -1.0, 1.0), cfg, p["seed"]),
           "explained_variance": rep["reconstruction.explained_variance"], "l0": rep["sparsity.l0"],
           "mcc": rep["recovery.mcc"]}
    return {"row": row}


def fit_coefficients(depths, values) -> tuple[float, float]:
    """(slope of the least-squares line, curvature c2 of the least-squares quadratic) of values on
    depths (needs >= 3 distinct depths)."""
    x = np.asarray(depths, dtype=float)
    y = np.asarray(values, dtype=float)
    slope = float(np.polyfit(x, y, 1)[0])
    c2 = float(np.polyfit(x, y, 2)[0])
    return slope, c2


def _conclude(cfg: CompositionConfig, results: list[CellResult]) -> RecipeResult:
    rows = {(r.params["variant"], r.params["depth"], r.params["seed"]): r.row for r in results}
    runs = [{"variant": r.params["variant"], "depth": r.params["depth"], "seed": r.params["seed"], **r.row}
            for r in results]
    for run in runs:
        ref = rows[("exact", run["depth"], run["seed"])]
        run["excess_leakage"] = float(run["leakage"]) - float(ref["leakage"])
    by = {(r["variant"], r["depth"], r["seed"]): r for r in runs}
    depths = list(cfg.depths)
    checks, fits = [], []
    for v in cfg.variants:
        uses = (f"{v}-",)
        sae_mean = [float(np.mean([by[(v, dd, s)]["leakage"] for dd in depths])) for s in cfg.seeds]
        ref_mean = [float(np.mean([by[("exact", dd, s)]["leakage"] for dd in depths])) for s in cfg.seeds]
        checks.append(C.directional_check(
            f"{v}: pushing one feature moves other latents (leakage above the exact code's)", sae_mean, ref_mean,
            expect=+1, names=(v, "exact code"), quantity="steering leakage, mean over depths",
            opposite=f"{v} leaks less than the exact code when one feature is pushed", uses=uses))
        slopes, curv = [], []
        for s in cfg.seeds:
            slope, c2 = fit_coefficients(depths, [by[(v, dd, s)]["excess_leakage"] for dd in depths])
            slopes.append(slope)
            curv.append(c2)
            fits.append({"variant": v, "seed": s, "slope": slope, "curvature": c2})
        checks.append(C.sign_check(f"{v}: steering fidelity degrades with interaction depth (excess leakage rises)",
                                 slopes, quantity="per-seed slope of excess leakage on depth",
                                 opposite=f"{v}'s steering leakage falls with depth", uses=uses))
        checks.append(C.sign_check(f"{v}: the degradation is nonlinear (convex in depth)", curv,
                                 quantity="per-seed quadratic coefficient of excess leakage on depth",
                                 opposite=f"{v}'s degradation with depth is concave (it saturates)", uses=uses))
    problems = C.convergence_problems([r for r in results if r.params["variant"] != "exact"], lambda r, name: r.cell.id)
    checks = C.guard_convergence(checks, problems, cfg.n_samples)

    summary = []
    for v in ("exact",) + tuple(cfg.variants):
        for dd in depths:
            rs = [by[(v, dd, s)] for s in cfg.seeds]
            entry = {"variant": v, "depth": dd, "k": rs[0]["k"]}
            for key in STEERING + ("excess_leakage", "explained_variance", "l0", "probe_l0"):
                if key in rs[0]:
                    entry[f"{key}_mean"], entry[f"{key}_ci"] = C.mean_ci([float(r[key]) for r in rs])
            summary.append(entry)
    metrics = {f"{e['variant']}.depth{e['depth']}.{key[:-5]}": e[key] for e in summary for key in e
               if key.endswith("_mean")}
    for v in cfg.variants:
        for key in ("slope", "curvature"):
            metrics[f"{v}.{key}_mean"], metrics[f"{v}.{key}_ci"] = C.mean_ci([f[key] for f in fits if f["variant"] == v])
    figures = {}
    for key, label in (("leakage", "steering leakage (0 ideal)"), ("excess_leakage", "leakage minus exact code's"),
                       ("on_target", "on-target (1 ideal)")):
        series = {}
        for v in (("exact",) if key != "excess_leakage" else ()) + tuple(cfg.variants):
            pts = [next(e for e in summary if e["variant"] == v and e["depth"] == dd) for dd in depths]
            series[v] = (depths, [e[f"{key}_mean"] for e in pts], [e[f"{key}_ci"] for e in pts])
        figures[key] = C.line_figure(series, "hierarchy depth", label, f"{label} vs depth (mean, 95% CI over seeds)")

    ks = {dd: k_for(World(world_config(cfg, dd))) for dd in depths}
    measured_l0 = {v: [float(r.get("probe_l0", float("nan"))) for r in runs if r["variant"] == v] for v in cfg.variants}
    measured = (
        f"Worlds of d = {cfg.d}, m = {cfg.m} (world seed {cfg.world_seed}) with a forest of binary trees of depth D ∈ "
        f"{depths} (roots {[_roots(cfg.forest_features, dd) for dd in depths]}, about {cfg.forest_features} nested "
        f"features each; the rest free), base firing probability {cfg.firing_p:g}, magnitudes U[0.5, 1.5]. Per depth "
        f"and seed {list(cfg.seeds)}: {', '.join(cfg.variants)} SAEs of {cfg.sae_width} latents trained for "
        f"{cfg.n_steps} steps of {cfg.batch_size} samples, at matched L0: k = the world's expected L0 "
        f"({', '.join(f'D={dd}: {kk}' for dd, kk in ks.items())}), target_l0 = k for SAEs with a sparsity coefficient. "
        + "Measured L0 (probe set), all depths pooled: "
        + "; ".join(f"{v} {C.summary_text(vals)}" for v, vals in measured_l0.items())
        + f". Reference: the exact non-negative elastic-net code of the true dictionary (l1 = {cfg.exact_l1:g}, "
        f"l2 = {cfg.exact_l2:g}). Steering: {cfg.steering_features} random nested features pushed by their mean "
        f"magnitude on {cfg.steering_samples} fresh samples; leakage = off-target / (|on-target| + off-target). The "
        "depth trend is judged on the excess leakage (SAE minus exact code, same world and samples) by per-seed "
        "linear and quadratic fits. Every number compared is a mean ± 95% CI over seeds."
    )
    claim = ("Structural instability of composition: perturbing one feature's activation propagates unpredictably "
             "into other latents, so steering along a feature is not reliable, and steering fidelity degrades "
             "nonlinearly as feature interaction depth grows (background claim 7; seed 000, first paper).")
    conv = C.convergence_table([{"sae": r.cell.id, **r.row} for r in results if r.params["variant"] != "exact"])
    return RecipeResult("composition", cfg, claim, measured, verdict(checks), metrics,
                        {"runs": runs, "summary": summary, "fits": fits, "convergence": conv}, figures, [], checks)


RECIPE = register_grid_recipe(
    "composition", CompositionConfig,
    "steering leakage vs the exact code across hierarchy depth: does fidelity degrade (nonlinearly) with depth?",
    cells=_cells, world=_world, run_cell=_run_cell, conclude=_conclude)
