"""Exact refit on a given support and signs (shared by every solver).

For a support S with signs s_S the optimality conditions are linear:
    z_S = (D_S D_Sᵀ + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S),  z = 0 off S   (atoms are rows of D).
Samples are grouped by support size so the batched Cholesky solves carry little padding. The
system matrices are gathered from the bordered matrix `system_matrix(G, λ2)` ((m+1)², last row and
column zero), so padding slots read zeros; a unit diagonal on them makes the padded block the
identity, which solves to exactly 0, with no masking of the whole (n, k, k) batch (that gather and
the Cholesky dominate the cost).
"""

from __future__ import annotations

import torch

# Support-size buckets: a batch is padded to the next of these sizes (ratio ≤ √2 above 32, so the
# Cholesky work at most triples; small systems are cheap, and fewer batches mean fewer tensor ops).
_BUCKETS = (16, 32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048)


def system_matrix(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """G + λ2 I bordered by a zero row/column: (m+1, m+1). Index m is the padding slot."""
    m = gram.shape[0]
    out = torch.zeros(m + 1, m + 1, dtype=gram.dtype, device=gram.device)
    out[:m, :m] = gram
    out.diagonal()[:m] += l2
    return out


def padded_support(mask: torch.Tensor, k: int | None = None, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """For a bool mask (n, m): indices (n, k) of the True entries in increasing order, padded with
    `pad` (k defaults to the largest row count), and the validity mask (n, k)."""
    n, m = mask.shape
    counts = mask.sum(1)
    k = (int(counts.max()) if n else 0) if k is None else k
    pos = torch.where(mask, mask.cumsum(1) - 1, k)  # slot of each True entry; k = discard column
    idx = torch.full((n, k + 1), pad, dtype=torch.long, device=mask.device)
    idx.scatter_(1, pos, torch.arange(m, device=mask.device).expand(n, m))
    valid = torch.arange(k, device=mask.device)[None, :] < counts[:, None]
    return torch.where(valid, idx[:, :k], pad), valid


def refit(system, corr, pen, mask, signs):
    """Solve the linear optimality system on `mask` with `signs` (n, m), float64.

    system: `system_matrix(G, λ2)`. Returns z (n, m) with exact zeros off the mask and ok (n,)
    (False where the support system is numerically singular).
    """
    n, m = mask.shape
    z = torch.zeros(n, m + 1, dtype=system.dtype, device=system.device)
    ok = torch.ones(n, dtype=torch.bool, device=system.device)
    counts = mask.sum(1)
    sizes = torch.tensor(_BUCKETS, device=mask.device)
    bucket = torch.bucketize(counts, sizes)  # smallest listed size >= count
    flat = system.reshape(-1)
    for b in torch.unique(bucket[counts > 0]).tolist():
        rows = (bucket == b).nonzero().flatten()
        whole = len(rows) == n
        take = (lambda t: t) if whole else (lambda t: t.index_select(0, rows))  # noqa: E731
        k = min(_BUCKETS[b] if b < len(_BUCKETS) else m, int(counts[rows].max()))
        idx, valid = padded_support(take(mask), k, pad=m)
        A = flat.index_select(0, (idx[:, :, None] * (m + 1) + idx[:, None, :]).reshape(-1)).view(len(rows), k, k)
        A.diagonal(dim1=1, dim2=2).add_(~valid)  # identity on the padding slots
        safe = idx.clamp(max=m - 1)
        rhs = take(corr).gather(1, safe) - take(pen).gather(1, safe) * take(signs).gather(1, safe)
        L, info = torch.linalg.cholesky_ex(A)
        good = info == 0
        sol = torch.cholesky_solve((rhs * valid)[:, :, None], L)[:, :, 0]
        sol = torch.where(good[:, None], sol, torch.zeros_like(sol))  # also clears NaN of failed factors
        zb = torch.zeros(len(rows), m + 1, dtype=z.dtype, device=z.device).scatter_(1, idx, sol)
        if whole:
            return zb[:, :m], good
        z.index_copy_(0, rows, zb)
        ok[rows] = good
    return z[:, :m], ok


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
