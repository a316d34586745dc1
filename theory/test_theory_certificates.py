"""Claims 2: optimality certificates (duality gap and KKT) for the four problem kinds.

Kinds: Lasso (λ2 = 0), non-negative Lasso, elastic net (λ2 > 0), adaptive elastic net (per-feature
or per-sample weights); the last two are drawn with and without the non-negativity constraint.
The dual point θ(z) and Dual(θ) are those of `synthsae.solvers.problem` (module docstring there).
"""

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from synthsae.solvers import SparseCodingProblem, sparse_code
from synthsae.testing import sparse_coding_problems

EPS = torch.finfo(torch.float64).eps
# four parametrized kinds share the profile's example budget
PER_KIND = max(6, settings.default.max_examples // 2)
# The four kinds: Lasso, non-negative Lasso, elastic net and adaptive elastic net (sign constraint drawn).
KINDS = [("lasso", False), ("lasso", True), ("elastic_net", None), ("adaptive_elastic_net", None)]


def random_feasible(prob, seed, scale):
    """Random codes (dense, sparse and scaled ones) that satisfy the constraints of `prob`."""
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(prob.n, prob.m, generator=g, dtype=torch.float64)
    z = z * (torch.rand(prob.n, prob.m, generator=g) < 0.4)
    return z.abs() if prob.nonneg else z


@pytest.mark.parametrize("kind,nonneg", KINDS)
@given(data=st.data())
@settings(max_examples=PER_KIND)
def test_weak_duality_gap_bounds_suboptimality(kind, nonneg, data):
    """**Claim**: weak duality — for every feasible z, gap(z) = P(z) − Dual(θ(z)) ≥ 0, and since
    Dual(θ) ≤ P* for every dual-feasible θ, gap(z) ≥ P(z) − P*: the gap certifies how far z is
    from optimal. With λ2 > 0, P is λ2-strongly convex, so also ‖z − z*‖² ≤ 2 gap(z)/λ2.
    **Source**: Lagrangian duality (Boyd & Vandenberghe 2004, §5.2); gap-safe certificates
    (Fercoq, Gramfort & Salmon 2015); strong convexity: P(z) − P* ≥ (λ2/2)‖z − z*‖².
    **Conditions**: planted problems of each kind (`sparse_coding_problems`), random feasible codes
    at three scales, the planted code and z = 0.
    **Check**: gap ≥ −64 ε·max(1, P) (rounding); P(z) − P(z*) ≤ gap(z) + 1e-9·max(1, P) with z*
    the certified solution; for λ2 > 0, ‖z − z*‖² ≤ 2 gap/λ2 (1 + 1e-9) + 1e-12.
    """
    inst = data.draw(sparse_coding_problems(kind=kind, nonneg=nonneg, n=st.just(2)))
    prob = SparseCodingProblem.create(**inst.kwargs())
    best = sparse_code(**inst.kwargs())
    assert best.all_converged
    seed = data.draw(st.integers(0, 2**31 - 1))
    cands = [random_feasible(prob, seed + i, s) for i, s in enumerate((0.1, 1.0, 5.0))]
    for z in cands + [inst.z_true, torch.zeros_like(inst.z_true)]:
        P, gap = prob.objective(z), prob.gap(z)
        tol = 1e-9 * P.clamp(min=1)
        assert (gap >= -64 * EPS * P.clamp(min=1)).all()
        assert (P - best.objective <= gap + tol).all()
        if prob.l2 > 0:
            dist2 = ((z - best.z) ** 2).sum(1)
            assert (dist2 <= 2 * gap / prob.l2 * (1 + 1e-9) + 1e-12).all()


@pytest.mark.parametrize("kind,nonneg", KINDS)
@given(data=st.data())
@settings(max_examples=PER_KIND)
def test_zero_gap_and_kkt_at_the_optimum(kind, nonneg, data):
    """**Claim**: strong duality — at the optimum the gap is 0 and the KKT conditions hold:
    with g = D(x − z*D) − λ2 z*, g_j = λ1 w_j sign(z*_j) on the support and |g_j| ≤ λ1 w_j off it
    (non-negative: g_j ≤ λ1 w_j). Conversely a code that is not optimal has a positive gap.
    **Source**: Slater's condition holds (the constraints are affine), so strong duality holds
    (Boyd & Vandenberghe 2004, §5.2.3, §5.5.3).
    **Conditions**: planted problems of each kind.
    **Check**: the certified solution has relative gap ≤ 1e-9 and relative KKT violation ≤ 1e-7,
    and the KKT conditions recomputed here from their definition hold to 1e-9·max(1, max|c|);
    its optimal value matches cvxpy's to 1e-8 (relative) wherever cvxpy certifies its answer; moving 10% of the way to z = 0 from a
    non-zero optimum gives a gap > 0.
    """
    inst = data.draw(sparse_coding_problems(kind=kind, nonneg=nonneg, n=st.just(2)))
    res = sparse_code(**inst.kwargs())
    assert res.all_converged and (res.rel_gap <= 1e-9).all() and (res.kkt_violation <= 1e-7).all()
    X, D, z = inst.X, inst.D, res.z
    pen = inst.l1 * (torch.ones(D.shape[0], dtype=torch.float64) if inst.weights is None else inst.weights)
    pen = pen.expand_as(z)
    g = (X - z @ D) @ D.T - inst.l2 * z
    tol = 1e-9 * (X @ D.T).abs().amax(1, keepdim=True).clamp(min=1)
    on = z != 0
    assert ((g - pen * torch.sign(z)).abs()[on] <= tol.expand_as(z)[on]).all()
    off_excess = (g if inst.nonneg else g.abs()) - pen
    assert (off_excess[~on] <= tol.expand_as(z)[~on]).all()
    if inst.nonneg:
        assert (z >= 0).all()
    # independent check of the optimal value (cvxpy certifies every planted problem: test below)
    ref = sparse_code(**inst.kwargs(), method="cvxpy", warn=False)
    prob = SparseCodingProblem.create(**inst.kwargs())
    ok = ref.converged
    assert torch.allclose(prob.objective(ref.z)[ok], res.objective[ok], rtol=1e-8, atol=1e-12)
    moved = 0.9 * z
    nonzero = on.any(1)
    assert (prob.gap(moved)[nonzero] > 0).all()


@given(sparse_coding_problems(kind="lasso", nonneg=True, n=st.just(2)))
@settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])  # stop at the first failure: no shrinking
def test_cvxpy_reference_certifies_every_planted_problem(inst):
    """**Claim**: the reference solver (method "cvxpy") returns a certified optimum for every planted
    problem, so it can serve as the independent check above.
    **Source**: the problems are convex QPs/SOCPs that Clarabel solves (Goulart & Chen 2024).
    **Conditions**: planted non-negative Lasso problems.
    **Check**: `converged` for every sample.
    """
    assert sparse_code(**inst.kwargs(), method="cvxpy", warn=False).all_converged
