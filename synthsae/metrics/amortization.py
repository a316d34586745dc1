"""Amortization gap: the SAE's codes against the exact sparse codes of the same problem, and the
exact elastic-net map's Lipschitz constant (measured and bound), via `synthsae.solvers`.

Problem (solver convention, per sample): P(z) = ½‖x_c − z W‖² + λ1 Σ|z_j| + (λ2/2)‖z‖², z ≥ 0
by default (ReLU codes), with W = W_dec (m_sae, d), rows = atoms, and x_c = x − decode(0) (the
decoder bias removed). Penalties are the caller's, in this ½-sum convention (an SAE trained with a
per-element mean MSE, as `synthsae.sae`, with coefficient c corresponds to λ1 = c·d/2).
"""

from __future__ import annotations

import torch

from synthsae._rng import generator
from synthsae.solvers import lipschitz_bound, sparse_code, support_jacobian


def _objective(xc, z, W, l1, l2):
    r = xc - z @ W
    return 0.5 * r.pow(2).sum(1) + l1 * z.abs().sum(1) + 0.5 * l2 * z.pow(2).sum(1)


def amortization_gap(sae, x: torch.Tensor, l1: float, l2: float = 0.0, nonneg: bool = True,
                     method: str = "auto") -> dict[str, float]:
    """Metrics amortization.* on samples x (n, d): objective gap P(ẑ) − P(z*), its relative size,
    support F1 between ẑ and z*, code error, share of certified exact codes.

    code_error is pooled over samples, sqrt(Σ‖ẑ − z*‖² / Σ‖z*‖²): a per-sample ratio ‖ẑ − z*‖/‖z*‖
    explodes (to ~1e9) on samples whose exact code is zero, and its mean would be set by them."""
    with torch.no_grad():
        W = sae.W_dec.detach().double()
        bias = sae.decode(torch.zeros(1, W.shape[0], dtype=sae.W_dec.dtype, device=W.device))[0].double()
        xc = x.double() - bias
        zh = sae.encode(x).double()
    res = sparse_code(xc, W, l1, l2, nonneg=nonneg, method=method)
    zs = res.z.to(zh)
    gap = _objective(xc, zh, W, l1, l2) - res.objective.to(zh)
    sh, ss = zh != 0, res.support.to(zh.device)
    tp = (sh & ss).sum(1).double()
    f1 = torch.where(sh.sum(1) + ss.sum(1) > 0, 2 * tp / (sh.sum(1) + ss.sum(1)).double().clamp_min(1),
                     torch.ones((), dtype=torch.float64))
    err = ((zh - zs).pow(2).sum() / zs.pow(2).sum().clamp_min(1e-300)).sqrt()
    return {
        "amortization.objective_gap": float(gap.mean()),
        "amortization.relative_objective_gap": float((gap / res.objective.to(zh).clamp_min(1e-300)).mean()),
        "amortization.support_f1": float(f1.mean()),
        "amortization.code_error": float(err),
        "amortization.certified_fraction": float(res.converged.double().mean()),
    }


def exact_map_lipschitz(D, x: torch.Tensor, l1: float, l2: float, nonneg: bool = True, eps: float = 1e-2,
                        seed: int = 0, jacobian_limit: int = 50_000_000) -> dict[str, float]:
    """The exact elastic-net coding map z*(x) for dictionary D (m, d), rows = atoms: its bound
    min(‖D‖₂/λ2, 1/(2√λ2)), the max ratio over nearby pairs, and (when n·K·d <= jacobian_limit, K the
    largest support) the max spectral norm of its active-set Jacobian, computed on the support rows
    only (`support_jacobian`: the zero rows do not change singular values). Measured values are lower
    bounds on the constant."""
    D = torch.as_tensor(D).double()
    x = x.double()
    g = generator(seed)
    u = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.device)
    u = u / u.norm(dim=1, keepdim=True)
    step = eps * float(x.pow(2).mean().sqrt().clamp_min(1e-12))
    a = sparse_code(x, D, l1, l2, nonneg=nonneg)
    b = sparse_code(x + step * u, D, l1, l2, nonneg=nonneg)
    out = {"lipschitz.exact_bound": lipschitz_bound(D, l2),
           "lipschitz.exact_near_max": float(((a.z - b.z).norm(dim=1) / step).max())}
    largest = int(a.support.sum(1).max()) if x.shape[0] else 0
    if x.shape[0] and x.shape[0] * largest * D.shape[1] <= jacobian_limit:
        out["lipschitz.exact_jacobian_max"] = float(support_jacobian(a, D).spectral_norm().max())
    return out
