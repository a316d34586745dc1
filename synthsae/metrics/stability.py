"""Stability across seeds (Gerasimov et al. 2026, "Unstable Features, Reproducible Subspaces").

Given K >= 2 SAEs trained with different seeds (decoders W_k of shape (m_k, d), rows = atoms),
latent i of SAE a *reappears* in SAE b when max_j |cos(W_a,i, W_b,j)| >= threshold (0.7).
Its reappearance probability is the share of the K-1 other SAEs in which it reappears; it is
*stable* when that probability >= stable_threshold (0.5). The explained variance carried by the
stable latents is the EV of the reconstruction decode(z * 1[stable]) on world samples.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from synthsae._rng import resolve_device
from synthsae.errors import require
from synthsae.metrics._stream import Decoder, batches, sparse_rows
from synthsae.metrics.adapters import as_sae, check_sae_against_world, decoder_of
from synthsae.metrics.matching import CHUNK, cosine_summary
from synthsae.metrics.reconstruction import ReconstructionAccumulator


def reappearance(decoders, threshold: float = 0.7, chunk: int = CHUNK) -> list[np.ndarray]:
    """Per SAE, the (m_k,) reappearance probability of each latent in the K-1 others (|cos| >= threshold).

    `decoders`: a list of SAEs or (m_k, d) decoder matrices. Invariant to latent order, sign and norm.
    One chunked |cos| pass per unordered pair; the full matrices are never stored.
    """
    Ws = [decoder_of(w, f"decoders[{i}]") for i, w in enumerate(decoders)]
    require(len(Ws) >= 2, "decoders", len(Ws), "stability compares SAEs across seeds", "at least 2 SAEs")
    require(0 < threshold <= 1, "threshold", threshold, "a cosine threshold", "a float in (0, 1]")
    d = Ws[0].shape[1]
    for i, W in enumerate(Ws):
        require(W.shape[1] == d, f"decoders[{i}]", tuple(W.shape), f"decoder 0 has d = {d}", f"shape (m, {d})")
    hits = [torch.zeros(W.shape[0]) for W in Ws]
    for a in range(len(Ws)):
        for b in range(a + 1, len(Ws)):
            s = cosine_summary(Ws[a], Ws[b], chunk=chunk)
            hits[a] += (s.row_max >= threshold).float()
            hits[b] += (s.col_max >= threshold).float()
    return [(h / (len(Ws) - 1)).numpy() for h in hits]


@dataclasses.dataclass
class StabilityResult:
    """probabilities[k] (m_k,): reappearance probability of each latent of SAE k; stable[k]: its mask;
    metrics: flat dict (stability.*), averaged over SAEs; per_sae: the same keys per SAE."""

    probabilities: list[np.ndarray]
    stable: list[np.ndarray]
    metrics: dict[str, float]
    per_sae: list[dict[str, float]]


def stability(saes, world=None, n: int = 10_000, seed: int = 0, threshold: float = 0.7,
              stable_threshold: float = 0.5, batch_size: int = 4096, device=None) -> StabilityResult:
    """Cross-seed stability of K SAEs; with a `world`, also the EV carried by stable latents (n samples)."""
    require(0 < stable_threshold <= 1, "stable_threshold", stable_threshold, "a probability", "a float in (0, 1]")
    probs = reappearance(saes, threshold)
    stable = [p >= stable_threshold for p in probs]
    per = []
    for k, (p, s) in enumerate(zip(probs, stable)):
        per.append({"stability.mean_reappearance": float(p.mean()), "stability.stable_fraction": float(s.mean())})
    if world is not None:
        require(n >= 2, "n", n, "explained variance needs samples", "n >= 2")
        for k, sae in enumerate(saes):
            per[k].update(_ev_split(as_sae(sae), world, torch.as_tensor(stable[k]), n, seed, batch_size, device))
    keys = per[0].keys()
    metrics = {key: float(np.mean([p[key] for p in per])) for key in keys}
    return StabilityResult(probs, stable, metrics, per)


def _ev_split(sae, world, stable: torch.Tensor, n, seed, batch_size, device) -> dict[str, float]:
    W = check_sae_against_world(sae, world)
    dev = resolve_device(device) if device is not None else W.device
    dec = Decoder(sae, W.to(dev))
    full, part = ReconstructionAccumulator(), ReconstructionAccumulator()
    keep = stable.to(dev)
    with torch.no_grad():
        for batch in batches(world, n, batch_size, seed, dev, W.dtype):
            z = sae.encode(batch.x)
            r, c, v = sparse_rows(z)
            full.add(batch.x, dec(z, r, c, v))
            sel = keep[c]
            part.add(batch.x, dec(z * keep, r[sel], c[sel], v[sel]) if dec.affine else dec(z * keep))
    ev, ev_s = full.compute()["reconstruction.explained_variance"], part.compute()["reconstruction.explained_variance"]
    return {"stability.ev_full": ev, "stability.ev_stable": ev_s,
            "stability.ev_share_stable": ev_s / ev if ev > 0 else float("nan")}
