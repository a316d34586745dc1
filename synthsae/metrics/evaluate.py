"""`evaluate(sae, world, ...) -> Report`: every ground-truth metric of one SAE in one streaming pass.

Order of work: (1) one chunked |cos| pass between the true dictionary D (m, d) and the SAE decoder
W_dec (m_sae, d) (rows = atoms) gives MMCS both ways, splitting counts and top-k candidates, then
the Hungarian matching -- shared by every family through an `EvalContext`; (2) one pass over n
world samples in chunks of `batch_size`: encode, keep the codes in sparse form, decode (sparse
product when the decoder is affine), and hand each `EvalBatch` to every requested family; (3)
each family's `finalize` (some draw their own small probe sets: steering, Lipschitz, amortization).
The families are the registry `synthsae.metrics.family.FAMILIES` (one file each in `families/`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from synthsae._rng import resolve_device
from synthsae.config import Config
from synthsae.errors import require, unknown_name
from synthsae.metrics import recovery as _rec
from synthsae.metrics._stream import Decoder, batches, sparse_rows
from synthsae.metrics.adapters import as_sae, check_matrix, check_sae_against_world
from synthsae.metrics.family import EvalBatch, EvalContext, all_families
from synthsae.metrics.matching import cosine_summary, hungarian_match
from synthsae.metrics.report import Report

METRICS = tuple(f.name for f in all_families())  # every family, in report order
DEFAULT_METRICS = tuple(f.name for f in all_families() if f.default)


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    """Settings of `evaluate` (all thresholds documented in docs/metrics.md).

    n, seed, batch_size: samples drawn from world.stream(batch_size, seed); same seed = same samples.
    metrics: families to compute (METRICS; the core families "reconstruction" and "recovery" always run).
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
        known = [f.name for f in all_families()]  # the registry now, not an import-time snapshot
        for mname in self.metrics:
            if mname not in known:
                unknown_name("metric family", mname, known)
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
    metrics: dict[str, float] = {}
    tables: dict[str, dict[str, np.ndarray]] = {}
    na: dict[str, str] = {}
    notes: list[str] = []
    timing: dict[str, float] = {}
    plot_data: dict = {}

    # ---- (1) decoder geometry and matching, shared by every family ---------------------------------
    t0 = time.perf_counter()
    summ = cosine_summary(D, W, k=cfg.matching_k, count_threshold=cfg.split_threshold)
    match = hungarian_match(D, W, method=cfg.matching, k=cfg.matching_k, summary=summ)
    cos_signed = np.zeros(m)
    cos_signed[match.rows] = match.cos
    ctx = EvalContext(sae=sae, world=world, config=cfg, device=dev, W=W, D=D, summary=summ, match=match,
                      sigma=match.a_to_b(m), cos_signed=cos_signed, sign=np.where(cos_signed < 0, -1.0, 1.0))
    timing["timing.matching"] = time.perf_counter() - t0

    # ---- (2) the requested, applicable families; one streaming pass feeds them all ------------------
    running = []
    for fam in all_families():
        if not (fam.core or fam.name in cfg.metrics):
            continue
        ok, why = fam.applicable(world, sae, cfg)
        if ok:
            running.append(fam(ctx))
        else:
            na[fam.name] = why
            metrics.update({k: float("nan") for k in fam.nan_if_not_applicable})
    t0 = time.perf_counter()
    dec = Decoder(sae, W, cfg.decode, seed=cfg.seed)
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
            eb = EvalBatch(x, z, x_hat, r.cpu(), c.cpu(), v.cpu(), batch.codes.rows.cpu(), batch.codes.cols.cpu(),
                           batch.codes.values.cpu())
            for fam in running:
                fam.add(eb)
    timing["timing.stream"] = time.perf_counter() - t0

    # ---- (3) every family's finalize, in registry order -------------------------------------------
    for fam in running:
        t0 = time.perf_counter()
        out = fam.finalize()
        undeclared = [k for k in out.metrics if not fam.declares(k)]
        require(not undeclared, f"metric family {fam.name!r}", undeclared, "it produced keys it does not declare",
                "every key declared in its `keys` (and documented in docs/metrics.md)")
        metrics.update(out.metrics)
        tables.update(out.tables)
        na.update(out.not_applicable)
        notes += out.notes
        plot_data.update(out.plot_data)
        if fam.timed:
            timing[f"timing.{fam.name}"] = time.perf_counter() - t0
    metrics.update(timing)
    meta = {"n": cfg.n, "seed": cfg.seed, "m": m, "d": D.shape[1], "m_sae": M, "matching": match.method,
            "matching_k": match.k, "decode_affine": dec.affine, "config": cfg.to_dict()}
    return Report(metrics, tables, na, notes, meta, plot_data)
