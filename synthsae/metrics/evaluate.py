"""`evaluate(sae, world, ...) -> Report`: every ground-truth metric of one SAE in one streaming pass.

Order of work: (1) decoder-only metrics -- one chunked |cos| pass between the true dictionary D
(m, d) and the SAE decoder W_dec (m_sae, d) (rows = atoms) gives MMCS both ways, splitting counts
and top-k candidates, then the Hungarian matching; (2) one pass over n world samples in chunks of
`batch_size`: encode, keep the codes in sparse form, decode (sparse product when the decoder is
affine), and feed reconstruction, firing, absorption and downstream accumulators; (3) small
separate sample sets for steering and Lipschitz probes.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from synthsae._malloc import reuse_freed_memory
from synthsae._rng import resolve_device
from synthsae.config import Config
from synthsae.errors import require, unknown_name
from synthsae.metrics import absorption as _abs
from synthsae.metrics import recovery as _rec
from synthsae.metrics._stream import Decoder, batches, sparse_rows
from synthsae.metrics.adapters import as_sae, check_matrix, check_sae_against_world
from synthsae.metrics.downstream import DownstreamAccumulator, DownstreamReadout
from synthsae.metrics.lipschitz import encoder_lipschitz
from synthsae.metrics.matching import cosine_summary, hungarian_match, normalize_rows
from synthsae.metrics.reconstruction import ReconstructionAccumulator, latent_usage
from synthsae.metrics.report import Report
from synthsae.metrics.steering import steering_fidelity
from synthsae.metrics.subspaces import group_subspace_recovery

METRICS = ("reconstruction", "recovery", "absorption", "subspaces", "downstream", "steering", "lipschitz",
           "amortization")
DEFAULT_METRICS = ("reconstruction", "recovery", "absorption", "subspaces", "downstream", "steering", "lipschitz")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    """Settings of `evaluate` (all thresholds documented in docs/metrics.md).

    n, seed, batch_size: samples drawn from world.stream(batch_size, seed); same seed = same samples.
    metrics: families to compute ("reconstruction" and "recovery" always run).
    thresholds: cosine thresholds of the reported recovery rates.
    rare_threshold: a live latent firing on fewer than this share of samples is "rare".
    split_threshold: |cos| above which a latent "covers" a true feature (splitting).
    absorption_cos_threshold, partial_ratio: see synthsae.metrics.absorption.
    subspace_proj_threshold: a latent belongs to a group if ||P_g w|| / ||w|| >= this.
    matching, matching_k: Hungarian route ("auto", "dense", "sparse") and sparse candidates per row.
    decode: "auto" (sparse product when sae.decode is affine), "sae" (always sae.decode), "affine".
    amortization_l1, amortization_l2: penalties of the exact problem the SAE is compared to.
    """

    n: int = 100_000
    seed: int = 0
    batch_size: int = 8192
    metrics: tuple[str, ...] = DEFAULT_METRICS
    thresholds: tuple[float, ...] = _rec.DEFAULT_THRESHOLDS
    rare_threshold: float = 1e-4
    split_threshold: float = 0.7
    absorption_cos_threshold: float = 0.2
    partial_ratio: float = 0.5
    subspace_proj_threshold: float = 0.9
    matching: str = "auto"
    matching_k: int = 32
    decode: str = "auto"
    downstream_classes: int = 16
    steering_features: int = 32
    steering_samples: int = 128
    lipschitz_samples: int = 128
    lipschitz_power_iters: int = 20
    heatmap_size: int = 64
    amortization_l1: float | None = None
    amortization_l2: float = 0.0

    def validate(self) -> None:
        name = "EvalConfig"
        require(isinstance(self.n, int) and self.n >= 2, f"{name}.n", self.n,
                "explained variance needs at least two samples", "an int >= 2")
        require(self.batch_size >= 1, f"{name}.batch_size", self.batch_size, "chunks need samples", "an int >= 1")
        for mname in self.metrics:
            if mname not in METRICS:
                unknown_name("metric family", mname, METRICS)
        for t in self.thresholds:
            require(0 <= t <= 1, f"{name}.thresholds", self.thresholds, "cosine thresholds lie in [0, 1]", "floats in [0, 1]")
        require(0 < self.rare_threshold < 1, f"{name}.rare_threshold", self.rare_threshold, "a firing rate", "in (0, 1)")
        require(0 < self.split_threshold <= 1, f"{name}.split_threshold", self.split_threshold, "a cosine", "in (0, 1]")
        require(0 < self.subspace_proj_threshold <= 1, f"{name}.subspace_proj_threshold", self.subspace_proj_threshold,
                "a projection fraction", "in (0, 1]")
        require(self.matching in ("auto", "dense", "sparse"), f"{name}.matching", self.matching, "unknown route",
                "'auto', 'dense' or 'sparse'")
        require(self.decode in ("auto", "sae", "affine"), f"{name}.decode", self.decode, "unknown mode",
                "'auto', 'sae' or 'affine'")
        require(self.matching_k >= 1 and self.heatmap_size >= 1, f"{name}.matching_k/heatmap_size",
                (self.matching_k, self.heatmap_size), "must be positive", "ints >= 1")
        require(self.steering_samples >= 1 and self.steering_features >= 1, f"{name}.steering_*",
                (self.steering_features, self.steering_samples), "must be positive", "ints >= 1")
        require(self.lipschitz_samples >= 2 and self.lipschitz_power_iters >= 1, f"{name}.lipschitz_*",
                (self.lipschitz_samples, self.lipschitz_power_iters), "pairs need two samples and one iteration",
                "lipschitz_samples >= 2, lipschitz_power_iters >= 1")
        require(self.amortization_l1 is None or self.amortization_l1 >= 0, f"{name}.amortization_l1",
                self.amortization_l1, "a penalty cannot be negative", "a float >= 0 or None")
        require(self.amortization_l2 >= 0, f"{name}.amortization_l2", self.amortization_l2,
                "a penalty cannot be negative", "a float >= 0")


@reuse_freed_memory()  # blocks of tens of MiB at 16k latents: reuse them (see synthsae._malloc)
def evaluate(sae, world, n: int | None = None, seed: int | None = None, device=None,
             config: EvalConfig | None = None, **overrides) -> Report:
    """Evaluate an SAE against the ground truth of `world`; returns a `Report`.

    sae: any object with W_dec (m_sae, d) -- rows are latent atoms --, encode(x) -> (n, m_sae) and
        decode(z) -> (n, d); or raw weights (see `synthsae.metrics.as_sae`).
    world: a `synthsae.World` (or any object with its attributes: d, m, dictionary (m, d) with
        atoms as rows, parents, groups, firing_probabilities, mean_magnitudes, sample, stream).
    n, seed: samples drawn (default 100,000, seed 0); `config` / keyword overrides: `EvalConfig` fields.
    device: where samples and codes live (default: the SAE decoder's device).
    """
    cfg = config or EvalConfig()
    changes = dict(overrides)
    if n is not None:
        changes["n"] = n
    if seed is not None:
        changes["seed"] = seed
    if "metrics" in changes:
        changes["metrics"] = tuple(changes["metrics"])
    if "thresholds" in changes:
        changes["thresholds"] = tuple(changes["thresholds"])
    cfg = cfg.replace(**changes) if changes else cfg
    sae = as_sae(sae)
    W = check_sae_against_world(sae, world)
    D = check_matrix(world.dictionary, "world.dictionary")
    dev = resolve_device(device) if device is not None else sae.W_dec.device
    require(sae.W_dec.device.type == dev.type, "device", str(dev), f"the SAE lives on {sae.W_dec.device}",
            "the SAE's device (move the SAE first)")
    W = W.to(dev)
    D = D.to(dev)
    m, M = D.shape[0], W.shape[0]
    want = set(cfg.metrics) | {"reconstruction", "recovery"}
    metrics: dict[str, float] = {}
    tables: dict[str, dict[str, np.ndarray]] = {}
    na: dict[str, str] = {}
    notes: list[str] = []
    timing: dict[str, float] = {}
    plot_data: dict = {}

    # ---- (1) decoder geometry and matching --------------------------------------------------------
    t0 = time.perf_counter()
    summ = cosine_summary(D, W, k=cfg.matching_k, count_threshold=cfg.split_threshold)
    match = hungarian_match(D, W, method=cfg.matching, k=cfg.matching_k, summary=summ)
    sigma = match.a_to_b(m)
    cos_signed = np.zeros(m)
    cos_signed[match.rows] = match.cos
    sign = np.where(cos_signed < 0, -1.0, 1.0)
    metrics["recovery.mcc"] = match.mcc
    metrics["recovery.mmcs_true_to_sae"] = float(summ.row_max.double().mean())
    metrics["recovery.mmcs_sae_to_true"] = float(summ.col_max.double().mean())
    for t in cfg.thresholds:
        metrics[f"recovery.rate@{t:g}"] = _rec.recovery_rate(match, m, t)
    metrics["recovery.uniqueness"] = float(torch.unique(summ.col_arg).numel()) / M
    metrics.update(_abs.splitting(summ.row_count))
    plot_data["recovery_curve"] = _rec.recovery_curve(match, m)
    plot_data["heatmap"] = _heatmap(D, W, match, cfg.heatmap_size)
    timing["timing.matching"] = time.perf_counter() - t0

    # ---- (2) one streaming pass -----------------------------------------------------------------
    t0 = time.perf_counter()
    dec = Decoder(sae, W, cfg.decode, seed=cfg.seed)
    recon = ReconstructionAccumulator()
    firing = _rec.FiringAccumulator(sigma, sign, summ.col_arg, W.norm(dim=1).cpu(), M)
    absorb = None
    if "absorption" in want:
        if getattr(world, "parents", None) is None or not bool((torch.as_tensor(world.parents) >= 0).any()):
            na["absorption"] = "the world has no hierarchy (world.parents is None or has no parent-child pair)"
        else:
            absorb = _abs.AbsorptionAccumulator(torch.as_tensor(world.parents).cpu(), sigma, W.cpu(), D.cpu(), sign,
                                                cfg.absorption_cos_threshold, cfg.partial_ratio)
    down = DownstreamAccumulator(DownstreamReadout(world, cfg.downstream_classes, cfg.seed, dev)) \
        if "downstream" in want else None
    l0_sae = l0_true = 0.0
    with torch.no_grad():
        for batch in batches(world, cfg.n, cfg.batch_size, cfg.seed, dev, W.dtype):
            x = batch.x
            z = sae.encode(x)
            require(tuple(z.shape) == (x.shape[0], M), "sae.encode(x)", tuple(z.shape), "codes have the wrong shape",
                    f"({x.shape[0]}, {M})")
            require(bool(torch.isfinite(z).all()), "sae.encode(x)", "non-finite codes", "the encoder produced NaN/inf",
                    "an SAE with finite outputs")
            r, c, v = sparse_rows(z)
            x_hat = dec(z, r, c, v)
            recon.add(x, x_hat)
            if down is not None:
                down.add(x, x_hat)
            tr, tc, tv = (batch.codes.rows.to(dev), batch.codes.cols.to(dev), batch.codes.values.to(dev))
            r, c, v, tr, tc, tv = (a.cpu() for a in (r, c, v, tr, tc, tv))
            l0_sae += r.numel()
            l0_true += tr.numel()
            firing.add(tr, tc, tv, r, c, v, x.shape[0])
            if absorb is not None:
                absorb.add(tr, tc, tv, r, c, v)
    timing["timing.stream"] = time.perf_counter() - t0
    metrics.update(recon.compute())
    metrics["sparsity.l0"] = l0_sae / cfg.n
    metrics["sparsity.true_l0"] = l0_true / cfg.n
    usage = latent_usage(firing.latent_fires_all, cfg.n, cfg.rare_threshold)
    if cfg.rare_threshold * cfg.n < 1:
        usage["latents.rare_count"] = usage["latents.rare_fraction"] = float("nan")
        na["latents.rare"] = (f"n = {cfg.n} samples cannot resolve a firing rate below rare_threshold = "
                              f"{cfg.rare_threshold:g}; use n >= {int(np.ceil(1 / cfg.rare_threshold))}")
    metrics.update(usage)
    alive = (firing.latent_fires_all > 0)
    metrics["recovery.mmcs_sae_to_true_alive"] = float(summ.col_max[alive].double().mean()) if bool(alive.any()) else float("nan")
    if not bool(alive.any()):
        na["recovery.mmcs_sae_to_true_alive"] = "no latent fired on any sample"
    fm, ftab = firing.compute(cfg.n)
    metrics.update(fm)
    tables["features"] = {"feature": np.arange(m), "latent": sigma, "cos": cos_signed,
                          "max_cos_any": summ.row_max.numpy(), "latents_above_split": summ.row_count.numpy(), **ftab}
    if absorb is not None:
        am, atab, anotes = absorb.compute()
        notes += anotes
        if am["absorption.pairs_evaluated"] == 0:
            na["absorption"] = (f"no parent-child pair had an event (child and parent both active) in n = {cfg.n} "
                                "samples; increase n")
            am = {k: (v if k in ("absorption.pairs", "absorption.pairs_evaluated") else float("nan")) for k, v in am.items()}
        metrics.update(am)
        tables["absorption_pairs"] = atab
    elif "absorption" in want:
        for k in ("full_rate", "partial_rate", "rate"):
            metrics[f"absorption.{k}"] = float("nan")
    if down is not None:
        metrics.update(down.compute())

    # ---- (3) subspaces, steering, Lipschitz, amortization ---------------------------------------
    if "subspaces" in want:
        groups = getattr(world, "groups", None)
        if groups is None or not bool((torch.as_tensor(groups) >= 0).any()):
            na["subspaces"] = "the world has no subspace groups (world.groups is None or all -1)"
        else:
            sm, stab = group_subspace_recovery(W.cpu(), D.cpu(), groups, cfg.subspace_proj_threshold)
            metrics.update(sm)
            tables["subspace_groups"] = stab
    if "steering" in want:
        t0 = time.perf_counter()
        sm, stab = steering_fidelity(sae, world, sigma, sign, cfg.steering_features, cfg.steering_samples,
                                     seed=cfg.seed + 1, device=dev)
        metrics.update(sm)
        tables["steering"] = stab
        timing["timing.steering"] = time.perf_counter() - t0
    if "lipschitz" in want:
        t0 = time.perf_counter()
        xs = world.sample(cfg.lipschitz_samples, seed=cfg.seed + 2, device=dev, dtype=W.dtype).x
        lm = encoder_lipschitz(sae, xs, power_iters=cfg.lipschitz_power_iters, seed=cfg.seed + 2)
        if np.isnan(lm["lipschitz.encoder_jacobian_max"]):
            na["lipschitz.encoder_jacobian"] = "sae.encode has no autograd graph; only pair ratios were measured"
        metrics.update(lm)
        timing["timing.lipschitz"] = time.perf_counter() - t0
    if "amortization" in want:
        _amortization(sae, world, cfg, dev, metrics, na)
    metrics.update(timing)
    meta = {"n": cfg.n, "seed": cfg.seed, "m": m, "d": D.shape[1], "m_sae": M, "matching": match.method,
            "matching_k": match.k, "decode_affine": dec.affine, "config": cfg.to_dict()}
    return Report(metrics, tables, na, notes, meta, plot_data)


def _heatmap(D, W, match, k: int) -> np.ndarray:
    """|cos| between the first k matched true features (best matched first) and their latents, same order."""
    order = np.argsort(-np.abs(match.cos))[:k]
    rows, cols = match.rows[order], match.cols[order]
    C = normalize_rows(D[torch.as_tensor(rows)]) @ normalize_rows(W[torch.as_tensor(cols)]).T
    return C.abs().cpu().numpy()


def _amortization(sae, world, cfg, dev, metrics, na) -> None:
    try:
        from synthsae.metrics.amortization import amortization_gap, exact_map_lipschitz
    except ImportError as err:
        na["amortization"] = f"needs synthsae.solvers ({err})"
        return
    if cfg.amortization_l1 is None:
        na["amortization"] = "needs the penalties of the exact problem: set amortization_l1 (and amortization_l2)"
        return
    x = world.sample(cfg.lipschitz_samples, seed=cfg.seed + 3, device=dev, dtype=sae.W_dec.dtype).x
    metrics.update(amortization_gap(sae, x, cfg.amortization_l1, cfg.amortization_l2))
    if cfg.amortization_l2 > 0:  # the exact map is Lipschitz only with strong convexity
        with torch.no_grad():
            bias = sae.decode(torch.zeros(1, sae.W_dec.shape[0], dtype=sae.W_dec.dtype, device=dev))[0]
        metrics.update(exact_map_lipschitz(sae.W_dec.detach(), x - bias, cfg.amortization_l1, cfg.amortization_l2,
                                           seed=cfg.seed + 3))
    else:
        na["lipschitz.exact"] = "the exact map's Lipschitz bound needs amortization_l2 > 0"
