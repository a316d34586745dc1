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

    q: (m,) probabilities. Returns (rows, cols), (nnz,) each, sorted by row * m + col.
    """
    m = q.numel()
    feats = torch.nonzero(q > 0).squeeze(1)
    pos, owner = bernoulli_positions(q[feats], torch.full((len(feats),), n, dtype=torch.long), generator)
    return _sorted(pos, feats[owner], m)


def bernoulli_positions(q: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent Bernoulli(q_k) trials at positions 0 .. lengths_k - 1 for every k; the successes.

    q: (K,) probabilities; lengths: (K,) long. Returns (pos, owner), (nnz,) long each: success
    number t of sequence k is (pos[t], owner[t] = k), grouped by owner and increasing within it.
    Cost O(sum_k lengths_k q_k + K). The successes form a Bernoulli process whose gaps are
    Geometric(q_k): we draw enough gaps per sequence (mean + 5 sd + 5), take cumulative sums and keep
    positions < length. A sequence whose gaps did not run past its end (rare) is redrawn with twice
    as many gaps, so the result is exact.
    """
    qd = q.double()
    lengths = lengths.long()
    active = torch.nonzero((qd > 0) & (lengths > 0)).squeeze(1)
    mean = lengths[active] * qd[active]
    need = torch.ceil(mean + 5 * torch.sqrt(mean * (1 - qd[active])) + 5).long()
    need = torch.minimum(need, lengths[active] + 1)
    out_pos, out_owner = [], []
    while active.numel():
        local = torch.repeat_interleave(torch.arange(len(active)), need)
        u = 1.0 - torch.rand(len(local), generator=generator, dtype=torch.float64)  # (0, 1]
        qf, nf = qd[active][local], lengths[active][local]
        gaps = torch.where(qf >= 1.0, torch.ones_like(u), torch.floor(torch.log(u) / torch.log1p(-qf)) + 1)
        csum = torch.cumsum(torch.minimum(gaps, (nf + 1).double()).long(), 0)
        ends = torch.cumsum(need, 0) - 1
        offset = torch.zeros_like(csum)
        offset[ends[:-1] + 1] = csum[ends[:-1]]
        pos = csum - torch.cummax(offset, 0).values - 1  # 0-based positions within each sequence
        done = pos[ends] >= lengths[active]  # the process ran past the end: no success was cut off
        keep = (pos < nf) & done[local]
        out_pos.append(pos[keep])
        out_owner.append(active[local[keep]])
        active, need = active[~done], torch.minimum(need[~done] * 2, lengths[active[~done]] + 1)
    if not out_pos:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    pos, owner = torch.cat(out_pos), torch.cat(out_owner)
    if len(out_pos) > 1:  # redrawn sequences come last: restore the grouping by owner
        order = torch.argsort(owner, stable=True)
        pos, owner = pos[order], owner[order]
    return pos, owner


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


def probit(q: torch.Tensor) -> torch.Tensor:
    """Phi^-1(q) in float64: the copula threshold of a feature firing with probability q (-inf at 0, +inf at 1)."""
    return math.sqrt(2) * torch.erfinv(2 * q.double() - 1)


def copula_events(q: torch.Tensor, factor: torch.Tensor, diag: torch.Tensor, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-copula firing: g = eta F^T + sqrt(diag) eps; feature j fires when g_j < Phi^-1(q_j)."""
    m, r = factor.shape
    eta = torch.randn(n, r, generator=generator, dtype=torch.float32)
    g = torch.randn(n, m, generator=generator, dtype=torch.float32) * diag.float().sqrt()
    g.addmm_(eta, factor.float().T)
    rows, cols = torch.nonzero(g < probit(q).float(), as_tuple=True)
    return rows, cols  # nonzero returns row-major order


def sphere(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(count, dim) float64 points uniform on the unit sphere of R^dim."""
    g = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)
