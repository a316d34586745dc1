"""The top-down hierarchy sampler draws the same law as gating independent base events.

Every check is an exact binomial test at level ALPHA / (number of checks in its test), so by the
union bound a correct sampler fails a test with probability < ALPHA = 1e-6; seeds are fixed, so the
suite is deterministic.
"""

import pytest
import torch
from scipy import stats

from synthsae.world import HierarchyConfig, Vector, World, WorldConfig
from synthsae.world.hierarchy import (Forest, apply_hierarchy, base_probabilities, top_down_copula_events,
                                      top_down_events, top_down_plan)
from synthsae.world.sampler import bernoulli_positions, copula_events, independent_events, probit

ALPHA = 1e-6


def binomial_consistent(count: int, n: int, p: float, alpha: float) -> bool:
    """Two-sided exact binomial test of count ~ Binomial(n, p) at level alpha."""
    if p <= 0.0 or p >= 1.0:
        return count == round(n * p)
    return stats.binomtest(count, n, p).pvalue > alpha


def same_rate(k1: int, k2: int, alpha: float) -> bool:
    """Exact two-sample test for equal rates in two samples of the same size: given the total,
    the first count is Binomial(k1 + k2, 1/2) under the null."""
    return k1 + k2 == 0 or stats.binomtest(k1, k1 + k2, 0.5).pvalue > alpha


def _forest():
    """Depth 3, mixed branching, half the parents mutually exclusive, plus free features; index order
    scrambled so nothing relies on a breadth-first layout."""
    cfg = HierarchyConfig(roots=3, branching=(1, 3), depth=3, mutually_exclusive=0.5)
    world = World(WorldConfig(d=4, m=50, firing=Vector(p=tuple([0.6] * 50)), hierarchy=cfg, seed=11))
    f = world._forest
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    inv = torch.argsort(perm)  # new index of old feature j is inv[j]
    parents = torch.full((50,), -1, dtype=torch.long)
    parents[inv] = torch.where(f.parents >= 0, inv[f.parents.clamp_min(0)], f.parents)
    level, exclusive = torch.empty_like(f.level), torch.empty_like(f.exclusive)
    level[inv], exclusive[inv] = f.level, f.exclusive
    return Forest(parents, level, exclusive)


def _draw_both(forest, q, n, seed, copula=None):
    """(rows, cols) of the top-down sampler and of the gating sampler (dense base draw + apply_hierarchy)."""
    m, plan = len(q), top_down_plan(forest, q)
    gen_top, gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    if copula is None:
        top = top_down_events(plan, n, gen_top)
        base = independent_events(q, n, gen)
    else:
        top = top_down_copula_events(plan, probit(q), *copula, n, gen_top)
        base = copula_events(q, *copula, n, gen)
    return top, apply_hierarchy(*base, m, forest, gen)


def _dense(rows, cols, n, m):
    keys = rows * m + cols
    assert bool((keys[1:] > keys[:-1]).all()), "events sorted by row * m + col, never repeated"
    out = torch.zeros(n, m, dtype=torch.bool)
    out[rows, cols] = True
    return out


def _check_constraints(active, forest):
    kids = (forest.parents >= 0).nonzero().squeeze(1)
    assert not bool((active[:, kids] & ~active[:, forest.parents[kids]]).any()), "a child fired without its parent"
    for parent in forest.exclusive.nonzero().squeeze(1):
        assert int(active[:, forest.parents == parent].sum(1).max()) <= 1, "two ME siblings fired together"


@pytest.mark.slow
def test_top_down_equals_gating_in_distribution():
    forest = _forest()
    m = len(forest.parents)
    assert int(forest.exclusive.sum()) >= 2 and int(((forest.parents >= 0) & ~forest.exclusive[forest.parents.clamp_min(0)]).sum()) >= 2
    q = torch.linspace(0.9, 0.2, m, dtype=torch.float64)[torch.randperm(m, generator=torch.Generator().manual_seed(4))]
    _, marginal = base_probabilities(forest, q, compensate=False)
    n = 40_000
    (tr, tc), (gr, gc) = _draw_both(forest, q, n, seed=5)
    top, gated = _dense(tr, tc, n, m), _dense(gr, gc, n, m)

    kids = (forest.parents >= 0).nonzero().squeeze(1)
    pairs = [(int(c), int(forest.parents[c])) for c in kids]  # child with its parent
    pairs += [(int(a), int(b)) for a in kids for b in kids if a < b and forest.parents[a] == forest.parents[b]]
    pairs += [(int(c), int(forest.parents[forest.parents[c]])) for c in kids if forest.parents[c] >= 0
              and forest.parents[forest.parents[c]] >= 0]  # grandchild with grandparent
    checks = 2 * m + 2 * len(pairs)
    for j in range(m):  # per-feature rates: both samplers against the exact marginals
        p = float(marginal[j])
        assert binomial_consistent(int(top[:, j].sum()), n, p, ALPHA / checks), ("top-down", j)
        assert binomial_consistent(int(gated[:, j].sum()), n, p, ALPHA / checks), ("gating", j)
    for a, b in pairs:  # co-firing (a, b) and (a, not b): the two samplers against each other
        both_t, both_g = int((top[:, a] & top[:, b]).sum()), int((gated[:, a] & gated[:, b]).sum())
        only_t, only_g = int((top[:, b] & ~top[:, a]).sum()), int((gated[:, b] & ~gated[:, a]).sum())
        assert same_rate(both_t, both_g, ALPHA / checks), ("co-firing", a, b, both_t, both_g)
        assert same_rate(only_t, only_g, ALPHA / checks), ("parent without child", a, b, only_t, only_g)
    _check_constraints(top, forest)


@pytest.mark.slow
def test_top_down_per_sample_count_law_matches_gating():
    """The number of active features per sample (the L0 law) is the same: chi-square two-sample test."""
    forest = _forest()
    m = len(forest.parents)
    q = torch.full((m,), 0.5, dtype=torch.float64)
    n = 40_000
    (tr, _), (gr, _) = _draw_both(forest, q, n, seed=8)
    a, b = torch.bincount(tr, minlength=n), torch.bincount(gr, minlength=n)
    top = int(max(a.max(), b.max())) + 1
    table = torch.stack([torch.bincount(a, minlength=top), torch.bincount(b, minlength=top)]).numpy()
    table = table[:, table.sum(0) >= 20]  # drop sparse tail cells (chosen on pooled totals, fair to both)
    _, pvalue, _, _ = stats.chi2_contingency(table)
    assert pvalue > ALPHA


def test_bernoulli_positions_rates_and_bounds():
    q = torch.tensor([0.0, 1.0, 0.5, 0.05, 0.3, 0.002, 0.7])
    lengths = torch.tensor([100, 7, 0, 20_000, 50_000, 300_000, 1])
    pos, owner = bernoulli_positions(q, lengths, torch.Generator().manual_seed(9))
    assert bool((pos >= 0).all()) and bool((pos < lengths[owner]).all())
    assert bool((owner[1:] >= owner[:-1]).all()), "grouped by owner"
    same = owner[1:] == owner[:-1]
    assert bool((pos[1:][same] > pos[:-1][same]).all()), "increasing positions within a sequence"
    counts = torch.bincount(owner, minlength=len(q))
    assert counts[0] == 0 and counts[1] == 7 and counts[2] == 0
    for k in (3, 4, 5, 6):
        assert binomial_consistent(int(counts[k]), int(lengths[k]), float(q[k]), ALPHA / 4), k


def test_top_down_world_is_deterministic():
    world = World.preset("hierarchy")
    a, b = world.sample_codes(3000, seed=12), world.sample_codes(3000, seed=12)
    assert torch.equal(a.rows, b.rows) and torch.equal(a.cols, b.cols) and torch.equal(a.values, b.values)


@pytest.mark.slow
def test_top_down_copula_equals_dense_gating_in_distribution():
    """With a strong low-rank copula: per-feature rates, co-firing of parent/child, sibling and random
    pairs (the correlation structure), against the dense draw + gating, two-sample exact tests."""
    forest = _forest()
    m = len(forest.parents)
    q = torch.linspace(0.9, 0.3, m, dtype=torch.float64)[torch.randperm(m, generator=torch.Generator().manual_seed(6))]
    # C = F F^T + diag(1 - 0.64): every feature loads 0.8 on two shared factors, random directions.
    factor = torch.randn(m, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    factor = 0.8 * factor / factor.norm(dim=1, keepdim=True)
    diag = torch.full((m,), 1 - 0.64, dtype=torch.float64)
    n = 30_000
    (tr, tc), (gr, gc) = _draw_both(forest, q, n, seed=9, copula=(factor, diag))
    top, gated = _dense(tr, tc, n, m), _dense(gr, gc, n, m)
    kids = (forest.parents >= 0).nonzero().squeeze(1)
    pairs = [(int(c), int(forest.parents[c])) for c in kids]
    pairs += [(int(a), int(b)) for a in kids for b in kids if a < b and forest.parents[a] == forest.parents[b]]
    pick = torch.randint(0, m, (150, 2), generator=torch.Generator().manual_seed(10))
    pairs += [(int(a), int(b)) for a, b in pick if a != b]
    checks = m + 2 * len(pairs)
    for j in range(m):
        assert same_rate(int(top[:, j].sum()), int(gated[:, j].sum()), ALPHA / checks), ("rate", j)
    for a, b in pairs:
        both_t, both_g = int((top[:, a] & top[:, b]).sum()), int((gated[:, a] & gated[:, b]).sum())
        only_t, only_g = int((top[:, b] & ~top[:, a]).sum()), int((gated[:, b] & ~gated[:, a]).sum())
        assert same_rate(both_t, both_g, ALPHA / checks), ("co-firing", a, b, both_t, both_g)
        assert same_rate(only_t, only_g, ALPHA / checks), ("b without a", a, b, only_t, only_g)
    _check_constraints(top, forest)
