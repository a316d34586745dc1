"""Adaptive (elastic-net) weights w_j = 1/(|z̃_j| + ε)^γ from an initial estimate z̃."""

from __future__ import annotations

import torch

from synthsae.errors import require
from synthsae.solvers.problem import as_float64


def adaptive_weights(z_init, gamma: float = 1.0, eps: float = 1e-3) -> torch.Tensor:
    """Weights of the same shape as z_init ((m,) per feature or (n, m) per sample), float64, > 0."""
    require(isinstance(gamma, float | int) and gamma > 0, "gamma", gamma, "must be > 0", "a positive float")
    require(isinstance(eps, float | int) and eps > 0, "eps", eps, "eps = 0 gives infinite weights on zeros",
            "a positive float such as 1e-3")
    z = as_float64("z_init", z_init, z_init.device if isinstance(z_init, torch.Tensor) else torch.device("cpu"))
    return (z.abs() + eps) ** (-float(gamma))
