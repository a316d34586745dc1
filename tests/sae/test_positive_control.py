"""Positive control: on an orthonormal world an SAE initialized at the truth recovers every feature
(decoder rows vs true atoms: cosine 1), and a short training run does not destroy that.

World: D = a random rotation of the identity (m = d = 16, atoms are rows, orthonormal), exactly
k = 3 features fire per sample with magnitudes U[1, 2], plus N(0, 0.01^2) noise.
"""

from __future__ import annotations

import pytest
import torch

from synthsae._rng import generator
from synthsae.sae import available, make, train

D = 16


def recovery(W_dec: torch.Tensor, truth: torch.Tensor) -> float:
    """min over true atoms of the max |cosine| with a decoder row (1 = every atom found)."""
    W = W_dec / W_dec.norm(dim=1, keepdim=True)
    return float((truth @ W.T).abs().max(dim=1).values.min())


def init_at_truth(sae, truth):
    with torch.no_grad():
        sae.W_dec.copy_(truth)
        sae.W_enc.copy_(truth.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        if hasattr(sae, "S"):  # LISTA: the ISTA values for an orthonormal D (L = 1)
            sae.S.zero_()
            sae.theta.fill_(0.01)
        if hasattr(sae, "log_threshold"):
            sae.log_threshold.fill_(torch.log(torch.tensor(0.5)))
        if hasattr(sae, "W_dec_init"):
            sae.W_dec_init.copy_(truth)


HP = {"topk": {"k": 3}, "batchtopk": {"k": 3}, "matryoshka": {"k": 3}, "frozen_decoder": {"k": 3},
      "soft_frozen_decoder": {"k": 3}, "frozen_encoder": {"k": 3}}


# Matryoshka's objective does not have the truth as a stationary point even here: the small prefixes
# (and the shared b_dec) are pulled toward the data mean, so every row drifts a little (measured
# 0.986 after these 150 steps, all others >= 0.9997). Its bound is looser for that reason.
BOUND = {"matryoshka": 0.95}


@pytest.mark.parametrize("name", available())
def test_initialized_at_truth_recovers_and_survives_training(name, make_world):
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=generator(11), dtype=torch.float64))
    truth = Q.to(torch.float32)
    world = make_world(dictionary=truth, k=3, noise=0.01)
    sae = make(name, D, D, **HP.get(name, {}))
    init_at_truth(sae, truth)
    assert recovery(sae.W_dec.detach(), truth) > 1 - 1e-6
    h = train(sae, world, 64 * 150, 64, lr=1e-3, init_b_dec=None, progress=False)
    assert recovery(sae.W_dec.detach(), truth) > BOUND.get(name, 0.99)
    assert h.explained_variance[-1] > 0.9


@pytest.mark.parametrize("name", ["topk", "relu_l1"])
def test_negative_control_random_init_is_not_perfect(name, make_world):
    """The recovery score is not trivially 1: a random init scores far below."""
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=generator(11), dtype=torch.float64))
    sae = make(name, D, D, **HP.get(name, {}))
    assert recovery(sae.W_dec.detach(), Q.float()) < 0.9
