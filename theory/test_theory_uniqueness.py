"""Claims 4: uniqueness of the Lasso solution (Tibshirani 2013, "The lasso problem and uniqueness").

Atoms are rows of D (m, d) — Tibshirani's "columns of the design X" are our atoms. With the
equicorrelation set E = {j : |d_j·r| = λ1} (r = x − z*D, the same for every solution), the solution
is unique when the atoms in E are linearly independent (his Lemma 2); atoms in general position
(true with probability 1 for continuous random atoms) give this, and then |supp z*| ≤ min(m, d)
(his Lemma 3 / Lemma 14).
"""

import torch
from hypothesis import given
from hypothesis import strategies as st

from synthsae.solvers import SparseCodingProblem, sparse_code
from synthsae.testing.dictionaries import gaussian_dictionary


def equicorrelation_set(X, D, z, l1, rtol=1e-9):
    """E (n, m) bool: |d_j·r| ≥ λ1 (1 − rtol)."""
    return ((X - z @ D) @ D.T).abs() >= l1 * (1 - rtol)


@given(d=st.integers(2, 6), ratio=st.sampled_from([2, 3, 4]), l1=st.floats(0.005, 0.5),
       seed=st.integers(0, 2**31 - 1))
def test_general_position_gives_a_unique_solution_with_at_most_d_nonzeros(d, ratio, l1, seed):
    """**Claim**: if the atoms are in general position, the Lasso solution is unique and has at most
    d non-zeros, even when m ≫ d.
    **Source**: Tibshirani 2013, Lemma 3 (general position ⇒ uniqueness) and Lemma 14 / Lemma 2
    (|E| ≤ d and D_E of full rank).
    **Conditions**: gaussian atoms (general position with probability 1), m = 2d..4d, d ≤ 6, random
    inputs with |x| ~ 1 and λ1 ∈ [0.005, 0.5] (small λ1 drives the support to its maximum d).
    **Check**: the certified solution has ≤ d non-zeros; the equicorrelation set (|d_j·r| ≥ λ1(1 −
    1e-9)) equals the support, whose atoms are linearly independent (σ_min(D_S) > 1e-6); the
    reference solver (cvxpy) returns the same code to 1e-7 wherever it certifies its answer.
    """
    D = gaussian_dictionary(ratio * d, d, seed)
    X = torch.randn(2, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    res = sparse_code(X, D, l1)
    assert res.all_converged
    assert (res.support.sum(1) <= d).all()
    assert torch.equal(equicorrelation_set(X, D, res.z, l1), res.support)
    for i in range(X.shape[0]):
        S = res.support[i]
        if S.any():
            assert float(torch.linalg.svdvals(D[S]).min()) > 1e-6
    ref = sparse_code(X, D, l1, method="cvxpy", warn=False)
    ok = ref.converged
    assert torch.allclose(ref.z[ok], res.z[ok], rtol=0, atol=1e-7)


def test_duplicate_atoms_break_uniqueness_and_the_d_bound():
    """**Claim** (fails as predicted): without general position the Lasso can have infinitely many
    solutions, some with more than d non-zeros.
    **Source**: Tibshirani 2013, §2 (duplicated columns); the objective depends on z_0 + z_1 only
    when d_0 = d_1.
    **Conditions**: d = 2, atoms e_0, e_0, e_1, e_1 (two exact duplicates), x = (1, 1), λ1 = 0.2.
    **Check**: the code (0.8, 0, 0.8, 0) and the code (0.4, 0.4, 0.4, 0.4) that splits each pair's
    mass have the same objective (1e-12) and both have duality gap ≤ 1e-12 (so both are optimal,
    by weak duality, claim 2: no solver involved); the split code
    has 4 > d = 2 non-zeros; the equicorrelation set (4 atoms) has dependent atoms, so Lemma 2
    does not apply.
    """
    D = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    X = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    prob = SparseCodingProblem.create(X, D, 0.2)
    # soft thresholding of each coordinate of x, put on one atom of each pair or split over both
    one = torch.tensor([[0.8, 0.0, 0.8, 0.0]], dtype=torch.float64)
    split = torch.tensor([[0.4, 0.4, 0.4, 0.4]], dtype=torch.float64)
    assert abs(float(prob.objective(split) - prob.objective(one))) <= 1e-12
    assert float(prob.gap(split)) <= 1e-12 and float(prob.gap(one)) <= 1e-12
    assert int((split != 0).sum()) == 4 > D.shape[1]
    E = equicorrelation_set(X, D, one, 0.2)[0]
    assert int(E.sum()) == 4 and int(torch.linalg.matrix_rank(D[E])) == 2


def test_active_set_certifies_full_size_supports():
    """**Claim**: the Lasso solution with |S| = d exists (claim above) and the active-set method finds it.
    **Source**: Tibshirani 2013 (|S| ≤ d is attained generically as λ1 → 0); Lawson–Hanson swaps.
    **Conditions**: gaussian D (32, 8), six random inputs, λ1 = 0.01.
    **Check**: `method="active_set"` certifies every sample (each solution has 8 = d non-zeros).
    """
    D = gaussian_dictionary(32, 8, 0)
    X = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = sparse_code(X, D, 0.01, method="active_set", warn=False)
    assert res.all_converged
