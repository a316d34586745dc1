"""Sparse-by-construction event samplers: which (sample, feature) pairs fire.

All return (rows, cols) long tensors sorted by row * m + col, drawn on the CPU from a
`torch.Generator` (so results are bit-identical whatever device the batch is used on). This is the
reference sampler; `synthsae.world.device_sampler` draws the same law with dense ops on a GPU
(`World.sample(..., device="cuda")`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch


def sort_events(rows: torch.Tensor, cols: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort distinct CPU events (rows, cols) by row * m + col.

    Sorts the keys themselves with numpy (int32 when they fit), whose vectorized sort is several
    times faster than `torch.sort` on the CPU (e.g. 40 us against 500 us for 10k keys).
    """
    keys = rows * m + cols
    wide = len(keys) > 0 and int(keys.max()) >= 2**31
    k = np.sort(keys.numpy().astype(np.int64 if wide else np.int32))
    r = k // m
    return torch.from_numpy(r).long(), torch.from_numpy(k - r * m).long()


# Rates inside one band differ by less than this factor, so thinning discards fewer than
# 1 - 1 / BAND_RATIO (20%) of a band's candidates; a few dozen bands cover rates from 1 down to 1e-4.
BAND_RATIO = 1.25
# A batch of gaps covers mean + SLACK * (sd + 1) successes, so it falls short of its interval's end
# (and is continued) with probability below 1e-6; any SLACK >= 0 gives the same law (tests use 0).
SLACK = 5.0


@dataclasses.dataclass(frozen=True)
class Bands:
    """Sequences with a positive rate, grouped into bands of similar rate (see `bernoulli_positions`).

    seq: (S,) indices of the sequences with q > 0, band after band (by first appearance, stable).
    band: (S,) long their band, non-decreasing. rate: (B,) float64 the largest rate in each band.
    keep: (S,) float64 q / rate of their band, the thinning probability. contiguous: `seq` is
    increasing (no regrouping by owner needed). thin: some keep < 1 (thinning draws are needed).
    """

    seq: torch.Tensor
    band: torch.Tensor
    rate: torch.Tensor
    keep: torch.Tensor
    contiguous: bool
    thin: bool


def make_bands(q: torch.Tensor) -> Bands:
    """Group the rates q (K,) of `bernoulli_positions`'s sequences into bands (computed once per q)."""
    qd = q.double()
    seq = torch.nonzero(qd > 0).squeeze(1)
    qs = qd[seq]
    key = torch.floor(torch.log(qs) / math.log(BAND_RATIO)).long()
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), len(qs), dtype=torch.long).scatter_reduce_(0, inv, torch.arange(len(qs)), "amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(len(uniq))
    band = rank[inv]  # bands numbered in order of their first sequence
    contiguous = bool((band[1:] >= band[:-1]).all())
    if not contiguous:
        order = torch.argsort(band, stable=True)
        seq, qs, band = seq[order], qs[order], band[order]
    rate = torch.zeros(len(uniq), dtype=torch.float64).scatter_reduce_(0, band, qs, "amax", include_self=False)
    keep = qs / rate[band]
    return Bands(seq, band, rate, keep, contiguous, bool((keep < 1).any()))


def independent_events(q: torch.Tensor, n: int, generator: torch.Generator, bands: Bands | None = None,
                       dense: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (i, j) fires independently with probability q_j.

    q: (m,) probabilities; bands: `make_bands(q)` if precomputed. Returns (rows, cols), (nnz,) each,
    sorted by row * m + col. Two samplers of the same law, chosen by `dense` (None: automatically):
    - sparse (`bernoulli_positions`, then a sort): cost O(n * sum(q) + m), not O(n m);
    - dense: one float64 uniform per entry, U < q_j, read out in row-major order: cost O(n m).
    The automatic rule takes the dense one when the mean rate is at least DENSE_RATE, where it is
    faster (measured: `benchmarks/README.md`); its cost n m is then at most n sum(q) / DENSE_RATE,
    so sampling cost still grows with the number of active features.
    """
    m = q.numel()
    if dense is None:
        dense = m > 0 and float(q.double().mean()) >= DENSE_RATE
    if dense:
        return _dense_events(q.double(), n, generator)
    pos, owner = bernoulli_positions(q, torch.full((m,), n, dtype=torch.long), generator, bands)
    return sort_events(pos, owner, m)


# Mean firing rate from which `independent_events` draws densely. On the shared 2-core CPU we
# measure on (m = 128, n = 4096, two runs) the dense draw is 4-5x slower at rate 0.02 (the toy
# preset), about even at 0.2, 1.1-1.3x faster at 0.3 and 1.1-2.5x at 0.5.
DENSE_RATE = 0.25
DENSE_CHUNK = 1 << 22  # entries per dense draw (32 MiB of uniforms), bounding its memory


def _dense_events(q: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bernoulli(q_j) for every (i, j) from one uniform each (float64), in chunks of rows."""
    m = len(q)
    step = max(1, DENSE_CHUNK // max(1, m))
    rows_out, cols_out = [], []
    for start in range(0, n, step):
        fired = torch.rand(min(step, n - start), m, generator=generator, dtype=torch.float64) < q
        rows, cols = torch.nonzero(fired, as_tuple=True)  # row-major order
        rows_out.append(rows + start)
        cols_out.append(cols)
    return torch.cat(rows_out), torch.cat(cols_out)


def bernoulli_positions(q: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator,
                        bands: Bands | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent Bernoulli(q_k) trials at positions 0 .. lengths_k - 1 for every k; the successes.

    q: (K,) probabilities; lengths: (K,) long; bands: `make_bands(q)` if precomputed. Returns
    (pos, owner), (nnz,) long each: success t of sequence k is (pos[t], owner[t] = k), grouped by
    owner in increasing order and increasing within it. Cost O(sum_k lengths_k q_k + K).

    Method (exact). Sequences of similar rate form a band (rates within a factor BAND_RATIO); a
    band's sequences are laid end to end and one Bernoulli(r_b) process, r_b the band's largest
    rate, runs over all of it: geometric gaps, drawn in a batch sized to pass the band's end with
    near certainty, and continued from the last success in the rare case they fall short (the
    process is memoryless, so this is exact). A candidate in sequence k is then kept with
    probability q_k / r_b: a Bernoulli(r_b) trial thinned by an independent Bernoulli(q_k / r_b)
    is a Bernoulli(q_k) trial. The per-band batching keeps the slack per band, not per sequence.
    """
    bands = make_bands(q) if bands is None else bands
    empty = torch.zeros(0, dtype=torch.long)
    if not len(bands.seq):
        return empty, empty
    lengths = torch.index_select(lengths.long(), 0, bands.seq)
    total = torch.zeros(len(bands.rate), dtype=torch.long).index_add_(0, bands.band, lengths)
    end = torch.cumsum(total, 0)
    g = _successes(bands.rate, end - total, end, generator)  # positions in the laid-out bands
    idx = _sequence_of(g, lengths)
    if bands.thin:  # keep a candidate of sequence k with probability q_k / r_b
        keep = torch.rand(len(g), generator=generator, dtype=torch.float64) < torch.index_select(bands.keep, 0, idx)
        g, idx = torch.masked_select(g, keep), torch.masked_select(idx, keep)
    seq_start = torch.cumsum(lengths, 0) - lengths
    pos = g - torch.index_select(seq_start, 0, idx)
    owner = torch.index_select(bands.seq, 0, idx)
    if not bands.contiguous:
        order = torch.argsort(owner, stable=True)
        pos, owner = torch.index_select(pos, 0, order), torch.index_select(owner, 0, order)
    return pos, owner


def _sequence_of(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Index of the sequence holding position g when sequences of `lengths` are laid end to end."""
    if bool((lengths == lengths[0]).all()):
        return torch.div(g, lengths[0], rounding_mode="floor")
    return torch.searchsorted(torch.cumsum(lengths, 0), g, right=True)


def _successes(rate: torch.Tensor, start: torch.Tensor, end: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Successes of independent Bernoulli(rate_b) trials at positions start_b .. end_b - 1, for every b
    (intervals disjoint and in increasing order): one sorted (nnz,) long tensor of positions."""
    out = []
    todo = None  # the intervals still running; None: all of them (first round, no gathers needed)
    lo, hi, r, log_miss = start, end, rate, torch.log1p(-rate)  # log_miss = -inf for rate 1: every gap is 1
    while True:
        left = (hi - lo).double()
        mean = left * r
        need = torch.minimum(torch.ceil(mean + SLACK * (torch.sqrt(mean * (1 - r)) + 1)).clamp_min(1), left + 1).long()
        local = torch.repeat_interleave(torch.arange(len(need)), need)
        # Geometric(r) gaps >= 1 by inversion, log(1 - U) with U uniform on [0, 1); capping at the
        # longest interval (past any end anyway) keeps the cast to long safe.
        step = torch.rand(len(local), generator=generator, dtype=torch.float64).neg_().log1p_()
        step.div_(torch.index_select(log_miss, 0, local)).clamp_(max=float(left.max()))
        csum = torch.cumsum(step.long().add_(1), 0)
        last_of = torch.cumsum(need, 0) - 1
        before = torch.zeros(len(need), dtype=torch.long)
        before[1:] = csum[last_of[:-1]]
        pos = csum.add_(torch.index_select(lo - 1 - before, 0, local))
        out.append(torch.masked_select(pos, pos < torch.index_select(hi, 0, local)))
        last = pos[last_of]
        running = last < hi  # the batch ended before the interval did: continue after its last success
        if not bool(running.any()):
            break
        todo = running.nonzero().squeeze(1) if todo is None else todo[running]
        lo, hi, r, log_miss = last[running] + 1, end[todo], rate[todo], torch.log1p(-rate[todo])
    pos = torch.cat(out)
    return pos if len(out) == 1 else torch.sort(pos).values


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
