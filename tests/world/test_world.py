"""World generator: statistical fidelity, structure invariants, determinism, persistence, bad input.

Statistical checks use fixed seeds and bounds derived from the sampling distribution (a z-score
of 5 for binomial counts, a chi-square quantile at 1e-6), so a correct sampler fails them with
probability < 1e-5 per check, and the seeds are fixed so the suite is deterministic.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from scipy import stats

from synthsae.config import Config
from synthsae.testing import world_configs
from synthsae.world import (Block, Coherence, Constant, ExactlyK, Full, Gaussian, Given, HierarchyConfig, LowRank, Noise,
                            Orthonormal, Spiked, Subspaces, TightFrame, Uniform, Vector, World, WorldConfig, Zipf,
                            coherence)
from synthsae.world.sampler import exactly_k_events, independent_events


def binomial_ok(count, n, p, z=5.0):
    sd = math.sqrt(max(n * p * (1 - p), 1e-12))
    return abs(count - n * p) <= z * sd + 1e-9


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_independent_events_match_rates_chi_square(dense):
    q = torch.tensor([0.0, 1.0, 0.5, 0.1, 0.01, 0.001, 0.3])
    n = 200_000
    rows, cols = independent_events(q, n, torch.Generator().manual_seed(1), dense=dense)
    counts = torch.bincount(cols, minlength=len(q)).double()
    assert counts[0] == 0 and counts[1] == n
    inner = slice(2, None)
    expected = n * q[inner].double()
    chi2 = float((((counts[inner] - expected) ** 2) / (expected * (1 - q[inner].double()))).sum())
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=len(q) - 2)
    keys = rows * len(q) + cols
    assert bool((keys[1:] > keys[:-1]).all()), "events are sorted and never repeated"


def test_independent_sampler_rule_and_a_dense_world(monkeypatch):
    """The automatic rule draws densely from a mean rate of DENSE_RATE; a world that dense fires at its
    rates (binomial, z = 5 per feature), row by row the same as the sparse sampler's law."""
    from synthsae.world import sampler

    chosen = []
    real = sampler._dense_events
    monkeypatch.setattr(sampler, "_dense_events", lambda *a: chosen.append(True) or real(*a))
    g = torch.Generator().manual_seed(0)
    sampler.independent_events(torch.full((10,), sampler.DENSE_RATE * 0.99), 50, g)
    assert not chosen
    sampler.independent_events(torch.full((10,), sampler.DENSE_RATE), 50, g)
    assert chosen
    monkeypatch.setattr(sampler, "DENSE_CHUNK", 7 * 40)  # several chunks of rows
    world = World(WorldConfig(d=8, m=40, firing=Constant(p=0.3)))
    n = 20_000
    codes = world.sample_codes(n, seed=3)
    keys = codes.rows * world.m + codes.cols
    assert bool((keys[1:] > keys[:-1]).all()), "row-major, never repeated"
    counts = torch.bincount(codes.cols, minlength=world.m)
    assert all(binomial_ok(int(c), n, 0.3) for c in counts)
    per_row = torch.bincount(codes.rows, minlength=n).double()  # L0 ~ Binomial(40, 0.3)
    assert abs(float(per_row.mean()) - 12.0) <= 5 * math.sqrt(40 * 0.21 / n)


def test_exactly_k_is_exact_and_uniform():
    n, m, k = 40_000, 10, 3
    rows, cols = exactly_k_events(n, m, k, torch.Generator().manual_seed(2))
    per_row = torch.bincount(rows, minlength=n)
    assert bool((per_row == k).all())
    assert len(torch.unique(rows * m + cols)) == n * k, "distinct features in each sample"
    counts = torch.bincount(cols, minlength=m).double()
    expected = n * k / m
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=m - 1)


@pytest.mark.parametrize("preset", ["toy", "hierarchy", "subspaces"])
def test_empirical_rates_match_marginals(preset):
    world = World.preset(preset)
    n = 50_000
    codes = world.sample_codes(n, seed=3)
    counts = torch.bincount(codes.cols, minlength=world.m)
    p = world.firing_probabilities
    for j in range(world.m):
        assert binomial_ok(int(counts[j]), n, float(p[j])), (j, int(counts[j]), n * float(p[j]))


def test_hierarchy_compensation_gives_configured_rates_and_constraints_hold():
    rates = tuple([0.5] * 4 + [0.15] * 12 + [0.03] * 36 + [0.2] * 8)
    cfg = WorldConfig(d=16, m=60, firing=Vector(p=rates),
                      hierarchy=HierarchyConfig(roots=4, branching=3, depth=2, mutually_exclusive=0.5, compensate=True))
    world = World(cfg)
    assert torch.allclose(world.firing_probabilities, torch.tensor(rates, dtype=torch.float64))
    n = 60_000
    codes = world.sample_codes(n, seed=4)
    active = codes.active()
    counts = active.sum(0)
    for j in range(world.m):
        assert binomial_ok(int(counts[j]), n, float(world.firing_probabilities[j]))
    parents = world.parents
    kids = (parents >= 0).nonzero().squeeze(1)
    assert not bool((active[:, kids] & ~active[:, parents[kids]]).any()), "a child fired without its parent"
    me = world._forest.exclusive.nonzero().squeeze(1)
    assert len(me) > 0
    for parent in me:
        siblings = (parents == parent).nonzero().squeeze(1)
        assert int(active[:, siblings].sum(1).max()) <= 1, "two mutually exclusive siblings fired together"


def test_hierarchy_compensation_rejects_unreachable_rates():
    cfg = dict(d=8, m=4, firing=Vector(p=(0.1, 0.5, 0.5, 0.5)),
               hierarchy=HierarchyConfig(roots=1, branching=3, depth=1, compensate=True))
    with pytest.raises(ValueError, match="compensate"):
        World(WorldConfig(**cfg))


def test_copula_correlation_matches_target():
    rho = 0.6
    cfg = WorldConfig(d=8, m=2, firing=Constant(p=0.3), correlation=Full(matrix=((1.0, rho), (rho, 1.0))))
    codes = World(cfg).sample_codes(100_000, seed=5)
    a = codes.active().double()
    assert binomial_ok(int(a[:, 0].sum()), 100_000, 0.3)
    # Exact target: P(both fire) from the bivariate normal at the thresholds.
    t = stats.norm.ppf(0.3)
    p11 = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([t, t])
    assert binomial_ok(int((a[:, 0] * a[:, 1]).sum()), 100_000, p11)


def test_low_rank_and_block_correlations_keep_marginals():
    for corr in (LowRank(rank=3, scale=0.25), Block(size=4, rho=0.5)):
        world = World(WorldConfig(d=8, m=12, firing=Constant(p=0.2), correlation=corr))
        counts = torch.bincount(world.sample_codes(40_000, seed=6).cols, minlength=12)
        assert all(binomial_ok(int(c), 40_000, 0.2) for c in counts)


def test_atoms_unit_norm_and_coherence_target_met():
    for geometry, m, d in [(Gaussian(), 50, 20), (Orthonormal(), 10, 20), (Spiked(rho=0.5), 50, 20),
                           (Coherence(target=0.45), 60, 20), (TightFrame(), 60, 20), (Subspaces(4, 3), 30, 20)]:
        D = World(WorldConfig(d=d, m=m, dictionary=geometry)).dictionary
        assert torch.allclose(D.norm(dim=1), torch.ones(m), atol=1e-5)
    D = World(WorldConfig(d=20, m=60, dictionary=Coherence(target=0.45))).dictionary
    assert coherence(D) <= 0.45 + 1e-5
    Q = World(WorldConfig(d=20, m=10, dictionary=Orthonormal())).dictionary.double()
    assert torch.allclose(Q @ Q.T, torch.eye(10, dtype=torch.float64), atol=1e-6)
    F = World(WorldConfig(d=20, m=60, dictionary=TightFrame(steps=50))).dictionary.double()
    assert torch.allclose(F.T @ F, 3.0 * torch.eye(20, dtype=torch.float64), atol=1e-3)


def test_subspace_group_is_rotation_invariant_two_sample():
    """Rotating a tied group's basis inside its subspace leaves the sample distribution unchanged."""
    cfg = WorldConfig(d=6, m=3, dictionary=Subspaces(n_groups=1, rank=3), firing=Constant(p=1.0),
                      magnitudes=Uniform(low=1.0, high=2.0))
    world = World(cfg)
    rot, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    rotated = World(cfg, dictionary=(rot @ world.dictionary.double()).float())
    x1 = world.sample(4000, seed=8).x.double()
    x2 = rotated.sample(4000, seed=9).x.double()
    probe = torch.randn(6, 5, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    for k in range(5):  # a KS test per random projection, Bonferroni at 1e-4 overall
        assert stats.ks_2samp((x1 @ probe[:, k]).numpy(), (x2 @ probe[:, k]).numpy()).pvalue > 2e-5
    # ... whereas a different subspace is told apart immediately.
    other = World(cfg.replace(seed=1))
    x3 = other.sample(4000, seed=9).x.double()
    assert min(stats.ks_2samp((x1 @ probe[:, k]).numpy(), (x3 @ probe[:, k]).numpy()).pvalue for k in range(5)) < 1e-6


def test_samples_are_codes_times_dictionary_plus_noise():
    world = World(WorldConfig(d=12, m=30, noise=Noise(std=0.1, bias_norm=2.0)))
    b = world.sample(100, seed=11)
    clean = b.codes.to_dense().double() @ world.dictionary.double() + world.bias.double()
    assert torch.allclose(b.x.double(), clean + b.noise.double(), atol=1e-5)
    assert abs(float(world.bias.norm()) - 2.0) < 1e-5


def test_snr_noise_hits_target():
    world = World(WorldConfig(d=32, m=64, noise=Noise(snr=4.0)))
    b = world.sample(20_000, seed=12)
    signal = (b.x - b.noise - world.bias).double().pow(2).sum(1).mean()
    noise = b.noise.double().pow(2).sum(1).mean()
    assert abs(float(signal / noise) / 4.0 - 1) < 0.1


@given(world_configs())
def test_determinism_and_codes_valid(cfg):
    world = World(cfg)
    a, b = world.sample(64, seed=3), world.sample(64, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.codes.cols, b.codes.cols)
    assert bool((a.codes.values > 0).all()) and torch.isfinite(a.x).all()
    if isinstance(cfg.firing, ExactlyK):
        assert bool((a.codes.l0() == cfg.firing.k).all())


def test_save_load_same_samples(tmp_path):
    world = World.preset("hierarchy", seed=5)
    world.save(tmp_path / "w")
    loaded = World.load(tmp_path / "w")
    assert loaded.config == world.config
    assert torch.equal(world.sample(200, seed=1).x, loaded.sample(200, seed=1).x)
    (tmp_path / "w" / "world.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupted"):
        World.load(tmp_path / "w")


def test_config_round_trips_json_and_toml():
    from synthsae.world.presets import preset_config

    for name in ["toy", "aen-spiked", "hierarchy", "subspaces", "synthsaebench-16k"]:
        cfg = preset_config(name)
        assert WorldConfig.from_json(cfg.to_json()) == cfg
        assert WorldConfig.from_toml(cfg.to_toml()) == cfg


def test_fixed_length_tuple_fields_round_trip():
    # Regression: a (min, max) branching (a fixed-length tuple) used to be parsed with hint and value swapped.
    cfg = WorldConfig(d=16, m=64, hierarchy=HierarchyConfig(roots=2, branching=(2, 3), depth=2))
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    assert WorldConfig.from_toml(cfg.to_toml()) == cfg


def test_fileless_given_geometry_takes_the_explicit_dictionary():
    # Regression: World(config, dictionary=D) with Given(path=None) used to fail asking for a file.
    D = torch.nn.functional.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    world = World(WorldConfig(d=8, m=20, dictionary=Given()), dictionary=D)
    assert torch.allclose(world.dictionary, D, atol=1e-6)  # rows are re-normalized in float64
    batch = world.sample(64, seed=1)
    assert torch.allclose(batch.x, batch.codes.to_dense().float() @ world.dictionary + world.bias, atol=1e-5)
    with pytest.raises(ValueError, match="needs a file or an explicit tensor"):
        World(WorldConfig(d=8, m=20, dictionary=Given()))


def test_stream_is_endless_and_deterministic():
    world = World.preset("toy")
    s1, s2 = world.stream(16, seed=4), world.stream(16, seed=4)
    for _ in range(3):
        assert torch.equal(next(s1).x, next(s2).x)


@pytest.mark.parametrize("make, match", [
    (lambda: Constant(p=1.5), "probability"),
    (lambda: WorldConfig(d=4, m=8, firing=ExactlyK(k=9)), "k"),
    (lambda: WorldConfig(d=4, m=0), "world.m"),
    (lambda: World(WorldConfig(d=4, m=2, firing=Constant(p=0.1), correlation=Full(matrix=((1.0, 0.5), (0.4, 1.0))))), "symmetric"),
    (lambda: World(WorldConfig(d=4, m=2, firing=Constant(p=0.1), correlation=Full(matrix=((2.0, 0.5), (0.5, 1.0))))), "diagonal"),
    (lambda: World(WorldConfig(d=4, m=3, firing=Constant(p=0.1), correlation=Full(
        matrix=((1.0, 0.9, -0.9), (0.9, 1.0, 0.9), (-0.9, 0.9, 1.0))))), "semi-definite"),
    (lambda: World(WorldConfig(d=4, m=10, hierarchy=HierarchyConfig(roots=2, branching=3, depth=2))), "needs more"),
    (lambda: WorldConfig(d=4, m=8, dictionary=Orthonormal()), "orthonormal"),
    (lambda: Uniform(low=float("nan")) and World(WorldConfig(d=4, m=8, magnitudes=Uniform(low=float("nan")))), "finite"),
    (lambda: World(WorldConfig(d=4, m=8, magnitudes=Uniform(low=-1.0, high=1.0))), "low"),
    (lambda: World.preset("toyy"), "Did you mean 'toy'"),
    (lambda: World.preset("toy", rho=0.3), "unknown override"),
    (lambda: WorldConfig.from_dict({"d": 4, "m": 8, "firng": {}}), "Did you mean 'firing'"),
    (lambda: WorldConfig.from_dict({"d": "four"}), "world|integer|WorldConfig.d"),
    (lambda: WorldConfig(d=4, m=8, dictionary=Coherence(target=0.01)), "Welch"),
    (lambda: World(WorldConfig(d=4, m=8), dictionary=torch.ones(8, 4)), "unit norm"),
    (lambda: World.preset("toy").sample(0), "positive"),
])
def test_bad_input_raises_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
