"""Lipschitz constant (stability) of an SAE's coding map x -> z(x), measured empirically.

Codes are measured in decoder units, c_l(x) = z_l(x) ||W_dec_l||, so the numbers do not change
when a decoder row is rescaled and its code rescaled inversely. Two estimates, both lower bounds
on the true Lipschitz constant L = sup ||c(x) - c(x')|| / ||x - x'||:
  * pairs: max ratio over random pairs -- sample pairs (x_i, x_pi(i)) and nearby pairs
    (x, x + eps * rms(x) * u, u a random unit vector);
  * jacobian: max over samples of the spectral norm of the Jacobian dc/dx at x, by power
    iteration on J^T J with autograd (J v by the double-backward trick, J^T u by backward).
"""

from __future__ import annotations

import torch

from synthsae._rng import generator
from synthsae.errors import require


def _codes(sae, x, norms):
    return sae.encode(x) * norms


def pair_ratios(sae, x: torch.Tensor, eps: float = 1e-2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Ratios ||c(x) - c(x')|| / ||x - x'|| for sample pairs and for nearby pairs; x (n, d)."""
    require(x.shape[0] >= 2, "lipschitz samples", x.shape[0], "pairs need at least two samples", ">= 2 samples")
    g = generator(seed)
    norms = sae.W_dec.detach().norm(dim=1)
    with torch.no_grad():
        c = _codes(sae, x, norms)
        perm = torch.randperm(x.shape[0], generator=g).to(x.device)
        dx = (x - x[perm]).norm(dim=1)
        ok = dx > 0
        far = ((c - c[perm]).norm(dim=1)[ok] / dx[ok])
        u = torch.randn(x.shape, generator=g).to(x)
        u = u / u.norm(dim=1, keepdim=True)
        step = eps * x.pow(2).mean().sqrt().clamp_min(1e-12)
        near = (_codes(sae, x + step * u, norms) - c).norm(dim=1) / step
    return {"pairs": far.double(), "near": near.double()}


def jacobian_norms(sae, x: torch.Tensor, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """(n,) spectral norm of dc/dx at each sample, by `iters` power iterations (per-sample encoders)."""
    g = generator(seed)
    norms = sae.W_dec.detach().norm(dim=1)
    v = torch.randn(x.shape, generator=g).to(x)
    v = v / v.norm(dim=1, keepdim=True)
    sigma = torch.zeros(x.shape[0], dtype=torch.float64)
    for _ in range(iters):
        xi = x.detach().clone().requires_grad_(True)
        c = _codes(sae, xi, norms)
        if not c.requires_grad:  # encoder not differentiable (e.g. no autograd path)
            return torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
        u = torch.zeros_like(c, requires_grad=True)
        (jt_u,) = torch.autograd.grad(c, xi, u, create_graph=True)
        (jv,) = torch.autograd.grad(jt_u, u, v, retain_graph=True)  # J v
        (jtjv,) = torch.autograd.grad(c, xi, jv)
        sigma = jv.detach().double().norm(dim=1)
        nrm = jtjv.norm(dim=1, keepdim=True)
        v = torch.where(nrm > 0, jtjv / nrm.clamp_min(1e-30), v).detach()
    return sigma


def encoder_lipschitz(sae, x: torch.Tensor, power_iters: int = 30, eps: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Metrics lipschitz.* for the SAE encoder on samples x (n, d)."""
    r = pair_ratios(sae, x, eps=eps, seed=seed)
    j = jacobian_norms(sae, x, iters=power_iters, seed=seed + 1)
    return {
        "lipschitz.encoder_pairs_max": float(r["pairs"].max()),
        "lipschitz.encoder_near_max": float(r["near"].max()),
        "lipschitz.encoder_jacobian_max": float(j.max()),
        "lipschitz.encoder_jacobian_median": float(j.median()),
    }
