"""The matching-pursuit SAE: the pursuit itself, its stopping rules, and equivalence with SAELens."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthsae._rng import generator
from synthsae.sae import SAE, make, train
from synthsae.sae.matching_pursuit import pursue
from synthsae.testing import gaussian_dictionary, orthonormal_dictionaries, sparse_code_matrix

D, M = 16, 48


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=generator(seed))


def mp_sae(k=4, seed=0, **hp) -> SAE:
    return make("matching_pursuit", D, M, k=k, seed=seed, **hp)


# ---- the pursuit ------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(Dict=orthonormal_dictionaries(d=st.integers(2, 16)), data=st.data())
def test_orthonormal_dictionary_exact_code_in_k_iterations(Dict, data):
    """Orthonormal rows, x = z D with exactly k positive codes: k iterations find z, residual 0."""
    m = Dict.shape[0]
    k = data.draw(st.integers(1, m))
    z = sparse_code_matrix(5, m, k, 0.5, 2.0, True, data.draw(st.integers(0, 2**31 - 1)))
    p = pursue(z @ Dict, Dict, k, trace=True)
    torch.testing.assert_close(p.codes(m), z, rtol=0, atol=1e-12)
    assert p.residual.abs().max() < 1e-12
    assert p.idx.shape == (5, k)
    assert torch.equal(p.idx.sort(1).values, z.nonzero()[:, 1].view(5, k).sort(1).values)  # no repeats


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(4, 64), k=st.integers(1, 24))
def test_residual_norm_decreases_by_each_value(seed, m, k):
    """Coherent dictionary, arbitrary inputs: ||r_t||^2 = ||r_{t-1}||^2 - v_t^2 (unit rows), so the
    residual norm never increases; codes are >= 0 with at most k non-zeros."""
    Dict = gaussian_dictionary(m, 8, seed)
    x = torch.randn(6, 8, generator=generator(seed), dtype=torch.float64)
    p = pursue(x, Dict, k, trace=True)
    sq = p.norms.pow(2)
    torch.testing.assert_close(sq[:-1] - sq[1:], p.vals.T.pow(2), rtol=0, atol=1e-10)
    assert (p.norms[1:] <= p.norms[:-1] + 1e-12).all()
    z = p.codes(m)
    assert (z >= 0).all() and ((z != 0).sum(1) <= k).all()
    torch.testing.assert_close(x - z @ Dict, p.residual, rtol=0, atol=1e-10)


def test_picks_the_largest_positive_correlation_and_may_repick():
    """Two atoms at 120 degrees: the pursuit alternates and re-picks atom 0 (its code accumulates);
    a negative correlation is never picked (codes are non-negative)."""
    Dict = torch.tensor([[1.0, 0.0], [-0.5, 3**0.5 / 2]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [-0.1, -1.0]], dtype=torch.float64)
    p = pursue(x, Dict, 3)
    assert p.idx[0].tolist() == [0, 1, 0]
    assert p.vals[0, 0] == 1.0 and p.vals[0, 2] > 0
    assert torch.equal(p.vals[1], torch.zeros(3, dtype=torch.float64))  # x2 is anti-correlated with both
    z = p.codes(2)
    torch.testing.assert_close(z[0, 0], p.vals[0, 0] + p.vals[0, 2])


def test_stopping_rules():
    Dict = torch.tensor([[1.0, 0.0], [-0.5, 3**0.5 / 2]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [0.0, 1e-4]], dtype=torch.float64)
    # duplicate support: row 0 picks 0, 1, then 0 again (added, support unchanged -> stop)
    p = pursue(x[:1], Dict, 10, stop_on_duplicate_support=True)
    assert p.idx.shape[1] == 3 and p.vals[0, 2] > 0
    # a residual below the threshold stops a sample (row 1 at once), the others go on
    p = pursue(x, Dict, 3, residual_threshold=1e-3)
    assert (p.vals[1, 1:] == 0).all() and (p.vals[0] > 0).all()
    p = pursue(x, Dict, 3)  # threshold 0: never stops
    assert (p.vals[1] > 0).any()


def test_samples_are_independent_of_the_batch():
    """Early stopping is per sample: encoding a batch equals encoding each row alone."""
    sae = mp_sae(k=8)
    x = randn(12, D, seed=3) * torch.linspace(0.001, 2, 12).unsqueeze(1)  # some rows stop at once
    z = sae.encode(x)
    for i in range(12):
        torch.testing.assert_close(sae.encode(x[i:i + 1]), z[i:i + 1], rtol=0, atol=0)


# ---- the SAE ----------------------------------------------------------------------------------
def test_sae_recovers_exact_codes_on_an_orthonormal_decoder():
    """W_dec orthonormal, x = z W_dec + b_dec with 3 non-zeros, k = 6 iterations: the residual
    threshold stops after the 3 true picks, and the codes are z."""
    Q = gaussian_dictionary(D, D, 0)
    Q, _ = torch.linalg.qr(Q.T)
    sae = make("matching_pursuit", D, D, k=6)
    b = randn(D, seed=1)
    with torch.no_grad():
        sae.W_dec.copy_(Q.T.float())
        sae.b_dec.copy_(b)
    z = sparse_code_matrix(32, D, 3, 0.5, 2.0, True, 7).float()
    codes = sae.encode(z @ sae.W_dec.detach() + b)
    torch.testing.assert_close(codes, z, rtol=0, atol=1e-5)
    assert ((codes != 0).sum(1) == 3).all()


def test_tied_encoder_is_not_a_parameter():
    sae = mp_sae()
    names = {n for n, _ in sae.named_parameters()}
    assert names == {"W_dec", "b_dec"} and "W_enc" not in sae.state_dict()
    assert sae.W_enc.shape == (D, M) and not sae.W_enc.requires_grad
    assert torch.equal(sae.W_enc, sae.W_dec.detach().T) and torch.equal(sae.b_enc, torch.zeros(M))
    # pre_acts are the first iteration's correlations
    x = randn(5, D)
    torch.testing.assert_close(sae.pre_acts(x), (x - sae.b_dec) @ sae.W_dec.T)
    with pytest.raises(AttributeError):
        sae.no_such_attribute  # noqa: B018
    for twin in (copy.deepcopy(sae), pickle.loads(pickle.dumps(sae))):  # Ray ships SAEs pickled
        assert torch.equal(twin.encode(x), sae.encode(x)) and torch.equal(twin.W_enc, twin.W_dec.detach().T)


def test_loss_terms_and_differentiable_encoder():
    sae = mp_sae()
    x = randn(20, D) + 0.3
    terms = sae.loss(x)
    assert set(terms) == {"mse", "total"} and torch.equal(terms["mse"], terms["total"])
    torch.testing.assert_close(terms["mse"], (sae(x) - x).pow(2).mean())
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(sae.encode(xi).sum(), xi)
    assert g.abs().sum() > 0  # the Jacobian-based Lipschitz metric can read it


def test_resampling_keeps_the_tie(small_world):
    """`resample_dead` writes decoder rows only (the tied encoder follows), rows stay unit norm."""
    sae = make("matching_pursuit", small_world.d, 128, k=3, dead_after_steps=5)
    train(sae, small_world, 64 * 20, 64, lr=3e-3, resample_every=10, progress=False)
    torch.testing.assert_close(sae.W_dec.detach().norm(dim=1), torch.ones(128), rtol=0, atol=1e-5)
    assert torch.equal(sae.W_enc, sae.W_dec.detach().T)


def test_invalid_config():
    with pytest.raises(ValueError, match="residual_threshold"):
        mp_sae(residual_threshold=-1.0)
    with pytest.raises(ValueError, match="k"):
        mp_sae(k=M + 1)


# ---- against SAELens --------------------------------------------------------------------------
@pytest.mark.parametrize("hp", [{}, {"residual_threshold": 0.0, "stop_on_duplicate_support": False},
                                {"residual_threshold": 0.5, "stop_on_duplicate_support": False}])
def test_equals_saelens_matching_pursuit(hp):
    """Same weights and inputs: SAELens's MatchingPursuitSAE gives the same codes, and its training
    SAE the same loss and gradients (its mse sums over d: d times ours)."""
    sl = pytest.importorskip("sae_lens", reason="sae-lens is an optional extra (synthsae[saelens])")
    from sae_lens.saes.sae import TrainStepInput

    ours = mp_sae(k=6, seed=2, **hp)
    with torch.no_grad():
        ours.b_dec.copy_(0.1 * randn(D, seed=5))
    x = randn(64, D, seed=6) + 0.3
    x[:4] *= 0.01  # a few small inputs: the residual threshold matters
    cfg = dict(d_in=D, d_sae=M, max_iterations=6, residual_threshold=ours.config.residual_threshold,
               stop_on_duplicate_support=ours.config.stop_on_duplicate_support)
    theirs = sl.MatchingPursuitSAE(sl.MatchingPursuitSAEConfig(**cfg))
    with pytest.warns(UserWarning, match="decoder_init_norm"):
        trainer = sl.MatchingPursuitTrainingSAE(sl.MatchingPursuitTrainingSAEConfig(**cfg))
    for model in (theirs, trainer):
        assert set(model.state_dict()) == {"W_dec", "b_dec"}
        model.load_state_dict({"W_dec": ours.W_dec.detach(), "b_dec": ours.b_dec.detach()})

    z = ours.encode(x)
    assert 0 < (z != 0).sum(1).float().mean() < 6  # the stopping rules are exercised
    torch.testing.assert_close(theirs.encode(x), z, rtol=1e-6, atol=1e-6)
    out = trainer.training_forward_pass(TrainStepInput(x, {}, None, 0, False))
    out.loss.backward()
    ours.loss(x)["total"].backward()
    torch.testing.assert_close(out.loss, D * ours.loss(x)["total"].detach(), rtol=1e-5, atol=0)
    for name in ("W_dec", "b_dec"):
        torch.testing.assert_close(getattr(trainer, name).grad, D * getattr(ours, name).grad, rtol=1e-5, atol=1e-6)
