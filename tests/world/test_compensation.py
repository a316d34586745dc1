"""Hierarchy compensation modes: "none", "exact" and SAELens's "first_order".

The statistical check is an exact binomial test per feature at level ALPHA / m (union bound: a
correct sampler fails it with probability < ALPHA = 1e-6); the seed is fixed, so it is deterministic.
"""

import pytest
import torch
from scipy import stats

from synthsae.world import HierarchyConfig, Vector, World, WorldConfig
from synthsae.world.hierarchy import Forest, base_probabilities, first_order_factors

ALPHA = 1e-6


def _small_forest():
    """Root 0 with mutually exclusive children 1, 2; root 3 with the ordinary child 4."""
    return Forest(parents=torch.tensor([-1, 0, 0, -1, 3]), level=torch.tensor([0, 1, 1, 0, 1]),
                  exclusive=torch.tensor([True, False, False, False, False]))


def test_first_order_follows_the_saelens_formula_by_hand():
    p = torch.tensor([0.5, 0.1, 0.2, 0.4, 0.1], dtype=torch.float64)
    q, marginal = base_probabilities(_small_forest(), p, "first_order")
    # child / parent p, times 1 + (sibling p) / parent p under the exclusive parent
    expected_q = torch.tensor([0.5, 0.1 / 0.5 * (1 + 0.2 / 0.5), 0.2 / 0.5 * (1 + 0.1 / 0.5), 0.4, 0.1 / 0.4],
                              dtype=torch.float64)
    torch.testing.assert_close(q, expected_q, rtol=1e-12, atol=0)
    torch.testing.assert_close(first_order_factors(_small_forest(), p), expected_q / p, rtol=1e-12, atol=0)
    # exact marginals of those base rates: an exclusive child survives a sibling firing half the time
    q1, q2 = float(expected_q[1]), float(expected_q[2])
    expected_marginal = torch.tensor([0.5, 0.5 * q1 * (1 - q2 / 2), 0.5 * q2 * (1 - q1 / 2), 0.4, 0.1],
                                     dtype=torch.float64)
    torch.testing.assert_close(marginal, expected_marginal, rtol=1e-12, atol=0)
    # first order is not exact under mutual exclusion (here both children overshoot their rates)
    assert abs(float(marginal[1]) - 0.1) > 1e-3 and abs(float(marginal[2]) - 0.2) > 1e-3


def test_first_order_world_fires_at_its_marginals_and_keeps_constraints():
    rates = tuple([0.5] * 4 + [0.12] * 12 + [0.03] * 36 + [0.2] * 8)
    cfg = WorldConfig(d=8, m=60, firing=Vector(p=rates),
                      hierarchy=HierarchyConfig(roots=4, branching=3, depth=2, mutually_exclusive=0.5,
                                                compensate="first_order"))
    world = World(cfg)
    assert int(world._forest.exclusive.sum()) > 0
    n = 60_000
    active = world.sample_codes(n, seed=4).active()
    counts = active.sum(0)
    for j in range(world.m):
        p = float(world.firing_probabilities[j])
        assert stats.binomtest(int(counts[j]), n, p).pvalue > ALPHA / world.m, (j, int(counts[j]), n * p)
    kids = (world.parents >= 0).nonzero().squeeze(1)
    assert not bool((active[:, kids] & ~active[:, world.parents[kids]]).any()), "a child fired without its parent"


def test_first_order_base_probability_above_one_raises():
    forest = Forest(parents=torch.tensor([-1, 0, 0]), level=torch.tensor([0, 1, 1]),
                    exclusive=torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match="first_order.*> 1"):
        base_probabilities(forest, torch.tensor([0.1, 0.5, 0.5], dtype=torch.float64), "first_order")


def test_compensate_modes_config():
    assert HierarchyConfig(compensate=True) == HierarchyConfig(compensate="exact")
    assert HierarchyConfig(compensate=False).compensate == "none" == HierarchyConfig().compensate
    cfg = WorldConfig(d=8, m=40, hierarchy=HierarchyConfig(roots=2, compensate="first_order"))
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    assert WorldConfig.from_toml(cfg.to_toml()) == cfg
    with pytest.raises(ValueError, match="compensate"):
        HierarchyConfig(compensate="first-order")
    with pytest.raises(ValueError, match="compensate"):
        WorldConfig.from_dict({"d": 8, "m": 40, "hierarchy": {"compensate": "approx"}})
