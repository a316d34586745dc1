"""Steering / composition fidelity: push x along a true feature and see which latents move.

For a matched true feature j (latent l = sigma(j), s_j = sign cos(W_dec_l, d_j)) and samples x:
    delta_k = (z_k(x + alpha_j d_j) - z_k(x)) * ||W_dec_k||          (contributions, decoder units)
    on_target  = s_j * delta_l / alpha_j                                 (1 = ideal)
    off_target = ||delta_{k != l}||_2 / alpha_j                          (0 = ideal)
    leakage    = off_target / (|on_target| + off_target)                 (0 = ideal, 1 = all leaks)
averaged over samples, then over a seeded random subset of matched features. alpha_j defaults to
the world's mean magnitude of feature j.
"""

from __future__ import annotations

import numpy as np
import torch

from synthsae._rng import generator
from synthsae.errors import require


def steering_fidelity(sae, world, sigma, sign, n_features: int = 32, n_samples: int = 128, alpha=None,
                      seed: int = 0, device=None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(metrics steering.*, per-feature columns) -- see the module docstring."""
    sigma = np.asarray(sigma)
    matched = np.nonzero(sigma >= 0)[0]
    require(n_samples >= 1 and n_features >= 1, "(steering_features, steering_samples)", (n_features, n_samples),
            "steering needs features and samples", "positive ints")
    g = generator(seed)
    pick = matched[torch.randperm(len(matched), generator=g)[:n_features].numpy()]
    W = sae.W_dec.detach()
    dev = W.device if device is None else torch.device(device)
    norms = W.norm(dim=1).to(dev)
    D = torch.as_tensor(world.dictionary, dtype=W.dtype).to(dev)
    mags = torch.as_tensor(world.mean_magnitudes, dtype=torch.float64)
    x = world.sample(n_samples, seed=seed + 1, device=dev, dtype=W.dtype).x
    on_l, off_l, leak_l = [], [], []
    with torch.no_grad():
        z0 = sae.encode(x)
        for j in pick.tolist():
            a = float(alpha if alpha is not None else mags[j])
            require(a > 0, "steering alpha", a, "the push must be positive", "alpha > 0")
            delta = (sae.encode(x + a * D[j]) - z0) * norms
            lat = int(sigma[j])
            on = float(sign[j]) * delta[:, lat].double() / a
            delta[:, lat] = 0
            off = delta.double().norm(dim=1) / a
            leak = off / (on.abs() + off).clamp_min(1e-300)
            on_l.append(float(on.mean())); off_l.append(float(off.mean())); leak_l.append(float(leak.mean()))  # noqa: E702
    table = {"feature": pick, "latent": sigma[pick], "on_target": np.array(on_l), "off_target": np.array(off_l),
             "leakage": np.array(leak_l)}
    return ({"steering.on_target": float(np.mean(on_l)), "steering.off_target": float(np.mean(off_l)),
             "steering.leakage": float(np.mean(leak_l)), "steering.features": float(len(pick))}, table)
