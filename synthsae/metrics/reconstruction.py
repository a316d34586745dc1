"""Reconstruction and sparsity: explained variance, MSE, L0, dead and rarely-firing latents.

Explained variance uses the SAEBench / SAELens form
    EV = 1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2),
sums over dimensions, every sample weighted equally, accumulated in float64.
"""

from __future__ import annotations

import torch

from synthsae.errors import require


def explained_variance(x, x_hat) -> float:
    """EV = 1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2) for x, x_hat of shape (n, d)."""
    acc = ReconstructionAccumulator()
    acc.add(torch.as_tensor(x), torch.as_tensor(x_hat))
    return acc.compute()["reconstruction.explained_variance"]


class ReconstructionAccumulator:
    """Streams batches of (x, x_hat) and accumulates EV, MSE and the SAELens norm ratio in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.sum_x: torch.Tensor | None = None
        self.sum_sq = 0.0
        self.sum_res = 0.0
        self.sum_norm_ratio = 0.0
        self.n_ratio = 0
        self.d = 0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        require(x.shape == x_hat.shape, "x_hat", tuple(x_hat.shape), "reconstruction and input differ in shape",
                f"shape {tuple(x.shape)}")
        # per-row sums in the input precision (relative error ~1e-7), everything across rows in float64
        s = x.sum(dim=0, dtype=torch.float64).cpu()
        self.sum_x = s if self.sum_x is None else self.sum_x + s
        xsq = x.pow(2).sum(dim=1).double()
        self.sum_sq += float(xsq.sum())
        self.sum_res += float((x - x_hat).pow(2).sum(dim=1).double().sum())
        xn = xsq.sqrt()
        ok = xn > 1e-6
        self.sum_norm_ratio += float((x_hat.pow(2).sum(dim=1).double().sqrt()[ok] / xn[ok]).sum())
        self.n_ratio += int(ok.sum())
        self.n += x.shape[0]
        self.d = x.shape[1]

    def compute(self) -> dict[str, float]:
        require(self.n >= 2, "n", self.n, "explained variance needs a variance", "at least 2 samples")
        mean_sq = self.sum_sq / self.n
        var = mean_sq - float((self.sum_x / self.n).pow(2).sum())
        mse = self.sum_res / self.n
        require(var > 1e-12, "world samples", f"total variance {var:.3g}", "explained variance is undefined for "
                "constant inputs", "a world whose samples vary")
        return {
            "reconstruction.explained_variance": 1.0 - mse / var,
            "reconstruction.mse": mse / self.d,
            "reconstruction.sq_error": mse,
            "reconstruction.total_variance": var,
            "reconstruction.norm_ratio": self.sum_norm_ratio / max(self.n_ratio, 1),
        }


def latent_usage(fire_counts, n: int, rare_threshold: float = 1e-4) -> dict[str, float]:
    """Dead latents (never fired in n samples) and rare ones (0 < rate < rare_threshold).

    fire_counts: (m_sae,) number of samples on which each latent was non-zero.
    """
    fc = torch.as_tensor(fire_counts)
    require(n >= 1, "n", n, "no samples", "n >= 1")
    require(0 < rare_threshold < 1, "rare_threshold", rare_threshold, "a firing rate", "a float in (0, 1)")
    rate = fc.double() / n
    dead = fc == 0
    rare = (~dead) & (rate < rare_threshold)
    m = fc.numel()
    return {
        "latents.dead_count": int(dead.sum()),
        "latents.dead_fraction": float(dead.sum()) / m,
        "latents.rare_count": int(rare.sum()),
        "latents.rare_fraction": float(rare.sum()) / m,
    }
