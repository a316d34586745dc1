"""Pieces shared by the bench tasks: the standard metric columns and one call of `evaluate`."""

from __future__ import annotations

import numpy as np
import torch

from synthsae.bench.task import Metric, Scale

# Training samples per SAE at the lite tier (4,800 steps of 256): the whole lite tier then takes about
# 11.5 min on 2 idle cores, under the 15-minute limit, and 104 of its 144 SAEs pass the
# convergence rule; at 2,400 steps it took 6 min and 79 passed, and the published F1 orderings it
# checks stayed inconclusive (benchmarks/README.md, 2026-12-02).
LITE_SAMPLES = 256 * 4800
# Adam's lr at the lite tier: at 2,400 steps, 1e-2 gave a higher MCC than 3e-3 for 32 of 35 (task,
# SAE) pairs (seed 0, benchmarks/README.md, 2026-12-02). BatchTopK-style inference thresholds are an
# EMA started at the untrained first batch; at 0.999 (time constant 1,000 steps) a 2,400-step run still
# carries that start and fires 10-40% below k at inference, so the lite tier uses 0.99 (SAELens's
# threshold rate, 0.01).
LITE_LR = 1e-2
LITE_HYPER = {"batchtopk": {"threshold_beta": 0.99}, "matryoshka": {"threshold_beta": 0.99}}


def lite(world, m: int, k: int, **options) -> Scale:
    """A task's lite-tier `Scale`: `LITE_SAMPLES` in batches of 256 at `LITE_LR`, `LITE_HYPER`, scored on
    8,192 fresh samples; options: the other `Scale` fields (note, extra_k)."""
    return Scale(world, m, k, LITE_SAMPLES, 256, LITE_LR, 8192, hyper=LITE_HYPER, **options)


# task key -> synthsae.evaluate key
STANDARD = {
    "f1": "classification.f1_score",
    "firing_f1": "recovery.firing_f1",
    "mcc": "recovery.mcc",
    "uniqueness": "recovery.uniqueness",
    "ev": "reconstruction.explained_variance",
    "dead": "latents.dead_fraction",
    "shrinkage": "recovery.shrinkage_median",
    "l0": "sparsity.l0",
}
METRICS = {
    "f1": Metric("f1", "F1 (SAELens)"),
    "firing_f1": Metric("firing_f1", "F1 (ours, firing)"),
    "mcc": Metric("mcc", "MCC"),
    "uniqueness": Metric("uniqueness", "uniqueness"),
    "ev": Metric("ev", "EV"),
    "dead": Metric("dead", "dead", higher=False),
    "shrinkage": Metric("shrinkage", "shrinkage ρ (1 = none)"),
    "l0": Metric("l0", "L0", higher=None),
}


def evaluate(sae, world, n: int, seed: int, families=("reconstruction", "recovery"), **options) -> dict[str, float]:
    """`synthsae.evaluate` on n fresh samples (seeded apart from training), flat metrics."""
    from synthsae.metrics import evaluate as _evaluate

    report = _evaluate(sae, world, n=n, seed=10_000 + seed, metrics=tuple(families), batch_size=min(n, 4096),
                       **options)
    return {k: float(v) for k, v in report.metrics.items() if isinstance(v, (int, float))}


def standard(raw: dict[str, float], keys=tuple(STANDARD)) -> dict[str, float]:
    return {k: raw.get(STANDARD[k], float("nan")) for k in keys}


def matched_latents(W_dec: torch.Tensor, D: torch.Tensor) -> np.ndarray:
    """(m_true,) index of the latent Hungarian-matched to each true feature (-1 if none)."""
    from synthsae.metrics.matching import hungarian_match

    match = hungarian_match(D.detach().float().cpu(), W_dec.detach().float().cpu())
    return match.a_to_b(D.shape[0])


def unit_rows(A: torch.Tensor) -> torch.Tensor:
    A = A.detach().double().cpu()
    return A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)


def dense_codes(sae, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return sae.encode(x).detach().float().cpu()
