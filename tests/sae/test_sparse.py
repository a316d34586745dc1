"""Sparse kernels (`synthsae.sae.sparse`): same values and gradients as the dense products.

The kernels engage only for large dictionaries; here `force` switches them on (or off) for small
ones by moving the size and density thresholds, so every registered variant's gradients are
compared between the two paths.
"""

from __future__ import annotations

import pytest
import torch

from synthsae._rng import generator
from synthsae.sae import available, make, sparse, train


@pytest.fixture
def force(monkeypatch):
    """force(True): sparse kernels for any size and density; force(False): never."""

    def set_mode(on: bool) -> None:
        monkeypatch.setattr(sparse, "MIN_LATENTS", 1 if on else 10**12)
        monkeypatch.setattr(sparse, "MAX_DENSITY", 1.0 if on else 0.0)

    return set_mode


def sparse_codes(n: int, m: int, density: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = generator(seed)
    keep = torch.rand(n, m, generator=g) < density
    return (torch.rand(n, m, generator=g, dtype=dtype) + 0.5) * keep


@pytest.mark.parametrize("on", [True, False])
def test_gradcheck_decode_and_encoder(force, on):
    """Analytic gradients of both kernels match finite differences (float64), on both paths."""
    force(on)
    n, d, m = 6, 4, 10
    g = generator(0)
    z = sparse_codes(n, m, 0.3, seed=1).requires_grad_()
    W_dec = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    # sparse.decode differentiates z only at its non-zeros: perturbations keep the pattern
    assert torch.autograd.gradcheck(lambda W, b: sparse.decode(z.detach(), W, b), (W_dec, b_dec))
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(d, m, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    # a ReLU after the linear map makes the incoming gradient sparse, as in an SAE
    assert torch.autograd.gradcheck(lambda *a: torch.relu(sparse.encode_linear(*a) - 1.0), (x, W, b, c))
    if on:  # ReLU codes kept as their non-zero entries: the gradient reaches the encoder as sparse COO
        w = torch.rand(m, generator=g, dtype=torch.float64) + 0.5

        def through_active(x, W, b, c, W_dec, b_dec):
            active = sparse.active_relu(sparse.encode_linear(x, W, b, c) - 1.0)
            assert active is not None
            return active.decode(W_dec, b_dec), active.penalty(w), active.penalty()

        assert torch.autograd.gradcheck(through_active, (x, W, b, c, W_dec, b_dec))


def test_sparse_and_dense_paths_agree(force):
    """Values and every gradient agree to float64 round-off between the two paths."""
    n, d, m = 32, 8, 64
    g = generator(2)
    leaves = {
        "x": torch.randn(n, d, generator=g, dtype=torch.float64),
        "W_enc": torch.randn(d, m, generator=g, dtype=torch.float64),
        "b_enc": torch.randn(m, generator=g, dtype=torch.float64) - 2.0,
        "b_dec": torch.randn(d, generator=g, dtype=torch.float64),
        "W_dec": torch.randn(m, d, generator=g, dtype=torch.float64),
    }
    results = []
    for on in (True, False):
        force(on)
        t = {k: v.clone().requires_grad_(k != "x") for k, v in leaves.items()}
        z = torch.relu(sparse.encode_linear(t["x"], t["W_enc"], t["b_enc"], t["b_dec"]))
        assert 0 < (z != 0).double().mean() < 0.5  # a genuinely sparse case
        x_hat = sparse.decode(z, t["W_dec"], t["b_dec"])
        ((x_hat - t["x"]).pow(2).sum() + z.sum()).backward()
        results.append((x_hat.detach(), {k: v.grad for k, v in t.items() if k != "x"}))
    (out_s, grads_s), (out_d, grads_d) = results
    torch.testing.assert_close(out_s, out_d, rtol=1e-12, atol=1e-12)
    for k in grads_d:
        torch.testing.assert_close(grads_s[k], grads_d[k], rtol=1e-10, atol=1e-10, msg=k)


@pytest.mark.parametrize("name,hp", [(name, {}) for name in available()]
                         + [("relu_l1", {"decoder_norm_penalty": True})])
def test_every_variant_has_the_same_gradients_on_both_paths(force, name, hp, small_world):
    """For each registered SAE, the loss gradients of every parameter agree (float32 round-off)."""
    x = small_world.sample(64, seed=3).x
    grads = []
    for on in (True, False):
        force(on)
        sae = make(name, small_world.d, small_world.m, seed=1, **hp)
        sae.loss(x, step=10)["total"].backward()
        grads.append({k: p.grad for k, p in sae.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k, dense in grads[1].items():
        scale = dense.abs().max().clamp_min(1e-12)
        assert (grads[0][k] - dense).abs().max() <= 1e-5 * scale, (name, k)  # measured <= 3.3e-7


def test_sparse_training_is_deterministic_and_close_to_dense(force, small_world):
    """A short forced-sparse run is bit-reproducible and ends near the dense run."""
    runs = []
    for on in (True, True, False):
        force(on)
        sae = make("relu_l1", small_world.d, small_world.m, seed=0, l1_coefficient=1e-2)
        train(sae, small_world, 64 * 20, 64, lr=1e-3, seed=4, progress=False)
        runs.append(sae.W_dec.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert (runs[0] - runs[2]).abs().max() < 1e-5  # measured 1.2e-7 (float32 round-off through 20 Adam steps)


def test_worth_it_thresholds():
    """Dense products below MIN_LATENTS latents or above MAX_DENSITY non-zeros."""
    m = sparse.MIN_LATENTS
    few = torch.zeros(4, m)
    few[:, :3] = 1.0
    assert sparse.worth_it(few)
    assert not sparse.worth_it(torch.ones(4, m))
    assert not sparse.worth_it(torch.zeros(4, m - 1))


@pytest.mark.parametrize("name", ["relu_l1", "aen"])
def test_sparse_codes_report_the_same_statistics(force, name, small_world):
    """Fire counts, L0 and codes of the sparse path equal the dense path's."""
    x = small_world.sample(64, seed=5).x
    outs = []
    for on in (True, False):
        force(on)
        sae = make(name, small_world.d, small_world.m, seed=2)
        outs.append(sae.forward_train(x, 0))
    assert torch.equal(outs[0].fired_per_latent(), outs[1].fired_per_latent())
    assert torch.equal(outs[0].l0(), outs[1].l0())
    torch.testing.assert_close(outs[0].codes, outs[1].codes.detach())
