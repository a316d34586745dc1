"""Recipe `aen_spiked`: the adaptive elastic-net SAE paper's own synthetic setting, AEN vs ReLU+l1 vs
TopK at matched L0, per spike weight rho.

Claim (background claim 2; AEN-SAE, arXiv 2605.05341): on spiked dictionaries d_j =
normalize(sqrt(1 - rho) u_j + sqrt(rho) v) (d = 256, m = 1024, exactly 16 active features, magnitudes
U[1, 3], rho in {0, .3, .5, .7, .9}) the AEN-SAE's coding map is Lipschitz (small local constants),
it recovers the support where the l1 SAE does not, and it mitigates starvation.

What is measured, per (variant, rho, seed): one SAE of `sae_width` latents trained at matched L0
(relu_l1 and aen with `target_l0 = k_active`, topk with k = k_active; AEN's warmup and ramp scaled to
the run, `_common.aen_arm`), then on fresh samples (seeded `eval_seed`, disjoint from training):
* never-firing latents: the share of latents that fire on none of N = `eval_samples` fresh samples
  (the one definition of dead that drives the checks); the in-training window count
  (`sae.dead_mask()`, no fire in the last `dead_after_steps` steps) is reported beside it;
* support recovery: per-sample F1 of the SAE's support against the true support mapped through the
  Hungarian matching of true atoms to decoder rows (`support_f1`; unmatched true features are misses);
* local Lipschitz constants of the trained encoder (`synthsae.metrics.lipschitz.encoder_lipschitz`,
  codes in decoder units): the median over samples of the spectral norm of dc/dx (the check's
  quantity), its maximum, and the largest ratio over nearby pairs;
* EV, L0 and MCC (`synthsae.evaluate`).

Checks, one per part of the claim and per rho, each a 2-SE comparison over seeds that can conclude
the opposite (`_common.directional_check`): AEN's median local Lipschitz constant is smaller than
relu_l1's; AEN's support F1 is larger; AEN's never-firing share is smaller. A check computed from an
SAE that did not converge or collapsed is inconclusive (`_common.guard_convergence`). AEN vs TopK is
reported as a sub-claim (not part of the published claim). The report says at which rho each part
held, did not hold, or could not be judged.
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import fail, require
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import Cell, CellResult, RecipeResult, register_grid_recipe, verdict
from synthsae.metrics.lipschitz import encoder_lipschitz
from synthsae.metrics.matching import hungarian_match
from synthsae.world.firing import ExactlyK
from synthsae.world.magnitudes import Uniform
from synthsae.world.presets import preset_config

VARIANTS = ("aen", "relu_l1", "topk")
RHOS = (0.0, 0.3, 0.5, 0.7, 0.9)


@dataclasses.dataclass(frozen=True)
class AENSpikedConfig(C.RecipeConfig):
    """The world (the paper's): d, m, k_active (exactly-k firing), magnitudes U[magnitude_low,
    magnitude_high], rhos (spike weights; one world per rho, seeded world_seed).
    SAEs: variants (subset of aen, relu_l1, topk; aen and relu_l1 are required for the checks),
    sae_width latents, seeds (init and data seed of each SAE). Matched L0: relu_l1 and aen train
    with target_l0 = k_active (from l1_coefficient / aen_l1_coefficient as starting weights), topk
    uses k = k_active. aen_l2_coefficient: AEN's l2 weight; aen_warmup_fraction: share of the run
    before its adaptive weights start (ramp over a further tenth, `_common.aen_arm`).
    dead_after_steps: the in-training dead window (reported beside the never-fired share, which is
    measured on eval_samples fresh samples). support_samples: fresh samples of the support F1;
    lipschitz_samples, lipschitz_power_iters: the local Lipschitz estimate."""

    n_samples: int = 2_000_000
    batch_size: int = 1024
    lr: float = 1e-2  # Adam; 1e-3 left SAEs far from converged at these budgets (docs/recipes.md)
    eval_samples: int = 20_000
    d: int = 256
    m: int = 1024
    k_active: int = 16
    magnitude_low: float = 1.0
    magnitude_high: float = 3.0
    rhos: tuple[float, ...] = RHOS
    variants: tuple[str, ...] = VARIANTS
    sae_width: int = 1024
    seeds: tuple[int, ...] = (0, 1, 2)
    l1_coefficient: float = 3e-3
    aen_l1_coefficient: float = 3e-3
    aen_l2_coefficient: float = 1e-4
    aen_warmup_fraction: float = 0.3
    dead_after_steps: int = 500
    support_samples: int = 4096
    lipschitz_samples: int = 256
    lipschitz_power_iters: int = 20

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        for field in ("d", "m", "k_active", "sae_width", "support_samples", "lipschitz_power_iters"):
            v = getattr(self, field)
            require(isinstance(v, int) and v >= 1, f"{name}.{field}", v, "a size must be a positive int", "an int >= 1")
        require(self.k_active <= self.m, f"{name}.k_active", self.k_active,
                f"cannot have more active features than m = {self.m}", f"an int in [1, {self.m}]")
        require(self.k_active < self.sae_width, f"{name}.k_active", self.k_active,
                f"matched L0 needs fewer active latents than the SAE has (sae_width = {self.sae_width})",
                f"an int < {self.sae_width}")
        require(0 < self.magnitude_low <= self.magnitude_high, f"{name}.magnitude_low/high",
                (self.magnitude_low, self.magnitude_high), "magnitudes are positive with low <= high",
                "0 < magnitude_low <= magnitude_high")
        C.nonempty_unique(self, "rhos")
        require(all(0.0 <= r < 1.0 for r in self.rhos), f"{name}.rhos", self.rhos,
                "rho = 1 makes every atom the spike", "floats in [0, 1)")
        C.nonempty_unique(self, "variants")
        for v in self.variants:
            if v not in VARIANTS:
                fail(f"{name}.variants", v, "not a variant this recipe runs", f"a subset of {list(VARIANTS)}")
        require({"aen", "relu_l1"} <= set(self.variants), f"{name}.variants", self.variants,
                "the claim compares aen with relu_l1", "a list containing 'aen' and 'relu_l1'")
        C.seeds_ok(self, minimum=2)
        for field in ("l1_coefficient", "aen_l1_coefficient", "aen_l2_coefficient"):
            C.positive(self, field)
        require(0 <= self.aen_warmup_fraction < 0.9, f"{name}.aen_warmup_fraction", self.aen_warmup_fraction,
                "the warmup and its ramp (a tenth of the run) must end before the run does", "a float in [0, 0.9)")
        require(isinstance(self.dead_after_steps, int) and 1 <= self.dead_after_steps < self.n_steps,
                f"{name}.dead_after_steps", self.dead_after_steps,
                f"the window must be shorter than the run ({self.n_steps} steps)", f"an int in [1, {self.n_steps - 1}]")
        require(isinstance(self.lipschitz_samples, int) and self.lipschitz_samples >= 2, f"{name}.lipschitz_samples",
                self.lipschitz_samples, "pair ratios need two samples", "an int >= 2")

    @classmethod
    def small(cls) -> "AENSpikedConfig":
        """CI size: a 32-dim, 128-feature spiked world at two rhos, 4 active features, 2 seeds, 40 steps."""
        return cls(n_samples=40 * 256, batch_size=256, eval_samples=2048, d=32, m=128, k_active=4,
                   rhos=(0.0, 0.7), sae_width=128, seeds=(0, 1), l1_coefficient=1e-2, aen_l1_coefficient=1e-2,
                   dead_after_steps=10, support_samples=512, lipschitz_samples=64, lipschitz_power_iters=8)


def world_for(cfg: AENSpikedConfig, rho: float):
    """The spiked world at spike weight `rho` (the `aen-spiked` preset at this config's sizes)."""
    return preset_config("aen-spiked", rho=float(rho), seed=cfg.world_seed, d=cfg.d, m=cfg.m,
                         firing=ExactlyK(k=cfg.k_active),
                         magnitudes=Uniform(low=cfg.magnitude_low, high=cfg.magnitude_high))


def hyper(cfg: AENSpikedConfig, variant: str) -> dict:
    """The SAE hyperparameters of `variant` (matched L0 is passed to training separately)."""
    common = {"dead_after_steps": cfg.dead_after_steps}
    if variant == "relu_l1":
        return {**common, "l1_coefficient": cfg.l1_coefficient}
    if variant == "aen":
        return C.aen_arm(cfg.n_steps, cfg.aen_warmup_fraction, l1_coefficient=cfg.aen_l1_coefficient,
                         l2_coefficient=cfg.aen_l2_coefficient, **common)
    return {**common, "k": cfg.k_active}


def aen_arms(cfg: AENSpikedConfig) -> list[tuple[str, dict, int]]:
    """The AEN arms (label, hyperparameters, steps) for the conformance test: one per rho."""
    if "aen" not in cfg.variants:
        return []
    return [(f"aen-rho{r:g}", hyper(cfg, "aen"), cfg.n_steps) for r in cfg.rhos]


def support_f1(sae, world, n: int, seed: int) -> float:
    """Mean over n fresh samples of the F1 between the SAE's support {l : z_l(x) > 0} and the true
    support mapped to latents through the Hungarian matching of true atoms to decoder rows
    (`synthsae.metrics.matching.hungarian_match`); a true feature without a matched latent is a miss.
    Per sample F1 = 2 |S_sae ∩ sigma(S_true)| / (|S_sae| + |S_true|) (1 when both are empty)."""
    W = sae.W_dec.detach()
    sigma = torch.as_tensor(hungarian_match(world.dictionary, W.cpu()).a_to_b(world.m))
    batch = world.sample(n, seed=seed, device=W.device, dtype=W.dtype)
    with torch.no_grad():
        fires = sae.encode(batch.x) != 0
    rows, cols = batch.codes.rows.cpu().long(), batch.codes.cols.cpu().long()
    lat = sigma[cols]
    hit = lat >= 0
    mapped = torch.zeros(n, fires.shape[1], dtype=torch.bool)
    mapped[rows[hit], lat[hit]] = True
    fires = fires.cpu()
    tp = (mapped & fires).sum(dim=1).double()
    n_true = torch.bincount(rows, minlength=n).double()
    denom = fires.sum(dim=1).double() + n_true
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.ones_like(denom))
    return float(f1.mean())


def _cell_id(variant: str, rho: float, seed: int) -> str:
    return f"{variant}-rho{rho:g}-seed{seed}"


def _cells(cfg: AENSpikedConfig) -> list[Cell]:
    return [Cell(_cell_id(v, r, s), {"variant": v, "rho": float(r), "seed": s})
            for r in cfg.rhos for v in cfg.variants for s in cfg.seeds]


def _world(cfg: AENSpikedConfig, params: dict):
    return world_for(cfg, params["rho"])


def _run_cell(cfg: AENSpikedConfig, cell: Cell, ctx) -> dict:
    p = cell.params
    world = ctx.world()
    variant = p["variant"]
    sae, _ = ctx.train(variant, world, cfg.sae_width, hyper(cfg, variant), p["seed"],
                       log_every=max(1, cfg.n_steps // 50), **C.matched_l0(variant, cfg.k_active))
    rep = C.evaluate_sae(sae, world, cfg)
    x = world.sample(cfg.lipschitz_samples, seed=cfg.eval_seed + 2, device=sae.W_dec.device).x
    lip = encoder_lipschitz(sae, x, power_iters=cfg.lipschitz_power_iters, seed=cfg.eval_seed)
    row = {
        "never_fired_fraction": float(C.never_fired(sae, world, cfg.eval_samples, cfg.eval_seed, ctx.device).mean()),
        "dead_window_fraction": float(sae.dead_mask().float().mean()),
        "support_f1": support_f1(sae, world, cfg.support_samples, cfg.eval_seed + 1),
        "lipschitz_median": lip["lipschitz.encoder_jacobian_median"],
        "lipschitz_max": lip["lipschitz.encoder_jacobian_max"],
        "lipschitz_near_max": lip["lipschitz.encoder_near_max"],
        "explained_variance": rep["reconstruction.explained_variance"],
        "l0": rep["sparsity.l0"],
        "mcc": rep["recovery.mcc"],
    }
    return {"row": row}


# (row key, report name, claimed direction of aen - relu_l1, the sentence when the data point the other way)
PARTS = (
    ("lipschitz_median", "median local Lipschitz constant of the encoder", -1,
     "AEN's coding map is less Lipschitz (larger local constants) than relu_l1's"),
    ("support_f1", "per-sample support F1 through the matching", +1,
     "AEN recovers the support worse than relu_l1"),
    ("never_fired_fraction", "share of latents never firing on fresh samples", -1,
     "AEN increases starvation (more never-firing latents than relu_l1)"),
)
SHORT = {"lipschitz_median": "Lipschitz", "support_f1": "support recovery", "never_fired_fraction": "starvation"}


def _conclude(cfg: AENSpikedConfig, results: list[CellResult]) -> RecipeResult:
    runs = [{"variant": r.params["variant"], "rho": r.params["rho"], "seed": r.params["seed"], **r.row}
            for r in results]
    values = {}
    for row in runs:
        values.setdefault((row["variant"], row["rho"]), []).append(row)

    def per_seed(variant, rho, key):
        return [float(r[key]) for r in values.get((variant, rho), [])]

    checks, where = [], []
    for rho in cfg.rhos:
        uses = (f"aen-rho{rho:g}-", f"relu_l1-rho{rho:g}-")
        for key, quantity, expect, opposite in PARTS:
            checks.append(C.directional_check(
                f"at rho = {rho:g}: AEN {'<' if expect < 0 else '>'} relu_l1 in {quantity}",
                per_seed("aen", rho, key), per_seed("relu_l1", rho, key), expect=expect, names=("aen", "relu_l1"),
                quantity=quantity, opposite=f"{opposite} at rho = {rho:g}", uses=uses))
        if "topk" in cfg.variants:
            checks.append(C.directional_check(
                f"at rho = {rho:g}: AEN > topk in support F1 (sub-claim)", per_seed("aen", rho, "support_f1"),
                per_seed("topk", rho, "support_f1"), expect=+1, names=("aen", "topk"),
                quantity="per-sample support F1", opposite=f"AEN recovers the support worse than TopK at rho = {rho:g}",
                uses=(f"aen-rho{rho:g}-", f"topk-rho{rho:g}-"), sub_claim=True))
    problems = C.convergence_problems(results, lambda r, name: r.cell.id)
    checks = C.guard_convergence(checks, problems, cfg.n_samples)

    main = [c for c in checks if not c.sub_claim]
    for i, rho in enumerate(cfg.rhos):
        row = {"rho": rho}
        for j, (key, *_rest) in enumerate(PARTS):
            row[SHORT[key]] = {True: "held", False: "did not hold", None: "inconclusive"}[main[i * len(PARTS) + j].outcome]
        where.append(row)
    summary = []
    for (variant, rho), rows in values.items():
        entry = {"variant": variant, "rho": rho, "seeds": len(rows)}
        for key in ("never_fired_fraction", "dead_window_fraction", "support_f1", "lipschitz_median", "lipschitz_max",
                    "explained_variance", "l0", "mcc", "probe_l0"):
            mean, half = C.mean_ci([r.get(key, float("nan")) for r in rows])
            entry[f"{key}_mean"], entry[f"{key}_ci"] = mean, half
        summary.append(entry)
    metrics = {f"{e['variant']}.rho{e['rho']:g}.{k[:-5]}": e[k] for e in summary for k in e if k.endswith("_mean")}

    figures = {}
    for key, label in (("never_fired_fraction", f"never-firing share (N = {cfg.eval_samples})"),
                       ("support_f1", "per-sample support F1"), ("lipschitz_median", "median local Lipschitz"),
                       ("explained_variance", "explained variance")):
        series = {}
        for v in cfg.variants:
            pts = [next(e for e in summary if e["variant"] == v and e["rho"] == r) for r in cfg.rhos]
            series[v] = (list(cfg.rhos), [e[f"{key}_mean"] for e in pts], [e[f"{key}_ci"] for e in pts])
        figures[key] = C.line_figure(series, "spike weight rho", label, f"{label} vs rho (mean, 95% CI over seeds)")

    def listing(part: str, word: str) -> str:
        hits = [f"{w['rho']:g}" for w in where if w[part] == word]
        return "{" + ", ".join(hits) + "}" if hits else "none"

    where_text = "; ".join(f"{SHORT[k]}: held at rho ∈ {listing(SHORT[k], 'held')}, did not hold at "
                           f"{listing(SHORT[k], 'did not hold')}, inconclusive at {listing(SHORT[k], 'inconclusive')}"
                           for k, *_ in PARTS)
    measured_l0 = {v: [float(r.get("probe_l0", float("nan"))) for r in runs if r["variant"] == v] for v in cfg.variants}
    measured = (
        f"Spiked worlds (d = {cfg.d}, m = {cfg.m}, exactly {cfg.k_active} active features per sample, magnitudes "
        f"U[{cfg.magnitude_low:g}, {cfg.magnitude_high:g}], world seed {cfg.world_seed}) at rho ∈ "
        f"{[float(r) for r in cfg.rhos]}. Per rho, {', '.join(cfg.variants)} SAEs of {cfg.sae_width} latents, trained "
        f"for {cfg.n_steps} steps of {cfg.batch_size} samples (lr {cfg.lr:g}) once per seed {list(cfg.seeds)}; AEN's "
        f"adaptive weights start at {C.aen_schedule(cfg.n_steps, cfg.aen_warmup_fraction)['warmup_steps']} steps and "
        f"ramp in over a tenth of the run.\n\n"
        + C.matched_l0_text(cfg.k_active, measured_l0)
        + f"\n\nDead = never fired on N = {cfg.eval_samples} fresh samples (the quantity checked); the in-training count "
        f"(no fire in the last {cfg.dead_after_steps} steps) is in `dead_window_fraction`. Support recovery: mean "
        f"per-sample F1 of the SAE's support against the true support mapped through the Hungarian matching, on "
        f"{cfg.support_samples} fresh samples. Local Lipschitz constant: median over {cfg.lipschitz_samples} fresh "
        "samples of the spectral norm of the encoder's Jacobian (codes in decoder units). Every number compared is "
        "a mean ± 95% CI over seeds.\n\n**Where the claim holds (per rho):** " + where_text + "."
    )
    claim = ("On spiked dictionaries (shared direction of weight rho) with exactly 16 active features, the adaptive "
             "elastic-net SAE's coding map is Lipschitz (smaller local constants than ReLU+l1's), it recovers the "
             "support where the l1 SAE does not, and it mitigates starvation (fewer never-firing latents) "
             "(background claim 2; AEN-SAE, arXiv 2605.05341, its synthetic setting).")
    conv = C.convergence_table([{"sae": r.cell.id, **r.row} for r in results])
    return RecipeResult("aen_spiked", cfg, claim, measured, verdict(checks), metrics,
                        {"runs": runs, "summary": summary, "where": where, "convergence": conv}, figures, [], checks)


RECIPE = register_grid_recipe(
    "aen_spiked", AENSpikedConfig,
    "AEN vs ReLU+l1 vs TopK at matched L0 on the AEN paper's spiked worlds: Lipschitz, support, starvation per rho",
    cells=_cells, world=_world, run_cell=_run_cell, conclude=_conclude)
