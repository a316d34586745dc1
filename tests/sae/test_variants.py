"""The defining property of each SAE variant."""

from __future__ import annotations

import math

import pytest
import torch

from synthsae._rng import generator
from synthsae.sae import common, make, train
from synthsae.sae.frozen import project_to_cone_
from synthsae.sae.jumprelu import jumprelu, step

D, M = 16, 48


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=generator(seed))


# ---- TopK / BatchTopK -------------------------------------------------------------------------
def test_topk_exactly_k_when_enough_positive_and_at_most_k_always():
    sae = make("topk", D, M, k=5)
    x = randn(64, D)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation positive
    z = sae.encode(x)
    assert ((z != 0).sum(1) == 5).all()
    assert ((sae.forward_train(x, 0).codes != 0).sum(1) == 5).all()
    with torch.no_grad():
        sae.b_enc.fill_(-3.0)  # some rows have fewer than k positive pre-activations
    a = sae.pre_acts(x)
    z = sae.encode(x)
    expected = (a > 0).sum(1).clamp(max=5)
    assert torch.equal((z != 0).sum(1), expected)
    assert (expected < 5).any()  # the case is really exercised
    # the kept entries are the largest pre-activations
    kept = torch.where(z != 0, a, torch.tensor(float("inf"))).min(1).values
    dropped = torch.where(z == 0, a, torch.tensor(float("-inf"))).max(1).values
    assert (kept >= dropped).all()


@pytest.mark.parametrize("sparse", [False, True])
def test_topk_training_decode_matches_dense_decode(sparse):
    sae = make("topk", D, M, k=5, sparse_kernels=sparse)  # True: the opt-in embedding-bag decode
    x = randn(30, D, seed=2)
    out = sae.forward_train(x, 0)
    torch.testing.assert_close(out.x_hat, sae.decode(out.codes), rtol=1e-5, atol=1e-5)
    out.terms["total"].backward()
    g_train = sae.W_dec.grad.clone()
    sae.zero_grad()
    ((x - sae.decode(out.codes.detach())) ** 2).mean().backward()
    torch.testing.assert_close(g_train, sae.W_dec.grad, rtol=1e-4, atol=1e-6)


def test_batchtopk_keeps_k_times_batch_and_learns_threshold():
    sae = make("batchtopk", D, M, k=3)
    x = randn(40, D)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)
    out = sae.forward_train(x, 0)
    assert int((out.codes != 0).sum()) == 3 * 40
    sae.update(out, 0)
    first = out.codes[out.codes > 0].min()
    assert torch.equal(sae.threshold, first)
    out2 = sae.forward_train(randn(40, D, seed=1), 1)
    sae.update(out2, 1)
    expected = 0.999 * first + 0.001 * out2.codes[out2.codes > 0].min()
    torch.testing.assert_close(sae.threshold, expected, rtol=1e-6, atol=0)
    a = sae.pre_acts(x)
    assert torch.equal(sae.encode(x), a * (a > sae.threshold))


# ---- JumpReLU ---------------------------------------------------------------------------------
def test_jumprelu_threshold_gradient_matches_ste_formula():
    eps = 0.5
    a = torch.tensor([[0.1, 1.0, 1.2, 2.0], [0.9, 0.7, 1.3, -1.0]], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.2, 0.9, 1.0, 1.9], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([[1.0, 2.0, -1.0, 0.5], [3.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    (jumprelu(a, theta, eps) * g).sum().backward()
    K = ((a - theta).abs() / eps < 0.5).double()
    torch.testing.assert_close(theta.grad, (g * -(theta / eps) * K).sum(0))
    torch.testing.assert_close(a.grad, g * (a > theta).double())
    assert K.sum() >= 3 and (K == 0).any()  # both kernel branches exercised
    a.grad = theta.grad = None
    (step(a, theta, eps) * g).sum().backward()
    torch.testing.assert_close(theta.grad, (g * -(1 / eps) * K).sum(0))
    assert torch.equal(a.grad, torch.zeros_like(a))


def test_jumprelu_l0_term_trains_only_thresholds_and_chain_rule():
    sae = make("jumprelu", D, M, bandwidth=0.5, threshold_init=0.3, l0_coefficient=1.0)
    x = randn(64, D)
    sae.loss(x, 0)["l0"].backward()
    for p in (sae.W_dec, sae.W_enc, sae.b_enc, sae.b_dec):  # each checked: the l0 term moves only theta
        assert p.grad is None or float(p.grad.abs().max()) == 0.0
    a = sae.pre_acts(x).detach()
    theta = sae.threshold.detach()
    K = ((a - theta).abs() / 0.5 < 0.5).float()
    expected = (-(1 / 0.5) * K).sum(0) / 64 * theta  # d/dlog(theta) = theta d/dtheta; mean over batch
    torch.testing.assert_close(sae.log_threshold.grad, expected, rtol=1e-5, atol=1e-7)
    assert expected.abs().sum() > 0


# ---- Gated ------------------------------------------------------------------------------------
def test_gated_l1_touches_only_the_gate_and_aux_uses_frozen_decoder():
    sae = make("gated", D, M, l1_coefficient=1.0)
    x = randn(64, D) + 0.5
    sae.loss(x, 0)["l1"].backward()
    for p in (sae.r_mag, sae.b_mag, sae.W_dec):
        assert p.grad is None or float(p.grad.abs().max()) == 0.0
    assert float(sae.W_enc.grad.abs().max()) > 0 and float(sae.b_enc.grad.abs().max()) > 0
    sae.zero_grad(set_to_none=True)
    sae.loss(x, 0)["aux"].backward()
    for p in (sae.r_mag, sae.b_mag, sae.W_dec):  # (b_dec still gets the encoder-side gradient)
        assert p.grad is None or float(p.grad.abs().max()) == 0.0
    assert float(sae.W_enc.grad.abs().max()) > 0


def test_gated_forward_formula():
    sae = make("gated", D, M)
    with torch.no_grad():
        sae.r_mag.copy_(randn(M, seed=3) * 0.3)
        sae.b_mag.copy_(randn(M, seed=4) * 0.1)
        sae.b_enc.copy_(randn(M, seed=5) * 0.1)
    x = randn(10, D)
    xc = x - sae.b_dec
    gate = xc @ sae.W_enc + sae.b_enc
    mag = xc @ (sae.W_enc * sae.r_mag.exp()) + sae.b_mag
    torch.testing.assert_close(sae.encode(x), (gate > 0).float() * torch.relu(mag))


# ---- AEN --------------------------------------------------------------------------------------
def test_aen_weights_are_one_before_warmup_then_follow_the_ema_rule():
    sae = make("aen", D, M, warmup_steps=5, ramp_steps=4, gamma=1.5, w_min=0.2, w_max=4.0, l1_coefficient=0.01)
    xs = [randn(32, D, seed=s) + 0.2 for s in range(8)]
    ema = torch.zeros(M, dtype=torch.float64)
    for t, x in enumerate(xs):
        out = sae.forward_train(x, t)
        sae.update(out, t)
        ema = 0.999 * ema + 0.001 * out.codes.abs().mean(0).double()
    torch.testing.assert_close(sae.ema.double(), ema, rtol=1e-5, atol=1e-9)
    # by hand, in float64
    e = ema.clamp_min(1e-5)
    ref = e.topk(math.ceil(0.01 * M)).values.mean()
    w = (ref / e).pow(1.5).clamp(0.2, 4.0)
    for t in range(5):
        assert torch.equal(sae.effective_weights(t), torch.ones(M))
    for t, f in ((5, 0.0), (6, 0.25), (7, 0.5), (9, 1.0), (100, 1.0)):
        torch.testing.assert_close(sae.effective_weights(t).double(), 1 + (w - 1) * f, rtol=1e-5, atol=1e-6)
    assert (w - 1).abs().max() > 0.1  # the weights are really non-trivial
    # the l1 term uses them: mean_b sum_j w_eff,j |h_j|
    x = xs[0]
    h = sae.encode(x)
    terms = sae.loss(x, 7)
    torch.testing.assert_close(terms["l1"].double(), 0.01 * (h.double() @ (1 + (w - 1) * 0.5)).mean(),
                               rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(terms["l2"], 1e-4 * h.pow(2).sum(1).mean())
    torch.testing.assert_close(terms["mse"], (x - sae(x)).pow(2).mean())


def test_aen_weights_in_a_training_run_stay_one_before_warmup(small_world):
    sae = make("aen", 16, 32, warmup_steps=30, ramp_steps=10)
    seen = []
    orig = sae.effective_weights

    def spy(t):
        w = orig(t)
        seen.append((t, w.clone()))
        return w

    sae.effective_weights = spy
    train(sae, small_world, 64 * 45, 64, lr=3e-3, progress=False)
    assert all(torch.equal(w, torch.ones(32)) for t, w in seen if t < 30)
    assert any((w != 1).any() for t, w in seen if t > 31)


# ---- frozen baselines -------------------------------------------------------------------------
def test_frozen_parts_stay_frozen(small_world):
    fd = make("frozen_decoder", 16, 32, k=3)
    fe = make("frozen_encoder", 16, 32, k=3)
    W_dec0, W_enc0, b_enc0 = fd.W_dec.detach().clone(), fe.W_enc.detach().clone(), fe.b_enc.detach().clone()
    fe_dec0 = fe.W_dec.detach().clone()
    train(fd, small_world, 64 * 20, 64, lr=1e-2, progress=False)
    train(fe, small_world, 64 * 20, 64, lr=1e-2, progress=False)
    assert torch.equal(fd.W_dec, W_dec0)
    assert torch.equal(fe.W_enc, W_enc0) and torch.equal(fe.b_enc, b_enc0)
    assert not torch.equal(fe.W_dec, fe_dec0)  # what is not frozen does train


def test_soft_frozen_decoder_stays_within_cosine_and_reaches_the_boundary(small_world):
    sae = make("soft_frozen_decoder", 16, 32, k=3)
    train(sae, small_world, 64 * 60, 64, lr=5e-2, progress=False)
    cos = ((sae.W_dec * sae.W_dec_init).sum(1) / sae.W_dec.norm(dim=1)).detach()
    assert float(cos.min()) >= 0.8 - 1e-5
    assert not torch.equal(sae.W_dec, sae.W_dec_init)
    # a step that pushes rows far away: after_step brings them back to the boundary
    with torch.no_grad():
        sae.W_dec.add_(3.0 * randn(32, 16, seed=9))
    sae.after_step(0)
    cos = ((sae.W_dec * sae.W_dec_init).sum(1) / sae.W_dec.norm(dim=1)).detach()
    assert float(cos.min()) >= 0.8 - 1e-5 and float(cos.min()) < 0.8 + 1e-5
    torch.testing.assert_close(sae.W_dec.detach().norm(dim=1), torch.ones(32), rtol=0, atol=1e-5)


def test_project_to_cone_is_the_closest_point():
    W0 = common.random_unit_rows(200, 8, generator(0))
    W = common.random_unit_rows(200, 8, generator(1))
    P = W.clone()
    project_to_cone_(P, W0, 0.8)
    cos_before = (W * W0).sum(1)
    cos_after = (P * W0).sum(1)
    inside = cos_before >= 0.8
    assert torch.equal(P[inside], W[inside])
    torch.testing.assert_close(cos_after[~inside], torch.full(((~inside).sum(),), 0.8), rtol=0, atol=1e-6)
    torch.testing.assert_close(P.norm(dim=1), torch.ones(200), rtol=0, atol=1e-6)
    # no unit vector in the cone is closer: compare with random feasible candidates
    C = common.random_unit_rows(5000, 8, generator(2))
    for j in torch.nonzero(~inside).flatten()[:5]:
        feasible = C[(C @ W0[j]) >= 0.8]
        if len(feasible):
            assert float((P[j] - W[j]).norm()) <= float((feasible - W[j]).norm(dim=1).min()) + 1e-6


# ---- LISTA / Matryoshka / relu_l1 -------------------------------------------------------------
@pytest.mark.parametrize("T", [0, 1, 4])
def test_lista_at_init_runs_ista(T):
    sae = make("lista", D, M, n_iterations=T, ista_lambda=0.05)
    Dm = sae.W_dec.detach().double()
    L = float(torch.linalg.matrix_norm(Dm, ord=2) ** 2)
    x = randn(12, D).double()
    z = torch.zeros(12, M, dtype=torch.float64)
    for _ in range(T + 1):  # non-negative ISTA from z = 0
        z = torch.relu(z + (x - z @ Dm) @ Dm.T / L - 0.05 / L)
    torch.testing.assert_close(sae.encode(x.float()).double(), z, rtol=1e-4, atol=1e-5)


def test_matryoshka_loss_is_the_mean_of_prefix_reconstructions():
    sae = make("matryoshka", D, M, k=4, prefixes=(6, 20, M))
    x = randn(32, D)
    out = sae.forward_train(x, 0)
    z = out.codes
    prefix = [((x - (z[:, :p] @ sae.W_dec[:p] + sae.b_dec)) ** 2).mean() for p in (6, 20, M)]
    torch.testing.assert_close(out.terms["prefix_mse"], torch.stack(prefix).mean())
    with pytest.raises(ValueError, match="prefixes"):
        make("matryoshka", D, M, prefixes=(10, 5, M))
    with pytest.raises(ValueError, match="prefixes"):
        make("matryoshka", D, M, prefixes=(10, 20))


def test_relu_l1_decoder_norm_weighted_penalty():
    sae = make("relu_l1", D, M, decoder_norm_penalty=True, l1_coefficient=0.1)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.1, 2.0, M)[:, None])
    x = randn(20, D)
    z = sae.encode(x)
    torch.testing.assert_close(sae.loss(x, 0)["l1"], 0.1 * (z * sae.W_dec.norm(dim=1)).sum(1).mean())


def test_sparsity_warmup_scales_the_penalty():
    sae = make("relu_l1", D, M, sparsity_warmup_steps=10, l1_coefficient=0.1)
    x = randn(20, D)
    full = sae.loss(x, 50)["l1"]
    torch.testing.assert_close(sae.loss(x, 4)["l1"], full * 0.5)
    torch.testing.assert_close(sae.loss(x, 9)["l1"], full)
