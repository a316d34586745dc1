"""Exact refit on a given support and signs (shared by every solver).

For a support S with signs s_S the optimality conditions are linear:
    z_S = (D_S D_Sᵀ + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S),  z = 0 off S   (atoms are rows of D).
Samples are grouped by support size so the batched Cholesky solves carry little padding.
"""

from __future__ import annotations

import torch


def padded_support(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a bool mask (n, m): indices (n, K) of the True entries (padded with 0) and a validity mask."""
    counts = mask.sum(1)
    k = int(counts.max()) if mask.shape[0] else 0
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :k]
    valid = torch.arange(k, device=mask.device)[None, :] < counts[:, None]
    return order, valid


def refit(gram, corr, pen, l2, mask, signs):
    """Solve the linear optimality system on `mask` with `signs` (n, m), float64.

    Returns z (n, m) with exact zeros off the mask and ok (n,) (False where the system is singular).
    """
    n, m = mask.shape
    z = torch.zeros(n, m, dtype=gram.dtype, device=gram.device)
    ok = torch.ones(n, dtype=torch.bool, device=gram.device)
    counts = mask.sum(1)
    # Buckets of support sizes 0, 1-8, 9-16, 17-32, ... keep the padding small.
    bucket = torch.ceil(torch.log2(counts.clamp(min=1).to(torch.float64) / 8).clamp(min=0)).long()
    bucket = torch.where(counts == 0, -1, bucket)
    for b in torch.unique(bucket).tolist():
        if b < 0:
            continue
        rows = (bucket == b).nonzero().flatten()
        idx, valid = padded_support(mask[rows])
        k = idx.shape[1]
        A = gram[idx[:, :, None], idx[:, None, :]]
        vv = valid[:, :, None] & valid[:, None, :]
        eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
        A = torch.where(vv, A + l2 * eye, eye.expand_as(A))
        rhs = corr[rows].gather(1, idx) - pen[rows].gather(1, idx) * signs[rows].gather(1, idx)
        rhs = torch.where(valid, rhs, torch.zeros_like(rhs))
        L, info = torch.linalg.cholesky_ex(A)
        good = info == 0
        L = torch.where(good[:, None, None], L, eye.expand_as(L))
        sol = torch.cholesky_solve(rhs[:, :, None], L)[:, :, 0]
        sol = torch.where(valid & good[:, None], sol, torch.zeros_like(sol))
        zr = torch.zeros(len(rows), m, dtype=gram.dtype, device=gram.device)
        zr.scatter_(1, idx, sol)
        z[rows] = zr
        ok[rows] = good
    return z, ok


def neg_gradient(gram, corr, l2, z, D=None):
    """g = D r − λ2 z = c − z G − λ2 z (n, m), using only the non-zero columns of z; through D
    ((z D) Dᵀ, 2·n·m·d flops) when that is cheaper than through G (n·|used|·m flops)."""
    nz = (z != 0).any(0)
    used = int(nz.sum())
    if used == 0:
        return corr.clone()
    if D is not None and used > 2 * D.shape[1]:
        return corr - (z[:, nz] @ D[nz]) @ D.T - l2 * z
    return corr - z[:, nz] @ gram[nz] - l2 * z


def kkt_ok(g, z, pen, nonneg, delta):
    """True where no zero coordinate violates its KKT condition by more than `delta` (n, m)."""
    excess = (g if nonneg else g.abs()) - pen
    return ~((z == 0) & (excess > delta)).any(1)
