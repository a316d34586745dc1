"""`World.from_state`: rebuilding a world from its config and built parts, and its input checks."""

import pytest
import torch

from synthsae.world import LowRank, World, WorldConfig


@pytest.mark.parametrize("world", [World.preset("hierarchy", seed=2), World.preset("subspaces"),
                                   World(WorldConfig(d=8, m=20, correlation=LowRank(rank=2, scale=0.3)))],
                         ids=["hierarchy", "subspaces", "copula"])
def test_from_state_samples_exactly_like_the_original(world):
    rebuilt = World.from_state(world.config, world.state())
    a, b = world.sample(300, seed=7), rebuilt.sample(300, seed=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.codes.cols, b.codes.cols)
    assert torch.equal(rebuilt.firing_probabilities, world.firing_probabilities)


def test_from_state_uses_the_given_parts_without_rebuilding():
    world = World.preset("toy")
    state = world.state()
    rot, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    state["dictionary"] = (world.dictionary.double() @ rot).float()
    other = World.from_state(world.config, state)
    batch = other.sample(100, seed=3)
    assert torch.equal(batch.codes.cols, world.sample(100, seed=3).codes.cols), "same firing parts, same codes"
    assert torch.allclose(batch.x, batch.codes.to_dense().float() @ state["dictionary"] + world.bias, atol=1e-5)
    assert world.state()["dictionary"] is world.dictionary, "state() is a shallow copy: the world is untouched"


def _broken(change):
    world = World.preset("hierarchy")
    state = world.state()
    change(state)
    return lambda: World.from_state(world.config, state)


@pytest.mark.parametrize("make, match", [
    (_broken(lambda s: s.pop("parents")), "'parents'.*missing"),
    (_broken(lambda s: s.update(q=torch.zeros(7, dtype=torch.float64))), "'q'.*shape"),
    (_broken(lambda s: s.update(marginal=s["marginal"] + 1.0)), r"\[0, 1\]"),
    (_broken(lambda s: s.update(dictionary=2 * s["dictionary"])), "unit norm"),
    (_broken(lambda s: s.pop("mag.low")), "mag.low"),
    (lambda: World.from_state({"d": 4}, {}), "WorldConfig"),
    (lambda: World.from_state(WorldConfig(), [1, 2]), "dict"),
])
def test_from_state_rejects_bad_parts(make, match):
    with pytest.raises(ValueError, match=match):
        make()
