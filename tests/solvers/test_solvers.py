"""Tests of synthsae.solvers: agreement with cvxpy, closed forms, certificates, KKT, bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthsae.solvers import (NotCertifiedWarning, SparseCodingProblem, active_set_jacobian, adaptive_weights,
                              lipschitz_bound, sparse_code)
from synthsae.testing.dictionaries import gaussian_dictionary, orthonormal_dictionary, spiked_dictionary
from synthsae.testing.problems import sparse_code_matrix, sparse_coding_problems

EPS = np.finfo(np.float64).eps


def planted(n, m, d, k, nonneg, seed, rho=None, noise=0.05):
    D = gaussian_dictionary(m, d, seed) if rho is None else spiked_dictionary(m, d, rho, seed)
    z = sparse_code_matrix(n, m, k, 0.5, 2.0, nonneg, seed)
    g = torch.Generator().manual_seed(seed + 7)
    return z @ D + noise * torch.randn(n, d, generator=g, dtype=torch.float64), D


CASES = [  # (kind, nonneg, d, m, l1, l2, rho)
    ("lasso", False, 10, 20, 0.1, 0.0, None), ("lasso", True, 16, 48, 0.05, 0.0, 0.5),
    ("elastic_net", False, 12, 36, 0.2, 0.3, 0.3), ("elastic_net", True, 8, 32, 0.1, 0.05, None),
    ("adaptive_elastic_net", False, 12, 24, 0.1, 0.1, None), ("adaptive_elastic_net", True, 16, 32, 0.3, 0.5, 0.7),
]


@pytest.mark.parametrize("kind,nonneg,d,m,l1,l2,rho", CASES)
@pytest.mark.parametrize("method", ["active_set", "fista"])
def test_fast_solvers_match_cvxpy(kind, nonneg, d, m, l1, l2, rho, method):
    X, D = planted(4, m, d, max(1, d // 4), nonneg, seed=d + m, rho=rho)
    w = adaptive_weights(sparse_code(X, D, l1, max(l2, 0.1), nonneg=nonneg).z) if kind.startswith("adaptive") else None
    fast = sparse_code(X, D, l1, l2, weights=w, nonneg=nonneg, method=method)
    ref = sparse_code(X, D, l1, l2, weights=w, nonneg=nonneg, method="cvxpy")
    assert fast.all_converged and ref.all_converged
    assert torch.equal(fast.support, ref.support)
    # both are exact refits on the same support: they agree to rounding of a small linear solve
    assert torch.allclose(fast.z, ref.z, rtol=0, atol=1e-9)
    assert (fast.rel_gap <= 1e-9).all()


@given(sparse_coding_problems(n=st.just(2)))
@settings(max_examples=15)
def test_property_auto_certifies_and_optimal(inst):
    res = sparse_code(**inst.kwargs())
    prob = SparseCodingProblem.create(**inst.kwargs())
    assert res.all_converged
    assert torch.equal(res.support, res.z != 0)
    # gap >= 0 up to rounding, and no planted code beats the certified optimum
    assert (res.gap >= -64 * EPS * res.objective.abs().clamp(min=1)).all()
    assert (prob.objective(inst.z_true) >= res.objective - 1e-9 * res.objective.clamp(min=1)).all()


@given(sparse_coding_problems(n=st.just(3)), st.integers(0, 10**6))
@settings(max_examples=25)
def test_gap_nonnegative_for_feasible_codes(inst, seed):
    prob = SparseCodingProblem.create(**inst.kwargs())
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(prob.n, prob.m, generator=g, dtype=torch.float64) * (torch.rand(prob.n, prob.m, generator=g) < 0.3)
    if inst.nonneg:
        z = z.abs()
    for cand in (z, inst.z_true, torch.zeros_like(z)):
        gap = prob.gap(cand)
        assert (gap >= -64 * EPS * prob.objective(cand).clamp(min=1)).all()


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_closed_form_orthonormal(nonneg, l2):
    D = orthonormal_dictionary(12, 12, 3)
    X = sparse_code_matrix(5, 12, 4, 0.05, 1.0, False, 4) @ D
    res = sparse_code(X, D, 0.2, l2, nonneg=nonneg, method="closed_form")
    c = X @ D.T
    want = (c - 0.2).clamp(min=0) if nonneg else torch.sign(c) * (c.abs() - 0.2).clamp(min=0)
    assert torch.allclose(res.z, want / (1 + l2), atol=1e-14)
    assert res.all_converged
    other = sparse_code(X, D, 0.2, l2, nonneg=nonneg, method="active_set")
    assert torch.equal(other.support, res.support) and torch.allclose(other.z, res.z, atol=1e-12)


def test_closed_form_rejects_non_orthonormal():
    with pytest.raises(ValueError, match="orthonormal"):
        sparse_code(torch.ones(1, 4, dtype=torch.float64), gaussian_dictionary(8, 4, 0), 0.1, method="closed_form")


def test_kkt_and_gap_detect_suboptimal():
    X, D = planted(3, 40, 10, 3, False, 1)
    res = sparse_code(X, D, 0.1)
    prob = SparseCodingProblem.create(X, D, 0.1)
    assert (prob.kkt_violation(res.z) <= 1e-10).all()
    worse = res.z * 0.9
    assert (prob.gap(worse) > 1e-6).all() and (prob.kkt_violation(worse) > 1e-4).all()


def test_matches_sklearn_with_scale_conversion():
    sk = pytest.importorskip("sklearn.linear_model")
    X, D = planted(2, 30, 10, 2, False, 5)
    res = sparse_code(X, D, 0.1)
    for i in range(2):
        # sklearn objective (1/(2 n_samples))‖y − Xw‖² + α‖w‖₁ with design Dᵀ: n_samples = d, α = λ1/d
        lasso = sk.Lasso(alpha=0.1 / D.shape[1], fit_intercept=False, tol=1e-12, max_iter=100000)
        lasso.fit(D.T.numpy(), X[i].numpy())
        assert np.allclose(lasso.coef_, res.z[i].numpy(), atol=1e-6)


def test_determinism():
    X, D = planted(6, 40, 12, 3, True, 2)
    a = sparse_code(X, D, 0.1, 0.1, nonneg=True)
    b = sparse_code(X, D, 0.1, 0.1, nonneg=True)
    assert torch.equal(a.z, b.z) and torch.equal(a.gap, b.gap)


def test_non_converged_warns_and_says_so():
    X, D = planted(4, 64, 16, 5, False, 3)
    with pytest.warns(NotCertifiedWarning):
        res = sparse_code(X, D, 0.01, method="fista", max_iter=2)
    assert not res.converged.all()


def test_numpy_and_float32_inputs_and_empty_batch():
    X, D = planted(2, 20, 8, 2, False, 6)
    a = sparse_code(X.numpy(), D.float().numpy(), 0.1)
    assert a.all_converged and a.z.dtype == torch.float64
    e = sparse_code(torch.zeros(0, 8), D, 0.1)
    assert e.z.shape == (0, 20)


def test_jacobian_matches_finite_differences_and_lipschitz():
    X, D = planted(3, 30, 10, 3, True, 8)
    res = sparse_code(X, D, 0.1, 0.2, nonneg=True)
    J = active_set_jacobian(res, D)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(3, 10, generator=g, dtype=torch.float64) * 1e-6
    res2 = sparse_code(X + v, D, 0.1, 0.2, nonneg=True)
    assert torch.equal(res.support, res2.support)
    assert torch.allclose(res2.z - res.z, torch.einsum("nmd,nd->nm", J, v), atol=1e-12)
    bound = lipschitz_bound(D, 0.2)
    assert (torch.linalg.matrix_norm(J, 2) <= bound * (1 + 1e-12)).all()


def test_adaptive_weights_formula():
    z = torch.tensor([[0.0, 2.0, -1.0]], dtype=torch.float64)
    assert torch.allclose(adaptive_weights(z, gamma=2.0, eps=0.5), torch.tensor([[4.0, 0.16, 1 / 2.25]], dtype=torch.float64))


D8 = gaussian_dictionary(6, 4, 0)
X8 = torch.ones(2, 4, dtype=torch.float64)


@pytest.mark.parametrize("kwargs,match", [
    (dict(X=torch.ones(2, 5)), "same d"),
    (dict(D=D8.T), "transposed"),
    (dict(X=torch.tensor([[1.0, float("nan"), 0, 0]] * 2)), "NaN"),
    (dict(D=torch.where(torch.eye(6, 4, dtype=torch.bool), float("inf"), D8)), "NaN or inf"),
    (dict(l1=-0.1), ">= 0"), (dict(l2=-1.0), ">= 0"), (dict(l1=0.0, l2=0.0), "no penalty"),
    (dict(weights=torch.ones(5)), "wrong shape"), (dict(weights=torch.zeros(6)), "> 0"),
    (dict(weights=-torch.ones(2, 6)), "> 0"), (dict(D=torch.cat([D8[:5], torch.zeros(1, 4)])), "zero-norm"),
    (dict(method="fistaa"), "Did you mean 'fista'"), (dict(tol=0.0), "tol"), (dict(max_iter=0), "max_iter"),
    (dict(X=torch.ones(4)), "2-D"),
])
def test_bad_input(kwargs, match):
    args = dict(X=X8, D=D8, l1=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        sparse_code(**args)


def test_lipschitz_bound_needs_strong_convexity():
    with pytest.raises(ValueError, match="strong convexity"):
        lipschitz_bound(D8, 0.0)


@pytest.mark.gpu
def test_cpu_gpu_parity():
    X, D = planted(50, 64, 16, 4, True, 9)
    a = sparse_code(X, D, 0.1, 0.1, nonneg=True)
    b = sparse_code(X, D, 0.1, 0.1, nonneg=True, device="cuda")
    assert b.all_converged and torch.equal(a.support, b.support.cpu())
    assert torch.allclose(a.z, b.z.cpu(), atol=1e-10)
