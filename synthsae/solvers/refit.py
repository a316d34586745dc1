"""Exact refit on a given support and signs (shared by every solver).

For a support S with signs s_S the optimality conditions are linear:
    z_S = (D_S D_Sᵀ + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S),  z = 0 off S   (atoms are rows of D).
Samples are grouped by support size (`_groups`) so the batched Cholesky solves carry little padding. The
system matrices are gathered from the bordered matrix `system_matrix(G, λ2)` ((m+1)², last row and
column zero), so padding slots read zeros; a unit diagonal on them makes the padded block the
identity, which solves to exactly 0, with no masking of the whole (n, k, k) batch (that gather and
the Cholesky dominate the cost). `factorize` keeps the factors (`SupportFactor`) so that a refit
with some support atoms held at zero costs triangular solves, not a new factorization.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg.lapack import dpotrf, dpotrs
from threadpoolctl import ThreadpoolController

from synthsae._rowsums import weighted_row_sums

# Support systems whose smallest squared Cholesky pivot is below this fraction of the largest
# diagonal entry are treated as singular (the refit would be dominated by rounding).
SINGULAR_RTOL = 1e-12
# Samples are factored in groups, sorted by support size; a group's systems are padded to its
# largest support. A group spans sizes up to GROUP_SPREAD times its smallest (so padding costs at
# most 1.2³ = 1.7× the Cholesky work), except that supports up to MIN_GROUP_SIZE share one group
# (small systems are cheap, and fewer groups mean fewer tensor ops).
GROUP_SPREAD = 1.2
MIN_GROUP_SIZE = 16
# On CPU a group holds at most this many system entries (16 MiB in float64): larger temporaries are
# fresh memory maps on every call (glibc's malloc), and their page faults cost more than the gather
# and the Cholesky themselves (measured 136 → 34 ms for 500 systems of 128²). GPUs take big batches.
CPU_CHUNK_ENTRIES = 2**21
GPU_CHUNK_ENTRIES = 2**26
# `neg_gradient` sums Gram rows when samples have at most d / SPARSE_GRADIENT_RATIO non-zeros on
# average (crossover measured near d / 10 at d = 256 and d / 5 at d = 64).
SPARSE_GRADIENT_RATIO = 6
# From this support size on, CPU factorizations loop over LAPACK calls (see `_cholesky_solve`).
LAPACK_LOOP_MIN = 48


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
    n = mask.shape[0]
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: each row's entries in increasing order
    counts = mask.sum(1)
    k = (int(counts.max()) if n else 0) if k is None else k
    slot = torch.arange(len(rows), device=mask.device) - (counts.cumsum(0) - counts).index_select(0, rows)
    idx = torch.full((n, k), pad, dtype=torch.long, device=mask.device)
    idx.index_put_((rows, slot), cols)
    valid = torch.arange(k, device=mask.device)[None, :] < counts[:, None]
    return idx, valid


@dataclass(eq=False)
class SupportFactor:
    """The factored support system of a group of samples with supports of similar size.

    rows (g,) positions in the batch; idx (g, k) atom of each slot (padding: m); valid (g, k);
    L (g, k, k) Cholesky factor of A_SS = G_SS + λ2 I (identity on padding slots) in its lower
    triangle (the strict upper triangle is unspecified: only triangular solves read L); u (g, k) the
    refit A_SS⁻¹(c_S − λ1 w_S ∘ s_S) in slot order (0 on padding); ok (g,) False where A_SS is
    numerically singular.
    """

    rows: torch.Tensor
    idx: torch.Tensor
    valid: torch.Tensor
    L: torch.Tensor
    u: torch.Tensor
    ok: torch.Tensor

    def select(self, keep: torch.Tensor) -> SupportFactor:
        """The factor restricted to group positions `keep`."""
        return SupportFactor(*(t.index_select(0, keep) for t in (self.rows, self.idx, self.valid, self.L,
                                                                  self.u, self.ok)))

    def solve_without(self, dropped: torch.Tensor) -> torch.Tensor:
        """The refit (g, k) with the slots `dropped` (g, k) held at zero, from the same factor.

        Constraining z_R = 0 adds multipliers μ: z = u − A⁻¹E_R μ with (E_Rᵀ A⁻¹ E_R) μ = u_R
        (E_R: the unit columns of R). With W = L⁻¹E_R, E_RᵀA⁻¹E_R = WᵀW and A⁻¹E_R μ = L⁻ᵀWμ, so a
        drop costs O(k²|R|) instead of a new O(k³) factorization (used by the Lawson–Hanson steps).
        """
        q = dropped.sum(1)
        if int(q.max()) == 0:
            return self.u.clone()
        pos, pv = padded_support(dropped)
        g, k = self.u.shape
        E = torch.zeros(g, k, pos.shape[1], dtype=self.L.dtype, device=self.L.device)
        E.scatter_(1, pos[:, None, :], pv[:, None, :].to(E.dtype))
        W = torch.linalg.solve_triangular(self.L, E, upper=False)
        M = W.mT @ W
        M.diagonal(dim1=1, dim2=2).add_(~pv)  # padding columns: μ = 0
        mu = torch.linalg.solve(M, (self.u.gather(1, pos) * pv)[:, :, None])
        corr = torch.linalg.solve_triangular(self.L.mT, W @ mu, upper=True)[:, :, 0]
        return torch.where(dropped, torch.zeros_like(self.u), self.u - corr)


def put_rows(t: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor, idx: torch.Tensor) -> None:
    """In place: t[rows[i], idx[i, j]] = slots[i, j] for the non-padding slots (idx < m); every
    other entry of t is left as it is (callers write over the rows' previous non-zeros, or start
    from zeros)."""
    m = t.shape[1]
    keep = idx < m
    t.view(-1).index_put_(((rows[:, None] * m + idx)[keep],), slots[keep])


def factorize(system, corr, pen, mask, signs) -> list[SupportFactor]:
    """Factor and solve the linear optimality system on `mask` with `signs` (n, m), float64, one
    `SupportFactor` per group of similar support sizes (`_groups`; rows with an empty support are
    left out).

    system: `system_matrix(G, λ2)`.
    """
    idx, valid = padded_support(mask, pad=mask.shape[1])
    return [_factor_group(system, corr, pen, signs, rows, idx.index_select(0, rows)[:, :k],
                          valid.index_select(0, rows)[:, :k]) for rows, k in _groups(valid.sum(1))]


def _groups(counts: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """Split the samples with a non-empty support into groups of similar support size: a list of
    (rows, k), k the group's largest support (see GROUP_SPREAD, CPU_CHUNK_ENTRIES)."""
    order = counts.argsort(stable=True)
    sizes = counts[order].tolist()
    budget = CPU_CHUNK_ENTRIES if counts.device.type == "cpu" else GPU_CHUNK_ENTRIES
    groups = []
    start = bisect.bisect_right(sizes, 0)  # empty supports need no system
    while start < len(sizes):
        lo = start + 1  # the group is sizes[start:end]; find the largest end that fits the budget
        hi = bisect.bisect_right(sizes, max(MIN_GROUP_SIZE, int(GROUP_SPREAD * sizes[start])), lo=start)
        while lo < hi:  # (end - start)·sizes[end - 1]² grows with end: bisect on it
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if (mid - start) * sizes[mid - 1] ** 2 <= budget else (lo, mid - 1)
        groups.append((order[start:lo], sizes[lo - 1]))
        start = lo
    return groups


def _factor_group(system, corr, pen, signs, rows, idx, valid) -> SupportFactor:
    """`factorize` for the samples `rows`, with support atoms idx (g, k) (padding: m) and valid (g, k)."""
    m, k = signs.shape[1], idx.shape[1]
    flat = system.reshape(-1)
    # int32 positions when they fit: half the memory traffic of the (g, k, k) index
    pos = idx.int() if (m + 1) ** 2 < 2**31 else idx
    A = flat.index_select(0, (pos[:, :, None] * (m + 1) + pos[:, None, :]).reshape(-1)).view(len(rows), k, k)
    A.diagonal(dim1=1, dim2=2).add_(~valid)  # identity on the padding slots
    safe = idx.clamp(max=m - 1)
    rhs = entries(corr, rows, safe) - entries(pen, rows, safe) * entries(signs, rows, safe)
    diag = A.diagonal(dim1=1, dim2=2).amax(1)
    L, info, u = _cholesky_solve(A, rhs * valid)
    # a pivot at rounding level (e.g. d + 1 atoms in R^d at λ2 = 0) is a singular system too
    good = (info == 0) & (L.diagonal(dim1=1, dim2=2).amin(1) ** 2 > SINGULAR_RTOL * diag)
    if not bool(good.all()):  # keep failed factors finite (their rows are flagged, not used)
        L = torch.where(good[:, None, None], L, torch.eye(k, dtype=L.dtype, device=L.device))
        u = torch.where(good[:, None], u, torch.zeros_like(u))  # (a product would keep NaNs)
    return SupportFactor(rows, idx, valid, L, u, good)


def entries(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """t[rows[i], cols[i, j]] (g, k) for t (n, m): one gather of g·k entries, without copying whole
    rows; t may be a broadcast row (stride 0, per-feature penalties)."""
    if t.stride(0) == 0:
        return t[0].index_select(0, cols.reshape(-1)).view_as(cols)
    return t.reshape(-1).index_select(0, (rows[:, None] * t.shape[1] + cols).reshape(-1)).view_as(cols)


def _cholesky_solve(A: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cholesky factors L (g, k, k) of A, their LAPACK info (g,) (0: success) and A⁻¹b for b (g, k).
    A may be overwritten by L.

    Only the lower triangle of L is specified. On CPU, for k ≥ LAPACK_LOOP_MIN, this is a loop of
    LAPACK calls through scipy that factors A in place and leaves the upper triangle as it was:
    measured about twice as fast as torch's batched `cholesky_ex` (which also zeroes the upper
    triangle) followed by two batched triangular solves. Elsewhere, torch.
    """
    if A.device.type != "cpu" or A.dtype != torch.float64 or A.shape[-1] < LAPACK_LOOP_MIN:
        L, info = torch.linalg.cholesky_ex(A)
        # two triangular solves: much faster than batched cholesky_solve on CPU (measured 4x at k = 128)
        y = torch.linalg.solve_triangular(L, b[:, :, None], upper=False)
        return L, info, torch.linalg.solve_triangular(L.mT, y, upper=True)[:, :, 0]
    a, rhs = A.numpy(), b.numpy()
    info = np.zeros(len(a), dtype=np.int64)
    u = np.zeros_like(rhs)
    # one BLAS thread: threaded LAPACK on systems this small is many times slower (measured 8x)
    with _blas_threads().limit(limits=1, user_api="blas"):
        for i in range(len(a)):
            # a C-ordered block, transposed, is Fortran-ordered, so LAPACK works in place: its
            # upper factor U = Lᵀ of the (symmetric) transpose is L in C order
            _, info[i] = dpotrf(a[i].T, lower=0, clean=0, overwrite_a=1)
            if info[i] == 0:
                u[i] = dpotrs(a[i].T, rhs[i], lower=0)[0]
    return A, torch.from_numpy(info), torch.from_numpy(u)


@functools.cache
def _blas_threads() -> ThreadpoolController:
    """The BLAS thread pools loaded in this process (scipy's among them), found once."""
    return ThreadpoolController()


def refit(system, corr, pen, mask, signs):
    """Solve the linear optimality system on `mask` with `signs` (n, m), float64.

    system: `system_matrix(G, λ2)`. Returns z (n, m) with exact zeros off the mask and ok (n,)
    (False where the support system is numerically singular).
    """
    n, m = mask.shape
    z = torch.zeros(n, m, dtype=system.dtype, device=system.device)
    ok = torch.ones(n, dtype=torch.bool, device=system.device)
    for f in factorize(system, corr, pen, mask, signs):
        put_rows(z, f.rows, f.u, f.idx)
        ok[f.rows] = f.ok
    return z, ok


def neg_gradient(gram, corr, l2, z, D=None):
    """g = D r − λ2 z = c − z G − λ2 z (n, m), the cheapest of three ways:
    - few non-zeros per sample (≤ d / SPARSE_GRADIENT_RATIO on average): the sum of each sample's
      Gram rows, one embedding bag (memory-bound, measured faster than dense products there);
    - else through D, (z D) Dᵀ (2·n·m·d flops), when more than 2d atoms are used by the batch;
    - else through the used Gram rows (n·|used|·m flops)."""
    active = z != 0
    nz = active.any(0)
    used = int(nz.sum())
    if used == 0:
        return corr.clone()
    n = z.shape[0]
    if D is not None and SPARSE_GRADIENT_RATIO * int(active.sum()) <= n * D.shape[1]:
        rows, cols = active.nonzero(as_tuple=True)  # row-major, as the embedding bag needs
        return corr - weighted_row_sums(rows, cols, z[rows, cols], gram, n) - l2 * z
    every = used == z.shape[1]  # then skip the column selection (a copy of z)
    if D is not None and used > 2 * D.shape[1]:
        g = torch.addmm(corr, z @ D if every else z[:, nz] @ D[nz], D.T, alpha=-1)
    else:
        g = torch.addmm(corr, z if every else z[:, nz], gram if every else gram[nz], alpha=-1)
    return g.sub_(z, alpha=l2) if l2 else g


def kkt_ok(g, z, pen, nonneg, delta):
    """True where no zero coordinate violates its KKT condition by more than `delta` (n, m)."""
    excess = (g if nonneg else g.abs()) - pen
    return ~((z == 0) & (excess > delta)).any(1)
