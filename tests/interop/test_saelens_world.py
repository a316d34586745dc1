"""Worlds built from SAELens synthetic-model configs equal SAELens's models in every part and in
distribution (runs only where sae-lens is installed: `pip install sae-lens`)."""

import json
import warnings

import pytest
import torch
from scipy import stats

pytest.importorskip("sae_lens.synthetic")
from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig  # noqa: E402
from sae_lens.synthetic.firing_magnitudes import FoldedNormalMagnitudeConfig, LinearMagnitudeConfig  # noqa: E402
from sae_lens.synthetic.firing_probabilities import ZipfianFiringProbabilityConfig  # noqa: E402
from sae_lens.synthetic.hierarchy import HierarchyConfig as SLHierarchy  # noqa: E402
from sae_lens.synthetic.synthetic_model import LowRankCorrelationConfig, OrthogonalizationConfig  # noqa: E402

from synthsae import World  # noqa: E402
from synthsae.interop import SAELensCompatibilityWarning, load_saelens_world, world_from_saelens  # noqa: E402


def _config(**changes) -> SyntheticModelConfig:
    """Every feature of SAELens's generator at once: Zipf, random branching, half the parents mutually
    exclusive, compensation, low-rank copula, per-feature magnitudes, bias."""
    base = dict(num_features=300, hidden_dim=32,
                firing_probability=ZipfianFiringProbabilityConfig(exponent=0.6, max_prob=0.25, min_prob=0.005),
                hierarchy=SLHierarchy(total_root_nodes=10, branching_factor=(2, 4), max_depth=2,
                                      mutually_exclusive_portion=0.5, compensate_probabilities=True),
                correlation=LowRankCorrelationConfig(rank=4, correlation_scale=0.15),
                std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.1, std=0.05),
                mean_firing_magnitudes=LinearMagnitudeConfig(start=2.0, end=1.0), bias=1.0, seed=7)
    base.update(changes)
    return SyntheticModelConfig(**base)


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAELensCompatibilityWarning)
        return fn(*args)


def _forest_of(model: SyntheticModel, m: int):
    parents = torch.full((m,), -1, dtype=torch.long)
    exclusive = torch.zeros(m, dtype=torch.bool)
    stack = [(r, -1) for r in model.hierarchy.roots]
    while stack:
        node, parent = stack.pop()
        parents[node.feature_index] = parent
        exclusive[node.feature_index] = node.mutually_exclusive_children
        stack += [(c, node.feature_index) for c in node.children]
    return parents, exclusive


def _saelens_sample(model: SyntheticModel, n: int, seed: int):
    # SAELens samples from torch's global RNG; fork_rng leaves the caller's state untouched.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return model.sample_with_features(n)


def test_every_part_equals_saelens_model():
    cfg = _config()
    model = SyntheticModel(cfg)
    world = _quiet(world_from_saelens, cfg)
    gen = model.activation_generator
    assert torch.equal(world.dictionary, model.feature_dict.feature_vectors.data)  # no orthogonalization: same draw
    assert torch.equal(world.bias, model.feature_dict.bias.data)
    assert torch.equal(world.base_probabilities.float(), gen.firing_probabilities)
    assert torch.equal(world._state["mag.mean"].float(), gen.mean_firing_magnitudes)
    assert torch.equal(world._state["mag.std"].float(), gen.std_firing_magnitudes)
    assert torch.equal(world._state["corr_factor"].float(), model.correlation_matrix.correlation_factor)
    parents, exclusive = _forest_of(model, cfg.num_features)
    assert torch.equal(world.parents, parents)
    assert torch.equal(world._forest.exclusive, exclusive)
    assert bool(exclusive.any()) and bool((parents >= 0).any())


def test_config_object_dict_and_json_give_the_same_world(tmp_path):
    cfg = _config(hierarchy=None, correlation=None)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    worlds = [world_from_saelens(src) for src in (cfg, cfg.to_dict(), path, str(path))]
    for w in worlds[1:]:
        assert torch.equal(w.dictionary, worlds[0].dictionary)
        assert torch.equal(w.sample(64, seed=1).x, worlds[0].sample(64, seed=1).x)


def test_orthogonalized_dictionary_matches_saelens_to_round_off():
    cfg = _config(num_features=96, hidden_dim=16, hierarchy=None, correlation=None,
                  orthogonalization=OrthogonalizationConfig(num_steps=6, lr=0.01, chunk_size=48))
    model = SyntheticModel(cfg)
    world = world_from_saelens(cfg)
    ref = model.feature_dict.feature_vectors.data
    random_start = torch.randn(96, 16, generator=torch.Generator().manual_seed(7))
    random_start = random_start / random_start.norm(dim=1, keepdim=True)
    assert float((ref - random_start).abs().max()) > 1e-3  # the descent moved the atoms ...
    assert float((world.dictionary - ref).abs().max()) < 1e-5  # ... and ours moved them the same way


def test_saved_model_loads_exactly(tmp_path):
    cfg = _config()
    model = SyntheticModel(cfg)
    model.save(tmp_path)
    loaded = _quiet(load_saelens_world, tmp_path)
    built = _quiet(world_from_saelens, cfg)
    assert torch.equal(loaded.dictionary, model.feature_dict.feature_vectors.data)
    assert torch.equal(loaded.bias, model.feature_dict.bias.data)
    assert torch.equal(loaded.base_probabilities.float(), model.activation_generator.firing_probabilities)
    assert torch.equal(loaded.parents, built.parents)
    assert torch.equal(loaded._forest.exclusive, built._forest.exclusive)
    assert torch.equal(loaded.sample(200, seed=3).x, built.sample(200, seed=3).x)  # same state, same samples
    assert _quiet(world_from_saelens, tmp_path).dictionary.equal(loaded.dictionary)  # a folder is loaded

    # synthsae's own save keeps the exact state. (Fixed branching here: a (min, max) branching tuple does
    # not survive WorldConfig JSON yet -- synthsae.config._from_plain swaps value and type for fixed tuples.)
    fixed = _quiet(world_from_saelens, _config(hierarchy=SLHierarchy(total_root_nodes=10, branching_factor=3,
                                                                     max_depth=2, mutually_exclusive_portion=0.5)))
    again = World.load(fixed.save(tmp_path / "synthsae"))
    assert torch.equal(again.sample(200, seed=3).x, fixed.sample(200, seed=3).x)


def _binomial_pvalues(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two-sided p-values of 'same rate' for counts a, b out of equal n: given a + b, a ~ Bin(a + b, 1/2)."""
    return torch.tensor([stats.binomtest(int(x), int(x + y), 0.5).pvalue if x + y > 0 else 1.0
                         for x, y in zip(a.tolist(), b.tolist())])


@pytest.mark.slow
def test_samples_are_statistically_indistinguishable():
    """Per-feature firing counts, co-firing of the 20 most frequent features, magnitudes and L0 of
    n = 20,000 samples from each side. Bonferroni-corrected: under equal distributions the chance
    that any check fails is below 3e-3 (1e-3 each for rates and co-firing, 1e-3 for the KS tests,
    1e-5 for L0); seeds are fixed, so the test is deterministic."""
    cfg, n = _config(), 20_000
    model = SyntheticModel(cfg)
    world = _quiet(world_from_saelens, cfg)
    x_sl, z_sl = _saelens_sample(model, n, seed=11)
    batch = world.sample(n, seed=11)
    z_ours = batch.codes.to_dense().float()
    fire_sl, fire_ours = z_sl > 0, z_ours > 0
    m = cfg.num_features

    p_rates = _binomial_pvalues(fire_ours.sum(0), fire_sl.sum(0))
    assert float(p_rates.min()) > 1e-3 / m, f"feature {int(p_rates.argmin())} fires at different rates"

    top = torch.argsort(fire_sl.sum(0), descending=True)[:20]
    pairs = torch.triu_indices(20, 20, offset=1)
    i, j = top[pairs[0]], top[pairs[1]]
    joint_sl = (fire_sl[:, i] & fire_sl[:, j]).sum(0)
    joint_ours = (fire_ours[:, i] & fire_ours[:, j]).sum(0)
    p_pairs = _binomial_pvalues(joint_ours, joint_sl)
    assert float(p_pairs.min()) > 1e-3 / len(i), "co-firing differs (correlation or hierarchy)"

    for f in top[:5].tolist():
        ks = stats.ks_2samp(z_ours[fire_ours[:, f], f].numpy(), z_sl[fire_sl[:, f], f].numpy())
        assert ks.pvalue > 1e-3 / 5, f"magnitudes of feature {f} differ"

    l0_sl, l0_ours = fire_sl.sum(1).double(), fire_ours.sum(1).double()
    z = (l0_ours.mean() - l0_sl.mean()) / (l0_ours.var() / n + l0_sl.var() / n).sqrt()
    assert abs(float(z)) < 4.42  # two-sided 1e-5

    # hierarchy constraints hold exactly on both sides: no child without its parent, one ME child at most
    child = (world.parents >= 0).nonzero().squeeze(1)
    for fire in (fire_sl, fire_ours):
        assert not bool((fire[:, child] & ~fire[:, world.parents[child]]).any())
        for parent in world._forest.exclusive.nonzero().squeeze(1).tolist():
            kids = (world.parents == parent).nonzero().squeeze(1)
            assert int(fire[:, kids].sum(1).max()) <= 1
    # x = z D + bias on both sides
    assert torch.allclose(x_sl, z_sl @ world.dictionary + world.bias, atol=1e-4)
    assert torch.allclose(batch.x, z_ours @ world.dictionary + world.bias, atol=1e-4)


def test_saelens_repairs_are_reproduced_with_a_warning():
    cfg = _config(num_features=64, hierarchy=None, correlation=LowRankCorrelationConfig(rank=8, correlation_scale=0.5))
    model = SyntheticModel(cfg)
    with pytest.warns(SAELensCompatibilityWarning, match="silently rescaled"):
        world = world_from_saelens(cfg)
    assert torch.equal(world._state["corr_factor"].float(), model.correlation_matrix.correlation_factor)
    with pytest.warns(SAELensCompatibilityWarning) as caught:
        world_from_saelens(_config(correlation=None))
    messages = [str(w.message) for w in caught]
    assert any("first-order" in msg for msg in messages) and any("clamps" in msg for msg in messages)


@pytest.mark.slow
def test_saelens_synthsaebench_compensation_explains_the_published_l0():
    """SynthSAEBench-16k's table values (Zipf 0.5 / 0.4 / 5e-4; 128 roots, branching 4, depth 3, all
    exclusive) give an expected L0 of 13.5 without compensation and ~34.5 -- the published ~34 -- with
    SAELens's first-order compensate_probabilities=True (exact marginals, L0 = sum p = 59.1, are unreachable
    on this forest: synthsae's compensate="exact" raises)."""
    def l0(compensate: bool) -> float:
        cfg = dict(num_features=16384, hidden_dim=8,
                   firing_probability={"generator_name": "zipfian", "exponent": 0.5, "max_prob": 0.4, "min_prob": 5e-4},
                   hierarchy={"total_root_nodes": 128, "branching_factor": 4, "max_depth": 3,
                              "mutually_exclusive_portion": 1.0, "compensate_probabilities": compensate},
                   bias=0.0, seed=0)
        return _quiet(world_from_saelens, cfg).expected_l0()

    assert l0(False) == pytest.approx(13.46, abs=0.01)
    assert l0(True) == pytest.approx(34.50, abs=0.01)


def test_saelens_world_rebuilds_from_its_state():
    """The config of a SAELens world records the laws, not its forest, dictionary or correlation factor:
    `World.from_state(config, state)` is the public way to rebuild it."""
    world = _quiet(world_from_saelens, _config(num_features=80))
    rebuilt = World.from_state(world.config, world.state())
    assert torch.equal(world.sample(200, seed=2).x, rebuilt.sample(200, seed=2).x)
    assert torch.equal(rebuilt.parents, world.parents)


@pytest.mark.slow
def test_synthsaebench_preset_first_order_matches_saelens():
    """The synthsaebench-16k preset lays out SAELens's forest and, with compensate="first_order", gets
    SAELens's compensate_probabilities=True base probabilities (float64 against float32 round-off), so
    its expected L0 is the one SAELens's model has (~34.5, the published ~34)."""
    from synthsae._rng import generator
    from synthsae.world.hierarchy import base_probabilities, build_forest
    from synthsae.world.presets import preset_config

    cfg = preset_config("synthsaebench-16k")
    assert cfg.hierarchy.compensate == "first_order"
    spec = dict(num_features=cfg.m, hidden_dim=8, bias=0.0, seed=0,
                firing_probability=ZipfianFiringProbabilityConfig(exponent=0.5, max_prob=0.4, min_prob=5e-4),
                hierarchy=SLHierarchy(total_root_nodes=128, branching_factor=4, max_depth=3,
                                      mutually_exclusive_portion=1.0, compensate_probabilities=True))
    model = SyntheticModel(SyntheticModelConfig(**spec))
    forest = build_forest(cfg.hierarchy, cfg.m, generator(cfg.seed))
    parents, exclusive = _forest_of(model, cfg.m)
    assert torch.equal(forest.parents, parents) and torch.equal(forest.exclusive, exclusive)
    q, marginal = base_probabilities(forest, cfg.firing.probabilities(cfg.m), cfg.hierarchy.compensate)
    torch.testing.assert_close(q.float(), model.activation_generator.firing_probabilities, rtol=2e-6, atol=0)
    saelens_l0 = _quiet(world_from_saelens, SyntheticModelConfig(**spec)).expected_l0()
    assert float(marginal.sum()) == pytest.approx(saelens_l0, rel=1e-5)
    assert 34 < saelens_l0 < 35


@pytest.mark.parametrize("change, match", [
    ({"unknown_field": 1}, "unknown key"),
    ({"seed": None}, "seed"),
    ({"dtype": "bfloat16"}, "float32"),
    ({"firing_probability": {"generator_name": "lognormal"}}, "lognormal"),
    ({"hierarchy": {"total_root_nodes": 2, "new_option": True}}, "new_option"),
])
def test_unsupported_configs_raise_naming_the_problem(change, match):
    cfg = {**_config(hierarchy=None, correlation=None).to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        world_from_saelens(cfg)
