"""The opt-in sparse kernels (`sparse_kernels=True`, `synthsae.sae.sparse`) against the plain path.

By default every SAE runs plain dense ops and never touches a sparse kernel; with the flag on, each
registered variant gives the same loss terms, codes and parameter gradients to float round-off.
"""

from __future__ import annotations

import pytest
import torch

from synthsae._rng import generator
from synthsae.sae import SAE, available, make, sparse, train
from synthsae.sae.base import SAES

# every variant, plus the configurations that take another branch of a variant's code
CASES = [(name, {}) for name in available()] + [("relu_l1", {"decoder_norm_penalty": True})]


def sparse_codes(n: int, m: int, density: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = generator(seed)
    keep = torch.rand(n, m, generator=g) < density
    return (torch.rand(n, m, generator=g, dtype=dtype) + 0.5) * keep


def build(name: str, world, on: bool, **hp) -> SAE:
    if "k" in {f for f in SAES.get(name).config_class.__dataclass_fields__}:
        hp.setdefault("k", 3)
    return make(name, world.d, world.m, seed=1, sparse_kernels=on, **hp)


# ---- the kernels themselves ---------------------------------------------------------------------
def test_gradcheck_kernels():
    """Analytic gradients of every kernel match finite differences (float64)."""
    n, d, m = 6, 4, 10
    g = generator(0)
    z = sparse_codes(n, m, 0.3, seed=1).requires_grad_()
    W_dec = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    # sparse.decode differentiates z only at its non-zeros: perturbing W and b keeps the pattern
    assert torch.autograd.gradcheck(lambda W, b: sparse.decode(z.detach(), W, b), (W_dec, b_dec))
    idx = torch.randint(0, m, (n, 3), generator=g)
    vals = torch.rand(n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, W: sparse.decode_topk(idx, v, W), (vals, W_dec))
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(d, m, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    # a ReLU after the linear map makes the incoming gradient sparse, as in an SAE
    assert torch.autograd.gradcheck(lambda *a: torch.relu(sparse.encode_linear(*a) - 1.0), (x, W, b, c))
    w = torch.rand(m, generator=g, dtype=torch.float64) + 0.5

    def through_active(x, W, b, c, W_dec, b_dec):
        active = sparse.active_relu(sparse.encode_linear(x, W, b, c) - 1.0)
        return active.decode(W_dec, b_dec), active.penalty(w), active.penalty(), active.sum_of_squares()

    assert torch.autograd.gradcheck(through_active, (x, W, b, c, W_dec, b_dec))


def test_kernels_equal_the_dense_products():
    """Values and every gradient agree with the plain products to float64 round-off."""
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
        t = {k: v.clone().requires_grad_(k != "x") for k, v in leaves.items()}
        if on:
            z = torch.relu(sparse.encode_linear(t["x"], t["W_enc"], t["b_enc"], t["b_dec"]))
            x_hat = sparse.decode(z, t["W_dec"], t["b_dec"])
        else:
            z = torch.relu((t["x"] - t["b_dec"]) @ t["W_enc"] + t["b_enc"])
            x_hat = z @ t["W_dec"] + t["b_dec"]
        assert 0 < (z != 0).double().mean() < 0.5  # a genuinely sparse case
        ((x_hat - t["x"]).pow(2).sum() + z.sum()).backward()
        results.append((x_hat.detach(), {k: v.grad for k, v in t.items() if k != "x"}))
    (out_s, grads_s), (out_d, grads_d) = results
    torch.testing.assert_close(out_s, out_d, rtol=1e-12, atol=1e-12)
    for k in grads_d:
        torch.testing.assert_close(grads_s[k], grads_d[k], rtol=1e-10, atol=1e-10, msg=k)


# ---- the switch ---------------------------------------------------------------------------------
def test_the_switch_is_a_validated_config_field():
    sae = make("relu_l1", 8, 16)
    assert sae.config.sparse_kernels is False  # off unless asked for
    on = make("relu_l1", 8, 16, sparse_kernels=True)
    assert on.config.sparse_kernels is True and on.config.to_dict()["sparse_kernels"] is True
    with pytest.raises(ValueError, match="sparse_kernels"):
        make("relu_l1", 8, 16, sparse_kernels="yes")
    with pytest.raises(ValueError, match="sparse_kernels"):
        type(sae.config)(d=8, m=16, sparse_kernels=1)


@pytest.mark.parametrize("name,hp", CASES)
def test_the_default_path_never_calls_a_sparse_kernel(monkeypatch, name, hp, small_world):
    """One default numerical path: training steps, encode and decode of every variant run without
    any function of `synthsae.sae.sparse`."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse kernel ran on the default path")

    for fn in ("decode", "decode_topk", "encode_linear", "active_relu", "weight_grad"):
        monkeypatch.setattr(sparse, fn, refuse)
    sae = build(name, small_world, on=False, **hp)
    train(sae, small_world, 64 * 3, 64, lr=1e-3, seed=0, progress=False)
    x = small_world.sample(8, seed=9).x
    sae.decode(sae.encode(x))


@pytest.mark.parametrize("name,hp", CASES)
def test_every_variant_has_the_same_terms_codes_and_gradients(name, hp, small_world):
    """sparse_kernels=True against the plain path: equal loss terms, codes, fire counts and
    parameter gradients at float32 round-off, with half the latents dead so that AuxK adds its
    gradient to the pre-activations; encode / decode equal too."""
    x = small_world.sample(64, seed=3).x
    results = []
    for on in (True, False):
        sae = build(name, small_world, on, **hp)
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0))
            sae.steps_since_fired[: small_world.m // 2] = sae.config.dead_after_steps
        out = sae.forward_train(x, 10)
        out.terms["total"].backward()
        results.append(({k: v.detach() for k, v in out.terms.items()}, out.codes.detach(), out.fired_per_latent(),
                        {k: p.grad for k, p in sae.named_parameters() if p.grad is not None},
                        sae.decode(sae.encode(x)).detach()))
    (terms_s, codes_s, fired_s, grads_s, rec_s), (terms_d, codes_d, fired_d, grads_d, rec_d) = results
    assert terms_s.keys() == terms_d.keys() and grads_s.keys() == grads_d.keys() and grads_d
    assert "aux" not in terms_d or terms_d["aux"] > 0  # AuxK is active: its gradient reaches a
    for k in terms_d:
        assert (terms_s[k] - terms_d[k]).abs() <= 1e-6 * terms_d[k].abs().clamp_min(1e-12), (name, k)
    torch.testing.assert_close(codes_s, codes_d, rtol=1e-6, atol=1e-6)
    assert torch.equal(fired_s, fired_d)
    torch.testing.assert_close(rec_s, rec_d, rtol=1e-5, atol=1e-6)
    for k, dense in grads_d.items():
        scale = dense.abs().max().clamp_min(1e-12)
        assert (grads_s[k] - dense).abs().max() <= 1e-5 * scale, (name, k)  # measured <= 2.5e-7


@pytest.mark.parametrize("name,hp", [("relu_l1", {"l1_coefficient": 1e-2}), ("topk", {"k": 3})])
def test_training_with_the_kernels_is_deterministic_and_close_to_plain(name, hp, small_world):
    """Two runs with the kernels on are bit-identical; they end near the plain run."""
    runs = []
    for on in (True, True, False):
        sae = make(name, small_world.d, small_world.m, seed=0, dead_after_steps=5, sparse_kernels=on, **hp)
        history = train(sae, small_world, 64 * 20, 64, lr=1e-3, seed=4, progress=False, log_every=5)
        runs.append((sae.W_dec.detach().clone(), sae.W_enc.detach().clone(), history))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][2].scalars() == runs[1][2].scalars()
    for i in (0, 1):
        assert (runs[0][i] - runs[2][i]).abs().max() < 1e-5  # float32 round-off through 20 Adam steps
    assert runs[0][2].l0 == runs[2][2].l0 and runs[0][2].dead == runs[2][2].dead
