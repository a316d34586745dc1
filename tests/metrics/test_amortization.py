import pytest
import torch

from synthsae.metrics import LinearSAE
from synthsae.metrics.amortization import amortization_gap, exact_map_lipschitz
from synthsae.solvers import active_set_jacobian, sparse_code


def orthonormal(m, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:m].float()


def test_closed_form_sae_has_no_amortization_gap():
    # orthonormal D: the exact non-negative elastic-net code is ReLU(D x - l1) / (1 + l2)
    D, l1, l2 = orthonormal(8, 12), 0.1, 0.5
    sae = LinearSAE(D.T / (1 + l2), D, b_enc=torch.full((8,), -l1 / (1 + l2)))
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(1))
    m = amortization_gap(sae, x, l1, l2)
    assert m["amortization.objective_gap"] == pytest.approx(0.0, abs=1e-6)
    assert m["amortization.support_f1"] == 1.0
    assert m["amortization.code_error"] == pytest.approx(0.0, abs=1e-5)
    assert m["amortization.certified_fraction"] == 1.0


def test_a_worse_encoder_has_a_positive_gap():
    D, l1 = orthonormal(8, 12), 0.1
    sae = LinearSAE(D.T, D)  # no threshold: not the Lasso solution
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(2))
    assert amortization_gap(sae, x, l1, 0.0)["amortization.objective_gap"] > 0


def test_exact_map_lipschitz_respects_its_bound():
    g = torch.Generator().manual_seed(3)
    D = torch.randn(20, 10, generator=g, dtype=torch.float64)
    D = D / D.norm(dim=1, keepdim=True)
    x = torch.randn(40, 10, generator=g, dtype=torch.float64)
    m = exact_map_lipschitz(D, x, l1=0.1, l2=0.3)
    assert 0 < m["lipschitz.exact_near_max"] <= m["lipschitz.exact_bound"] * (1 + 1e-6)
    assert 0 < m["lipschitz.exact_jacobian_max"] <= m["lipschitz.exact_bound"] * (1 + 1e-6)
    # the support-restricted Jacobian gives the dense Jacobian's spectral norm
    dense = active_set_jacobian(sparse_code(x, D, 0.1, 0.3, nonneg=True), D)
    assert abs(m["lipschitz.exact_jacobian_max"] - float(torch.linalg.matrix_norm(dense, 2).max())) <= 1e-12
    # memory is n·K·d (K = largest support), not n·m·d: reported under a limit below n·m·d
    K = int(sparse_code(x, D, 0.1, 0.3, nonneg=True).support.sum(1).max())
    assert K < 20
    assert "lipschitz.exact_jacobian_max" in exact_map_lipschitz(D, x, 0.1, 0.3, jacobian_limit=40 * K * 10)
    assert "lipschitz.exact_jacobian_max" not in exact_map_lipschitz(D, x, 0.1, 0.3, jacobian_limit=40 * K * 10 - 1)


def test_evaluate_reports_amortization_and_exact_lipschitz():
    from synthsae.metrics import evaluate
    from synthsae.testing.metrics import ExplicitWorld

    D, l1, l2 = orthonormal(8, 12), 0.1, 0.5
    world = ExplicitWorld(D, [0.3] * 8, magnitudes=(0.5, 1.5))
    sae = LinearSAE(D.T / (1 + l2), D, b_enc=torch.full((8,), -l1 / (1 + l2)))
    r = evaluate(sae, world, n=500, metrics=["amortization"], amortization_l1=l1, amortization_l2=l2,
                 lipschitz_samples=32)
    assert r["amortization.objective_gap"] == pytest.approx(0.0, abs=1e-6)
    # orthonormal D: bound = min(1 / l2, 1 / (2 sqrt(l2))) and the map is ReLU(.)/(1 + l2): constant 1/(1 + l2)
    assert r["lipschitz.exact_bound"] == pytest.approx(min(1 / l2, 1 / (2 * l2 ** 0.5)))
    assert r["lipschitz.exact_jacobian_max"] == pytest.approx(1 / (1 + l2), rel=1e-6)
    no = evaluate(sae, world, n=500, metrics=["amortization"])
    assert "amortization_l1" in no.not_applicable["amortization"]
