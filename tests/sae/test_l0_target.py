"""Training to a target L0 (issue 17): the controller of `synthsae.sae.l0_control` through `train`."""

from __future__ import annotations

import pytest
import torch

from synthsae.sae import make, train
from synthsae.world import World


def fresh_l0(sae, world, seed=424242, n=4096):
    """Mean active latents per sample on samples neither training nor the probe set used."""
    with torch.no_grad():
        z = sae.encode(world.sample(n, seed=seed).x)
    return float((z != 0).sum()) / n


@pytest.mark.slow
@pytest.mark.parametrize("name, hp, target, kw", [
    ("relu_l1", {}, 8.0, dict(n_samples=128 * 1000, batch_size=128, lr=3e-3)),
    ("jumprelu", {"threshold_init": 0.1, "bandwidth": 0.05}, 6.0,
     dict(n_samples=128 * 1500, batch_size=128, lr=1e-2, lr_decay_steps=300)),
])
def test_reaches_the_target_l0_on_the_toy_world(name, hp, target, kw):
    world = World.preset("toy")
    sae = make(name, world.d, 256, seed=0, **hp)
    h = train(sae, world, target_l0=target, seed=0, progress=False, **kw)
    measured = fresh_l0(sae, world)
    assert abs(measured / target - 1) <= 0.10, (name, measured)
    c = h.convergence_result()
    assert c.target_l0 == target and abs(c.l0 / target - 1) <= 0.10  # reported, on the held-out probe set
    assert "target" in h.summary()
    # the coefficient really moved: the variant's own coefficient alone gives a very different L0
    assert max(h.sparsity_factor) > 3


def test_the_factor_is_recorded_frozen_at_the_end_and_scales_the_terms(small_world):
    sae = make("relu_l1", 16, 32, l1_coefficient=2e-3)
    h = train(sae, small_world, 64 * 50, 64, lr=3e-3, target_l0=1.5, log_every=1, progress=False)
    assert len(h.sparsity_factor) == len(h.steps) == 50 and h.target_l0 == 1.5
    assert h.sparsity_coefficients["l1_coefficient"] == pytest.approx([2e-3 * f for f in h.sparsity_factor])
    frozen = h.sparsity_factor[40:]  # l0_freeze = 0.2: the last 10 of 50 steps
    assert len(set(frozen)) == 1 and h.sparsity_factor[38] != h.sparsity_factor[39]
    assert h.sparsity_factor[-1] != 1.0


def test_no_target_means_no_change(small_world):
    a, b = make("relu_l1", 16, 32), make("relu_l1", 16, 32)
    ha = train(a, small_world, 64 * 5, 64, progress=False)
    train(b, small_world, 64 * 5, 64, progress=False, l0_freeze=0.5)  # irrelevant without a target
    assert torch.equal(a.W_dec, b.W_dec) and ha.sparsity_factor == [] and ha.target_l0 is None


@pytest.mark.parametrize("name", ["topk", "batchtopk", "matryoshka", "frozen_decoder"])
def test_variants_without_a_sparsity_coefficient_say_to_set_k(small_world, name):
    with pytest.raises(ValueError, match=r"train.target_l0 = 5.* no sparsity coefficient .*set its k"):
        train(make(name, 16, 32, k=3), small_world, 640, 64, target_l0=5, progress=False)


@pytest.mark.parametrize("name", ["relu_l1", "gated", "jumprelu", "aen", "lista"])
def test_every_variant_with_a_sparsity_coefficient_declares_its_term(small_world, name):
    sae = make(name, 16, 32)
    terms = type(sae).sparsity_terms
    out = sae.forward_train(small_world.sample(8).x, 0)
    for term, field in terms.items():
        assert term in out.terms and getattr(sae.config, field) > 0
    h = train(sae, small_world, 64 * 4, 64, target_l0=3, progress=False)
    assert len(h.sparsity_factor) == len(h.steps)


def test_a_zero_coefficient_cannot_be_adapted(small_world):
    with pytest.raises(ValueError, match="l1_coefficient = 0.0 is invalid: target_l0 adapts"):
        train(make("relu_l1", 16, 32, l1_coefficient=0.0), small_world, 640, 64, target_l0=3, progress=False)
    with pytest.raises(ValueError, match="cannot exceed the number of latents"):
        train(make("relu_l1", 16, 32), small_world, 640, 64, target_l0=40, progress=False)


@pytest.mark.parametrize("name", ["relu_l1", "jumprelu"])
def test_resume_with_a_target_is_bit_identical(make_world, tmp_path, name):
    kw = dict(batch_size=32, lr=3e-3, seed=4, progress=False, log_every=3, checkpoint_every=5, target_l0=2.0)
    world = make_world(noise=0.01)
    full = make(name, 16, 32)
    h_full = train(full, world, 32 * 30, checkpoint_dir=tmp_path / "a", **kw)
    crashing = make_world(noise=0.01)
    orig = crashing.sample

    def sample(n, seed=0, device=None, dtype=torch.float32):
        if crashing.calls >= 2 + 17:  # init batch, probe set, then a kill while drawing step 17's batch
            raise KeyboardInterrupt
        return orig(n, seed=seed, device=device, dtype=dtype)

    crashing.sample = sample
    with pytest.raises(KeyboardInterrupt):
        train(make(name, 16, 32), crashing, 32 * 30, checkpoint_dir=tmp_path / "b", **kw)
    resumed = make(name, 16, 32)
    h_res = train(resumed, world, 32 * 30, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())
    assert h_full.sparsity_factor == h_res.sparsity_factor


def test_a_checkpoint_with_another_target_is_refused(small_world, tmp_path):
    train(make("relu_l1", 16, 32), small_world, 64 * 3, 64, checkpoint_dir=tmp_path, target_l0=3, progress=False)
    with pytest.raises(ValueError, match="target_l0"):
        train(make("relu_l1", 16, 32), small_world, 64 * 6, 64, checkpoint_dir=tmp_path, resume=True, target_l0=4,
              progress=False)
