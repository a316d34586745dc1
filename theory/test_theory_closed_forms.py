"""Claims 1: closed forms of sparse coding on orthonormal dictionaries.

Objective (synthsae scale, atoms are rows of D (m, d), x ≈ zD):
    P(z) = ½‖x − zD‖² + λ1 Σ_j w_j |z_j| + (λ2/2)‖z‖²   (z ≥ 0 when nonneg).
With D Dᵀ = I the problem separates per coordinate (plus the part of x outside span D, which does
not depend on z), so each z_j minimises ½(z_j − c_j)² + λ1 w_j |z_j| + (λ2/2) z_j², c = xDᵀ.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthsae.solvers import SparseCodingProblem, sparse_code
from synthsae.testing.dictionaries import orthonormal_dictionaries, orthonormal_dictionary, spiked_dictionary

# cvxpy costs tens of ms per sample: fewer examples than the profile, scaled with it.
CVXPY_EXAMPLES = max(6, settings.default.max_examples // 3)


def soft_threshold(c, t):
    return torch.sign(c) * (c.abs() - t).clamp(min=0)


def closed_form(X, D, l1, l2, w, nonneg):
    """The textbook formula, written independently of `synthsae.solvers.closed_form`."""
    c = X @ D.T
    t = l1 * (torch.ones(D.shape[0], dtype=torch.float64) if w is None else w)
    z = torch.relu(c - t) if nonneg else soft_threshold(c, t)
    return z / (1 + l2)


@st.composite
def orthonormal_problems(draw):
    D = draw(orthonormal_dictionaries(d=st.integers(2, 12)))
    m, d = D.shape
    n = draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    X = torch.randn(n, d, generator=g, dtype=torch.float64) * draw(st.sampled_from([0.3, 1.0, 3.0]))
    l1 = draw(st.floats(0.01, 1.0))
    l2 = draw(st.sampled_from([0.0, draw(st.floats(0.01, 2.0))]))
    w = 0.25 + 2 * torch.rand(m, generator=g, dtype=torch.float64) if draw(st.booleans()) else None
    return X, D, l1, l2, w, draw(st.booleans())


@given(orthonormal_problems())
def test_fast_solvers_equal_the_closed_form(problem):
    """**Claim**: on an orthonormal dictionary the Lasso code is soft thresholding, z = soft(Dx, λ1 w);
    the elastic net divides it by 1 + λ2; the non-negative versions are ReLU(Dx − λ1 w)/(1 + λ2).
    **Source**: Donoho & Johnstone 1994 (soft thresholding); Zou & Hastie 2005 (elastic net, eq. for
    orthogonal designs); separability of P when D Dᵀ = I.
    **Conditions**: D with orthonormal rows (m ≤ d), any x, λ1 > 0, λ2 ≥ 0, weights > 0, both signs.
    **Check**: the `closed_form` and the `active_set` and `auto` solvers all equal the formula to
    1e-12 (absolute, float64, |x| ≲ 10), the support is exactly where |c_j| > λ1 w_j, and the
    certificate (gap, KKT) passes.
    """
    X, D, l1, l2, w, nonneg = problem
    want = closed_form(X, D, l1, l2, w, nonneg)
    for method in ("closed_form", "active_set", "auto"):
        res = sparse_code(X, D, l1, l2, weights=w, nonneg=nonneg, method=method)
        assert res.all_converged, method
        assert torch.allclose(res.z, want, rtol=0, atol=1e-12), method
        assert torch.equal(res.support, want != 0), method


@given(orthonormal_problems())
@settings(max_examples=CVXPY_EXAMPLES)
def test_cvxpy_reference_equals_the_closed_form(problem):
    """**Claim**: as above, checked against the transparent reference (cvxpy + Clarabel).
    **Source**: as above.
    **Conditions**: as above.
    **Check**: method "cvxpy" certifies its solution (z* = 0 included), which equals the formula to
    1e-9 with the same support, and its objective is within 1e-8 (relative) of the closed form's.
    """
    X, D, l1, l2, w, nonneg = problem
    want = closed_form(X, D, l1, l2, w, nonneg)
    res = sparse_code(X, D, l1, l2, weights=w, nonneg=nonneg, method="cvxpy", warn=False)
    prob = SparseCodingProblem.create(X, D, l1, l2, w, nonneg)
    assert res.all_converged
    assert torch.allclose(res.z, want, rtol=0, atol=1e-9)
    assert torch.equal(res.support, want != 0)
    assert torch.allclose(prob.objective(res.z), prob.objective(want), rtol=1e-8, atol=1e-12)


def test_soft_thresholding_is_not_the_lasso_once_atoms_are_correlated():
    """**Claim** (fails as predicted): the closed form needs orthonormal atoms. With two co-active
    atoms of cosine c ≠ 0, soft(Dx, λ1) is not the Lasso solution: its KKT violation grows with |c|.
    **Source**: the per-coordinate separation only holds when D Dᵀ = I.
    **Conditions**: spiked dictionaries (ρ = 0, 0.3, 0.6; m = 8, d = 8), x = d_0 + d_1, λ1 = 0.1.
    **Check**: at ρ = 0 (gaussian atoms, |c| ≈ 1/√d) and above, soft thresholding violates KKT by
    more than 1e-3 (relative), while the exact solver's certificate passes; the violation increases
    with ρ.
    """
    violations = []
    for rho in (0.0, 0.3, 0.6):
        D = spiked_dictionary(8, 8, rho, seed=3)
        X = (D[0] + D[1])[None]
        prob = SparseCodingProblem.create(X, D, 0.1)
        naive = soft_threshold(X @ D.T, 0.1)
        violations.append(float(prob.kkt_violation(naive)))
        assert sparse_code(X, D, 0.1).all_converged
    assert min(violations) > 1e-3
    assert violations == sorted(violations)


def test_cvxpy_certifies_the_zero_solution():
    """**Claim**: when every |c_j| = |d_j·x| ≤ λ1 w_j the closed form is z = 0, and the reference
    solver returns it with a passing certificate.
    **Source**: soft(c, λ1) = 0 for |c| ≤ λ1 (claim 1).
    **Conditions**: orthonormal D (3, 4), x with |xDᵀ| < λ1 = 1.
    **Check**: method "cvxpy" returns exact zeros and `converged` is True.
    """
    D = orthonormal_dictionary(3, 4, seed=0)
    X = 0.3 * D[0:1] - 0.2 * D[1:2]
    res = sparse_code(X, D, 1.0, method="cvxpy", warn=False)
    assert res.all_converged and not bool(res.support.any())
