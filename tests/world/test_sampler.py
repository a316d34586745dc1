"""The banded Bernoulli sampler, the event sort and the blocked product x = z D.

Statistical checks are exact binomial / chi-square tests at level ALPHA divided by the number of
checks in the test (union bound), so a correct sampler fails a test with probability < ALPHA = 1e-6;
the seeds are fixed, so the suite is deterministic.
"""

import pytest
import torch
from scipy import stats

from synthsae.world import codes as codes_module
from synthsae.world import sampler
from synthsae.world.codes import SparseCodes
from synthsae.world.sampler import (
    _successes,
    bernoulli_positions,
    make_bands,
    sort_events,
)

ALPHA = 1e-6


def _check_layout(pos, owner, lengths):
    assert bool((pos >= 0).all()) and bool((pos < lengths[owner]).all())
    assert bool((owner[1:] >= owner[:-1]).all()), "grouped by owner, in increasing order"
    same = owner[1:] == owner[:-1]
    assert bool((pos[1:][same] > pos[:-1][same]).all()), "increasing (distinct) positions within a sequence"


@pytest.mark.parametrize("slack", [0.0, sampler.SLACK])
@pytest.mark.parametrize("equal_lengths", [True, False])
def test_bernoulli_positions_counts_are_binomial(monkeypatch, slack, equal_lengths):
    """Rates over many bands, in scrambled order (bands not contiguous: regrouping by owner), with rate
    1, rates just below a band's top (thinning) and zero rates. slack = 0 sizes each batch of gaps to
    the mean only, so about half the bands fall short of their end and take the continuation path."""
    monkeypatch.setattr(sampler, "SLACK", slack)
    q = torch.tensor([0.9, 0.0, 1.0, 0.3, 0.001, 0.05, 0.5, 0.02, 0.7, 0.0049, 0.2, 0.011, 0.45, 0.08, 0.26],
                     dtype=torch.float64)
    assert not make_bands(q).contiguous and make_bands(q).thin
    lengths = torch.full((len(q),), 3000) if equal_lengths else torch.arange(len(q)) * 400 + 50
    lengths[3] = 0 if not equal_lengths else lengths[3]
    checks = len(q)
    counts = torch.zeros(len(q), dtype=torch.long)
    for seed in range(4):  # four independent draws: counts add up to Binomial(4 * length, q)
        pos, owner = bernoulli_positions(q, lengths, torch.Generator().manual_seed(seed))
        _check_layout(pos, owner, lengths)
        counts += torch.bincount(owner, minlength=len(q))
    for k in range(len(q)):
        trials, p = 4 * int(lengths[k]), float(q[k])
        if p in (0.0, 1.0) or trials == 0:
            assert int(counts[k]) == round(trials * p), k
        else:
            assert stats.binomtest(int(counts[k]), trials, p).pvalue > ALPHA / checks, (k, int(counts[k]), trials * p)


@pytest.mark.parametrize("slack", [0.0, sampler.SLACK])
def test_successes_positions_are_uniform(monkeypatch, slack):
    """Given their number, successes of a Bernoulli process are uniform over the interval: chi-square on
    20 bins of 3 intervals (each at its own offset), with and without the continuation path."""
    monkeypatch.setattr(sampler, "SLACK", slack)
    rate = torch.tensor([0.3, 0.01, 0.6], dtype=torch.float64)
    start, end = torch.tensor([0, 50_000, 1_000_000]), torch.tensor([40_000, 950_000, 1_030_000])
    pos = _successes(rate, start, end, torch.Generator().manual_seed(3))
    assert bool((pos[1:] > pos[:-1]).all()), "sorted and distinct"
    for b in range(3):
        inside = pos[(pos >= start[b]) & (pos < end[b])] - start[b]
        assert len(inside) == int(((pos >= start[b]) & (pos < end[b])).sum())
        width = int(end[b] - start[b])
        hist = torch.bincount(inside * 20 // width, minlength=20).double()
        expected = len(inside) / 20
        chi2 = float(((hist - expected) ** 2 / expected).sum())
        assert chi2 < stats.chi2.ppf(1 - ALPHA / 6, df=19), b
        assert stats.binomtest(len(inside), width, float(rate[b])).pvalue > ALPHA / 6, b
    assert not bool(((pos >= end[0]) & (pos < start[1])).any()), "nothing between the intervals"


def test_sort_events_matches_argsort_for_narrow_and_wide_keys():
    g = torch.Generator().manual_seed(4)
    for n, m in [(500, 37), (2**21, 2**12)]:  # keys below 2^31 (int32 sort), keys up to 2^33 (int64)
        keys = torch.unique(torch.randint(0, n * m, (5000,), generator=g))
        keys = keys[torch.randperm(len(keys), generator=g)]
        rows, cols = sort_events(keys // m, keys % m, m)
        ref = torch.sort(keys).values
        assert rows.dtype == torch.long and torch.equal(rows * m + cols, ref)
    empty = torch.zeros(0, dtype=torch.long)
    assert sort_events(empty, empty, 5)[0].numel() == 0


@pytest.mark.parametrize("block_bytes", [codes_module.BLOCK_BYTES, 4 * 8 * 3])
def test_blocked_matmul_equals_dense_product(monkeypatch, block_bytes):
    """x = add + z D by blocks of atoms (block_bytes = 3 atoms of 8 floats: 9 blocks, some empty) or in
    one piece, against the dense product, with and without an added bias."""
    monkeypatch.setattr(codes_module, "BLOCK_BYTES", block_bytes)
    g = torch.Generator().manual_seed(5)
    n, m, d = 40, 26, 8
    active = torch.rand(n, m, generator=g) < 0.2
    active[:, 6:12] = False  # two empty blocks of atoms when blocked
    rows, cols = active.nonzero(as_tuple=True)
    codes = SparseCodes(rows, cols, torch.rand(len(rows), generator=g) + 0.5, n, m)
    D = torch.randn(m, d, generator=g)
    bias = torch.randn(d, generator=g)
    dense = codes.to_dense()
    assert torch.allclose(codes.matmul(D), dense @ D, atol=1e-5)
    assert torch.allclose(codes.matmul(D, add=bias), dense @ D + bias, atol=1e-5)
    assert torch.equal(codes.matmul(D, add=bias), codes.matmul(D, add=bias)), "deterministic"
