"""Sparse-by-construction event samplers: which (sample, feature) pairs fire.

All return (rows, cols) long tensors sorted by row * m + col, drawn on the CPU from a
`torch.Generator` (so results are bit-identical whatever device the batch is used on).
"""

from __future__ import annotations

import math

import torch


def _sorted(rows: torch.Tensor, cols: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(rows * m + cols)
    return rows[order], cols[order]


def independent_events(q: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (i, j) fires independently with probability q_j. Cost O(n * sum(q) + m), not O(n m).

    For each feature the firing rows form a Bernoulli process, whose gaps are Geometric(q_j):
    we draw enough gaps per feature (mean + 5 sd + 5), take cumulative sums, and keep positions
    < n. A feature whose gaps did not reach n (rare) is redrawn with twice as many gaps.
    """
    m = q.numel()
    feats = torch.nonzero(q > 0).squeeze(1)
    qd = q.double()
    mean = n * qd[feats]
    need = torch.ceil(mean + 5 * torch.sqrt(mean * (1 - qd[feats])) + 5).clamp(max=n + 1).long()
    out_rows, out_cols = [], []
    while feats.numel():
        owner = torch.repeat_interleave(torch.arange(len(feats)), need)
        u = 1.0 - torch.rand(len(owner), generator=generator, dtype=torch.float64)  # (0, 1]
        qf = qd[feats][owner]
        gaps = torch.where(qf >= 1.0, torch.ones_like(u), torch.floor(torch.log(u) / torch.log1p(-qf)) + 1)
        csum = torch.cumsum(gaps.clamp(max=n + 1).long(), 0)
        ends = torch.cumsum(need, 0) - 1
        offset = torch.zeros_like(csum)
        offset[ends[:-1] + 1] = csum[ends[:-1]]
        pos = csum - torch.cummax(offset, 0).values - 1  # 0-based positions within each feature
        done = pos[ends] >= n  # the process ran past the last sample: no event was cut off
        keep = (pos < n) & done[owner]
        out_rows.append(pos[keep])
        out_cols.append(feats[owner[keep]])
        feats, need = feats[~done], (need[~done] * 2).clamp(max=n + 1)
    rows = torch.cat(out_rows) if out_rows else torch.zeros(0, dtype=torch.long)
    cols = torch.cat(out_cols) if out_cols else torch.zeros(0, dtype=torch.long)
    return _sorted(rows, cols, m)


def exactly_k_events(n: int, m: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly random k-subset of the m features per sample (Floyd's algorithm, O(n k^2))."""
    chosen = torch.empty(n, k, dtype=torch.long)
    for i, j in enumerate(range(m - k, m)):
        t = torch.floor(torch.rand(n, generator=generator, dtype=torch.float64) * (j + 1)).long()
        dup = (chosen[:, :i] == t[:, None]).any(1)
        chosen[:, i] = torch.where(dup, torch.full_like(t, j), t)
    cols = torch.sort(chosen, dim=1).values.reshape(-1)
    rows = torch.arange(n).repeat_interleave(k)
    return rows, cols


def copula_events(q: torch.Tensor, factor: torch.Tensor, diag: torch.Tensor, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-copula firing: g = eta F^T + sqrt(diag) eps; feature j fires when g_j < Phi^-1(q_j)."""
    m, r = factor.shape
    thresholds = math.sqrt(2) * torch.erfinv(2 * q.double() - 1)  # Phi^-1(q); -inf at 0, +inf at 1
    eta = torch.randn(n, r, generator=generator, dtype=torch.float32)
    g = torch.randn(n, m, generator=generator, dtype=torch.float32) * diag.float().sqrt()
    g.addmm_(eta, factor.float().T)
    rows, cols = torch.nonzero(g < thresholds.float(), as_tuple=True)
    return rows, cols  # nonzero returns row-major order


def sphere(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(count, dim) float64 points uniform on the unit sphere of R^dim."""
    g = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)
