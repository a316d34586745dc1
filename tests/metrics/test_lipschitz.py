import pytest
import torch

from synthsae.metrics import LinearSAE, encoder_lipschitz, jacobian_norms


def test_jacobian_norm_matches_explicit_jacobian():
    g = torch.Generator().manual_seed(0)
    W_enc, W_dec = torch.randn(8, 20, generator=g), torch.randn(20, 8, generator=g)
    sae = LinearSAE(W_enc, W_dec)
    x = torch.randn(40, 8, generator=g)
    few, many = jacobian_norms(sae, x, iters=5), jacobian_norms(sae, x, iters=400)
    norms = W_dec.norm(dim=1)
    for i in range(40):
        active = (x[i] @ W_enc > 0).float()
        J = (W_enc * active * norms).T  # (m, d): d c / d x in decoder units
        exact = torch.linalg.matrix_norm(J, 2).item()
        assert few[i] <= exact * (1 + 1e-6)  # power iteration only ever under-estimates
        assert many[i] == pytest.approx(exact, rel=1e-4)


def test_empirical_estimates_respect_the_global_bound():
    # for a ReLU encoder, ||c(x) - c(x')|| <= ||diag(||W_dec||) W_enc^T||_2 ||x - x'||
    g = torch.Generator().manual_seed(1)
    W_enc, W_dec = torch.randn(8, 20, generator=g), torch.randn(20, 8, generator=g)
    sae = LinearSAE(W_enc, W_dec, b_enc=torch.randn(20, generator=g))
    bound = torch.linalg.matrix_norm(W_enc.T * W_dec.norm(dim=1)[:, None], 2).item()
    m = encoder_lipschitz(sae, torch.randn(200, 8, generator=g), power_iters=20)
    for key in ("lipschitz.encoder_pairs_max", "lipschitz.encoder_near_max", "lipschitz.encoder_jacobian_max"):
        assert 0 < m[key] <= bound * (1 + 1e-5), key


def test_decoder_row_scaling_does_not_change_the_estimate():
    g = torch.Generator().manual_seed(2)
    W_enc, W_dec = torch.randn(6, 10, generator=g), torch.randn(10, 6, generator=g)
    s = 0.1 + torch.rand(10, generator=g) * 4
    x = torch.randn(50, 6, generator=g)
    a = encoder_lipschitz(LinearSAE(W_enc, W_dec), x, power_iters=10)
    b = encoder_lipschitz(LinearSAE(W_enc / s, W_dec * s[:, None]), x, power_iters=10)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4), k
