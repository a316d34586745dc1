"""Downstream faithfulness: a fixed synthetic readout of the true codes and the KL it suffers when
x is replaced by the SAE reconstruction (the synthetic analogue of "CE loss recovered").

The readout is a linear "model head" on the feature detections x D^T (D (m, d), rows = atoms,
so x D^T ~= z when atoms are near-orthogonal): logits(x) = scale * x D^T R with R (m, C) Gaussian
drawn from `seed`, and scale = 2 / sqrt(sum_j p_j mu_j^2) so logits have std ~2 on the world.
"""

from __future__ import annotations

import torch

from synthsae._rng import generator
from synthsae.errors import require


class DownstreamReadout:
    """logits(x) = x @ W with W = scale * D^T R, shape (d, C). Same (world, seed) -> same readout."""

    def __init__(self, world, n_classes: int = 16, seed: int = 0, device=None):
        require(isinstance(n_classes, int) and n_classes >= 2, "downstream_classes", n_classes,
                "a softmax needs at least two outputs", "an int >= 2")
        D = torch.as_tensor(world.dictionary, dtype=torch.float64).cpu()
        R = torch.randn(D.shape[0], n_classes, generator=generator(seed), dtype=torch.float64)
        p = torch.as_tensor(world.firing_probabilities, dtype=torch.float64).cpu()
        mu = torch.as_tensor(world.mean_magnitudes, dtype=torch.float64).cpu()
        energy = float((p * mu * mu).sum())
        require(energy > 0, "world", "firing_probabilities * mean_magnitudes^2", "no feature ever fires",
                "a world with some firing")
        self.W = (2.0 / energy ** 0.5) * (D.T @ R)
        self.W = self.W.to(device=device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C) float64 logits; the (n, d) x (d, C) product runs in x's precision."""
        return (x @ self.W.to(device=x.device, dtype=x.dtype)).double()


class DownstreamAccumulator:
    """Sums KL(softmax(logits(x)) || softmax(logits(x_hat))) and the same for zero-ablation (x_hat = 0)."""

    def __init__(self, readout: DownstreamReadout):
        self.readout = readout
        self.kl = self.kl_zero = 0.0
        self.n = 0

    @staticmethod
    def _kl(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        lp, lq = torch.log_softmax(lp, dim=1), torch.log_softmax(lq, dim=1)
        return (lp.exp() * (lp - lq)).sum(dim=1)

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        lx = self.readout.logits(x)
        self.kl += float(self._kl(lx, self.readout.logits(x_hat)).sum())
        self.kl_zero += float(self._kl(lx, torch.zeros_like(lx)).sum())
        self.n += x.shape[0]

    def compute(self) -> dict[str, float]:
        kl, kz = self.kl / self.n, self.kl_zero / self.n
        return {"downstream.kl": kl, "downstream.kl_zero_ablation": kz,
                "downstream.score": 1.0 - kl / kz if kz > 0 else float("nan")}
