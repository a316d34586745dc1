"""The fused dense path (`synthsae.sae.fused`): same values and gradients as plain autograd.

`fused.ENABLED = False` (through `monkeypatch`) sends every variant through the eager ops, so each
registered variant's loss terms and parameter gradients are compared between the two paths.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthsae._rng import generator
from synthsae.sae import available, fused, make, sparse, train

# every variant whose training forward goes through `SAE.reconstruct`
FUSED_VARIANTS = [("relu_l1", {}), ("relu_l1", {"decoder_norm_penalty": True}), ("topk", {"k": 3}),
                  ("batchtopk", {"k": 3}), ("frozen_decoder", {"k": 3}), ("soft_frozen_decoder", {"k": 3}),
                  ("frozen_encoder", {"k": 3})]


def topk_codes(a: torch.Tensor, k: int = 3) -> torch.Tensor:
    vals, idx = a.topk(k, dim=1)
    return torch.zeros_like(a).scatter(1, idx, F.relu(vals))


@pytest.mark.parametrize("activation", [F.relu, topk_codes], ids=["relu", "topk"])
def test_gradcheck_every_output(activation):
    """Analytic gradients of all four outputs (mse, x_hat, z, a), weighted so each gets its own
    incoming gradient, match finite differences for every input, x included (float64)."""
    n, d, m = 7, 4, 9
    g = generator(0)
    inputs = (torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True),
              torch.randn(d, m, generator=g, dtype=torch.float64, requires_grad=True),
              torch.randn(m, generator=g, dtype=torch.float64, requires_grad=True),
              torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True),
              torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True))
    wx = torch.randn(n, d, generator=g, dtype=torch.float64)
    wz = torch.randn(n, m, generator=g, dtype=torch.float64)
    wa = torch.randn(n, m, generator=g, dtype=torch.float64)

    def loss(*args):
        out = fused.forward(*args, activation)
        return out.mse, (out.x_hat * wx).sum(), (out.z * wz).sum(), (out.a * wa).sum()

    assert 0 < (activation(inputs[0] @ inputs[1]) != 0).double().mean() < 1  # a mask with both kinds
    assert torch.autograd.gradcheck(loss, inputs)
    for i in range(4):  # each output alone: the backward with the other incoming gradients absent
        assert torch.autograd.gradcheck(lambda *a, i=i: loss(*a)[i], inputs)


@pytest.mark.parametrize("name,hp", [(name, {}) for name in available() if name not in dict(FUSED_VARIANTS)]
                         + FUSED_VARIANTS)
def test_every_variant_has_the_same_terms_and_gradients(monkeypatch, name, hp, small_world):
    """Fused vs eager: equal loss terms and parameter gradients at float32 round-off, with some
    latents dead so that AuxK adds its gradient to the pre-activations."""
    x = small_world.sample(64, seed=3).x
    results = []
    for on in (True, False):
        monkeypatch.setattr(fused, "ENABLED", on)
        sae = make(name, small_world.d, small_world.m, seed=1, **hp)
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0))
            sae.steps_since_fired[: small_world.m // 2] = sae.config.dead_after_steps
        terms = sae.loss(x, step=10)
        terms["total"].backward()
        results.append(({k: v.detach() for k, v in terms.items()},
                        {k: p.grad for k, p in sae.named_parameters() if p.grad is not None}))
    (terms_f, grads_f), (terms_e, grads_e) = results
    assert terms_f.keys() == terms_e.keys() and grads_f.keys() == grads_e.keys()
    assert "aux" not in terms_e or terms_e["aux"] > 0  # AuxK is active: its gradient reaches a
    for k in terms_e:
        assert (terms_f[k] - terms_e[k]).abs() <= 1e-6 * terms_e[k].abs().clamp_min(1e-12), (name, k)
    for k, eager in grads_e.items():
        scale = eager.abs().max().clamp_min(1e-12)
        assert (grads_f[k] - eager).abs().max() <= 1e-5 * scale, (name, k)  # measured <= 2e-7


@pytest.mark.parametrize("name,hp", [("relu_l1", {}), ("topk", {"k": 3}), ("batchtopk", {"k": 3})])
def test_fused_node_is_used_only_where_it_applies(monkeypatch, name, hp, small_world):
    """Small dictionary on CPU: the mse comes out of the fused node; a dictionary at or above
    sparse.MIN_LATENTS keeps the eager (sparse-capable) ops."""
    x = small_world.sample(16, seed=0).x
    sae = make(name, small_world.d, small_world.m, **hp)
    assert type(sae.forward_train(x, 0).terms["mse"].grad_fn).__name__ == "_DenseSAEBackward"
    monkeypatch.setattr(sparse, "MIN_LATENTS", small_world.m)
    assert not fused.applies(x, small_world.m)
    assert type(sae.forward_train(x, 0).terms["mse"].grad_fn).__name__ != "_DenseSAEBackward"


@pytest.mark.parametrize("name,hp", [("relu_l1", {}), ("topk", {"k": 3}), ("batchtopk", {"k": 3})])
def test_activations_have_a_mask_jacobian(name, hp, small_world):
    """The contract `fused.forward` relies on: each code is its pre-activation (> 0) or 0."""
    sae = make(name, small_world.d, small_world.m, **hp)
    a = sae.pre_acts(small_world.sample(64, seed=1).x).detach()
    activation = {"relu_l1": F.relu, "topk": getattr(sae, "dense_codes", None),
                  "batchtopk": getattr(sae, "batch_select", None)}[name]
    z = activation(a)
    kept = z != 0
    assert kept.any() and (~kept).any()
    assert torch.equal(z[kept], a[kept]) and bool((z[kept] > 0).all())


@pytest.mark.parametrize("name,hp", [("relu_l1", {"l1_coefficient": 1e-2}), ("topk", {"k": 3})])
def test_fused_training_is_deterministic_and_close_to_eager(monkeypatch, name, hp, small_world):
    """A short fused run is bit-reproducible and ends near the eager run."""
    runs = []
    for on in (True, True, False):
        monkeypatch.setattr(fused, "ENABLED", on)
        sae = make(name, small_world.d, small_world.m, seed=0, dead_after_steps=5, **hp)
        history = train(sae, small_world, 64 * 20, 64, lr=1e-3, seed=4, progress=False, log_every=5)
        runs.append((sae.W_dec.detach().clone(), sae.W_enc.detach().clone(), history))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][2].scalars() == runs[1][2].scalars()
    for i in (0, 1):
        assert (runs[0][i] - runs[2][i]).abs().max() < 1e-5  # float32 round-off through 20 Adam steps
    assert runs[0][2].l0 == runs[2][2].l0 and runs[0][2].dead == runs[2][2].dead
