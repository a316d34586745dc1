"""Claims 3: Lipschitz continuity of the coding map x ↦ z*(x) and of the fit map x ↦ z*(x) D.

Objective: ½‖x − zD‖² + λ1 Σ_j |z_j| + (λ2/2)‖z‖² (z ≥ 0 when nonneg); atoms are rows of D (m, d).
Derivation of the bounds (used in the docstrings below): subtracting the optimality conditions at x
and x′ and using monotonicity of ∂‖·‖₁ gives λ2‖Δz‖² + ‖ΔzD‖² ≤ ⟨Δx, ΔzD⟩. Hence ‖ΔzD‖ ≤ ‖Δx‖
(any λ2 ≥ 0), λ2‖Δz‖² ≤ ‖ΔzD‖(‖Δx‖ − ‖ΔzD‖) ≤ ‖Δx‖²/4 and λ2‖Δz‖ ≤ ‖D‖₂‖Δx‖.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthsae.solvers import active_set_jacobian, lipschitz_bound, sparse_code
from synthsae.testing.dictionaries import dictionaries, two_atom_dictionary

HALF = max(6, settings.default.max_examples // 2)


@st.composite
def input_pairs(draw, d):
    """Pairs (x, x′) of inputs (n, d) at distances from 1e-4 to far apart."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    n = 4
    X = 2 * torch.randn(n, d, generator=g, dtype=torch.float64)
    step = torch.randn(n, d, generator=g, dtype=torch.float64)
    scale = torch.tensor([1e-4, 1e-2, 1.0, 3.0], dtype=torch.float64)[:, None]
    return X, X + scale * step


@given(D=dictionaries(), l1=st.floats(0.05, 1.0), l2=st.floats(0.01, 2.0), nonneg=st.booleans(), data=st.data())
@settings(max_examples=HALF)
def test_elastic_net_map_is_lipschitz(D, l1, l2, nonneg, data):
    """**Claim**: for λ2 > 0 the elastic-net coding map satisfies
    ‖z*(x) − z*(x′)‖ ≤ min(‖D‖₂/λ2, 1/(2√λ2)) ‖x − x′‖, for every pair of inputs.
    **Source**: strong convexity of the elastic net (module docstring; AEN-SAE, arXiv 2605.05341).
    **Conditions**: any unit-norm D (gaussian, spiked, orthonormal; m = d..4d), λ1 ∈ [0.05, 1]
    (smaller λ1 only makes the solves slower, see test_theory_uniqueness.py),
    λ2 ∈ [0.01, 2], signed or non-negative codes, input pairs at distances 1e-4..10.
    **Check**: `lipschitz_bound(D, λ2)` equals the formula recomputed here (1e-12 relative), and
    ‖Δz‖ ≤ L‖Δx‖ (1 + 1e-9) + 1e-12 for certified exact codes.
    """
    L = lipschitz_bound(D, l2)
    want = min(float(torch.linalg.svdvals(D)[0]) / l2, 1 / (2 * l2 ** 0.5))
    assert abs(L - want) <= 1e-12 * want
    X, Y = data.draw(input_pairs(D.shape[1]))
    zx, zy = (sparse_code(A, D, l1, l2, nonneg=nonneg) for A in (X, Y))
    assert zx.all_converged and zy.all_converged
    dz = (zx.z - zy.z).norm(dim=1)
    dx = (X - Y).norm(dim=1)
    assert (dz <= L * dx * (1 + 1e-9) + 1e-12).all()


@given(D=dictionaries(), l1=st.floats(0.05, 1.0), l2=st.sampled_from([0.0, 0.1, 1.0]), nonneg=st.booleans(),
       data=st.data())
@settings(max_examples=HALF)
def test_fit_map_is_firmly_nonexpansive(D, l1, l2, nonneg, data):
    """**Claim**: the fit map f(x) = z*(x) D is 1-Lipschitz for the Lasso as well as the elastic net;
    more precisely it is firmly non-expansive: ‖f(x) − f(x′)‖² ≤ ⟨x − x′, f(x) − f(x′)⟩.
    **Source**: module docstring (the fit map of the Lasso is a proximal/projection-type operator:
    x − f(x) is the projection of x onto the dual feasible set when λ2 = 0).
    **Conditions**: as above, λ2 ∈ {0, 0.1, 1} (λ2 = 0: the Lasso, whose code map itself is not
    globally Lipschitz, see below).
    **Check**: ‖Δf‖² ≤ ⟨Δx, Δf⟩ + 1e-10·max(1, ‖Δx‖²), and so ‖Δf‖ ≤ ‖Δx‖ (1 + 1e-9).
    """
    X, Y = data.draw(input_pairs(D.shape[1]))
    fx, fy = (sparse_code(A, D, l1, l2, nonneg=nonneg).z @ D for A in (X, Y))
    df, dx = fx - fy, X - Y
    dx2 = (dx * dx).sum(1)
    assert ((df * df).sum(1) <= (dx * df).sum(1) + 1e-10 * dx2.clamp(min=1)).all()
    assert (df.norm(dim=1) <= dx.norm(dim=1) * (1 + 1e-9)).all()


@given(D=dictionaries(kind="gaussian"), l1=st.floats(0.02, 0.5), l2=st.sampled_from([0.0, 0.05, 0.5]),
       seed=st.integers(0, 2**31 - 1))
@settings(max_examples=HALF)
def test_local_lipschitz_constant_is_one_over_sigma_min(D, l1, l2, seed):
    """**Claim**: on a region where the support S and signs are constant, the code map is affine with
    Jacobian J = (D_S D_Sᵀ + λ2 I)⁻¹ D_S, whose operator norm is σ_min/(σ_min² + λ2) maximised over the
    singular values σ of D_S; for the Lasso (λ2 = 0) it is exactly 1/σ_min(D_S).
    **Source**: the active-set linear system (e.g. Tibshirani & Taylor 2012, "Degrees of freedom in
    lasso problems", Lemma 2); SVD of D_S.
    **Conditions**: gaussian dictionaries (general position), random inputs, λ2 ∈ {0, 0.05, 0.5}.
    **Check**: ‖J‖₂ from `active_set_jacobian` equals max_σ σ/(σ² + λ2) over the singular values
    of D_S, to 1e-9 relative.
    """
    g = torch.Generator().manual_seed(seed)
    X = 2 * torch.randn(3, D.shape[1], generator=g, dtype=torch.float64)
    res = sparse_code(X, D, l1, l2)
    J = active_set_jacobian(res, D)
    for i in range(X.shape[0]):
        S = res.support[i]
        if not S.any():
            assert J[i].abs().max() == 0
            continue
        sig = torch.linalg.svdvals(D[S])
        want = float((sig / (sig**2 + l2)).max())
        assert abs(float(torch.linalg.matrix_norm(J[i], 2)) - want) <= 1e-9 * want


def test_lasso_map_blows_up_as_coactive_atoms_become_collinear():
    """**Claim** (the Lasso's "geometric instability"): with two co-active atoms of cosine c, the
    Lasso map's local Lipschitz constant is 1/σ_min(D_S) = 1/√(1 − c), unbounded as c → 1, while the
    elastic net stays below 1/(2√λ2) and the fit map stays 1-Lipschitz.
    **Source**: claim above with D_S D_Sᵀ = [[1, c], [c, 1]] (eigenvalues 1 ± c); AEN-SAE paper
    (arXiv 2605.05341) on the instability of the ℓ1 code map.
    **Conditions**: D = two unit atoms in R^3 with cosine c ∈ {0.5, 0.9, 0.99, 0.999, 0.9999},
    x = 2 d_0 + 2 d_1, λ1 = 0.1 (both atoms active for every c: z_S = 2 − 0.1/(1 + c)), a step of
    size ε = 1e-4·√(1 − c) along the worst direction (the top right-singular vector of J).
    **Check**: the finite-difference ratio ‖Δz‖/‖Δx‖ equals 1/√(1 − c) to 1e-6 (relative), so it
    exceeds 99 at c = 0.9999; the elastic net (λ2 = 0.1) ratio is ≤ 1/(2√0.1) at every c; the fit
    map ratio is ≤ 1 + (rounding of the two solves: 64 ε cond(D_S D_Sᵀ) ‖z‖/ε_step ≤ 4e-6).
    """
    ratios = []
    for c in (0.5, 0.9, 0.99, 0.999, 0.9999):
        D = two_atom_dictionary(3, c)
        x = (2 * D[0] + 2 * D[1])[None]
        res = sparse_code(x, D, 0.1)
        assert res.support.all()
        J = active_set_jacobian(res, D)[0]
        v = torch.linalg.svd(J).Vh[0]
        eps = 1e-4 * (1 - c) ** 0.5
        moved = sparse_code(x + eps * v, D, 0.1)
        assert moved.support.all()
        ratio = float((moved.z - res.z).norm()) / eps
        assert abs(ratio - 1 / (1 - c) ** 0.5) <= 1e-6 / (1 - c) ** 0.5
        ratios.append(ratio)
        fit = float(((moved.z - res.z) @ D).norm()) / eps
        # rounding of the two solves: ~ε·cond(D_S D_Sᵀ)·‖z‖, divided by the step
        rounding = 64 * torch.finfo(torch.float64).eps * (2 / (1 - c)) * float(res.z.norm()) / eps
        assert fit <= 1 + rounding
        en = [sparse_code(a, D, 0.1, 0.1).z for a in (x, x + eps * v)]
        assert float((en[1] - en[0]).norm()) / eps <= 1 / (2 * 0.1 ** 0.5)
    assert ratios == sorted(ratios) and ratios[-1] > 99


def test_elastic_net_bound_is_tight():
    """**Claim** (sharpness): the 1/(2√λ2) bound is tight up to rounding — the ratio can approach it,
    so a smaller universal constant would be false.
    **Source**: equality in λ2‖Δz‖² ≤ ‖ΔzD‖(‖Δx‖ − ‖ΔzD‖) needs ‖ΔzD‖ = ‖Δx‖/2, reached on a support
    S with a singular value σ = √λ2: the local constant σ/(σ² + λ2) is then 1/(2√λ2).
    **Conditions**: D_S = two atoms with 1 − c = λ2 = 0.01 (σ_min = √(1 − c) = √λ2), the same
    construction as the test above.
    **Check**: the worst-direction finite-difference ratio is within 1e-6 of 1/(2√λ2) = 5.
    """
    l2 = 0.01
    c = 1 - l2
    D = two_atom_dictionary(3, c)
    x = (2 * D[0] + 2 * D[1])[None]
    res = sparse_code(x, D, 0.1, l2)
    assert res.support.all()
    v = torch.linalg.svd(active_set_jacobian(res, D)[0]).Vh[0]
    eps = 1e-5
    ratio = float((sparse_code(x + eps * v, D, 0.1, l2).z - res.z).norm()) / eps
    assert abs(ratio - 1 / (2 * l2 ** 0.5)) <= 1e-6 * ratio
    assert ratio <= lipschitz_bound(D, l2) * (1 + 1e-9)
