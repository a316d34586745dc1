"""Claims 7: shrinkage — the ℓ1 bias on the true support, its reduction by adaptive weights, and
its absence for TopK with the true dictionary on an orthonormal world.

On a support S with signs s_S (atoms are rows of D, G_SS = D_S D_Sᵀ) the elastic-net optimality
conditions are linear: z_S = (G_SS + λ2 I)⁻¹ D_S x − λ1 (G_SS + λ2 I)⁻¹ (w_S ∘ s_S), i.e. the (ridge)
least-squares fit on S minus a bias proportional to λ1.
"""

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from synthsae.sae import make
from synthsae.solvers import adaptive_weights, sparse_code
from synthsae.testing import sparse_coding_problems
from synthsae.testing.conditions import exact_recovery_coefficient
from synthsae.testing.dictionaries import gaussian_dictionary
from synthsae.world import ExactlyK, Gaussian, Orthonormal, Uniform, World, WorldConfig

FEW = max(6, settings.default.max_examples // 3)


@given(sparse_coding_problems(n=st.just(3)))
def test_code_on_its_support_is_least_squares_minus_the_l1_bias(inst):
    """**Claim**: on the support S of the solution, z_S = LS_S − λ1 (G_SS + λ2 I)⁻¹ (w_S ∘ s_S), with
    LS_S = (G_SS + λ2 I)⁻¹ D_S x the (ridge) least-squares fit on S; for the Lasso (λ2 = 0, w = 1)
    this is LS − λ1 (D_S D_Sᵀ)⁻¹ s_S.
    **Source**: stationarity on S (Tibshirani 2013, eq. (9); Zou & Hastie 2005 for λ2 > 0).
    **Conditions**: planted problems of every kind (Lasso, elastic net, adaptive elastic net; signed
    or non-negative).
    **Check**: the certified code equals the formula recomputed here to 1e-9·max(1, |LS|).
    """
    res = sparse_code(**inst.kwargs())
    assert res.all_converged
    W = torch.ones_like(res.z) if inst.weights is None else inst.weights.expand_as(res.z)
    for i in range(res.z.shape[0]):
        S = res.support[i]
        if not S.any():
            continue
        A = inst.D[S] @ inst.D[S].T + inst.l2 * torch.eye(int(S.sum()), dtype=torch.float64)
        ls = torch.linalg.solve(A, inst.D[S] @ inst.X[i])
        bias = inst.l1 * torch.linalg.solve(A, W[i, S] * torch.sign(res.z[i, S]))
        assert torch.allclose(res.z[i, S], ls - bias, rtol=0, atol=1e-9 * max(1.0, float(ls.abs().max())))


@given(d=st.integers(8, 16), k=st.integers(1, 3), l1=st.floats(0.05, 0.3), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=FEW)
def test_adaptive_weights_shrink_the_bias(d, k, l1, seed):
    """**Claim**: with adaptive weights w_j = 1/(|z̃_j| + ε) from a first fit of codes larger than 1,
    the bias λ1 G_SS⁻¹(w_S ∘ s_S) is smaller than the Lasso's λ1 G_SS⁻¹ s_S: per coordinate on an
    orthonormal dictionary (|bias_j| = λ1 w_j < λ1), and in norm whenever max_j w_j < 1/κ(G_SS)
    (κ = condition number), since ‖G⁻¹(w∘s)‖ ≤ max w·√k/σ_min(G) < √k/σ_max(G) ≤ ‖G⁻¹s‖.
    **Source**: Zou 2006 (adaptive Lasso: large coefficients get small penalties); the inequality above.
    **Conditions**: noiseless x = zD, k = 1..3 planted codes with magnitudes U[2, 4], λ1 ∈ [0.05, 0.3],
    weights from a Lasso fit at the same λ1; gaussian D (m = 2d) with ERC(S) < 1 so both estimators
    select S (draws where the κ condition or the recovery fails are rejected), and orthonormal D.
    **Check**: on the orthonormal dictionary |z_ad − z| < |z_lasso − z| on every coordinate of S;
    on the gaussian one ‖z_ad − z‖ < ‖z_lasso − z‖, both with supports equal to S.
    """
    g = torch.Generator().manual_seed(seed)
    for D in (gaussian_dictionary(2 * d, d, seed), torch.linalg.qr(torch.randn(d, d, generator=g,
                                                                                  dtype=torch.float64))[0].T):
        m = D.shape[0]
        S = torch.randperm(m, generator=g)[:k]
        if D.shape[0] > d:
            assume(exact_recovery_coefficient(D, S) < 1)
        z = torch.zeros(m, dtype=torch.float64)
        z[S] = (2 + 2 * torch.rand(k, generator=g, dtype=torch.float64)) * (torch.randint(0, 2, (k,), generator=g) * 2 - 1)
        x = (z @ D)[None]
        lasso = sparse_code(x, D, l1).z[0]
        w = adaptive_weights(lasso)
        ad = sparse_code(x, D, l1, weights=w).z[0]
        assume(torch.equal(lasso != 0, z != 0) and torch.equal(ad != 0, z != 0))
        G = D[S] @ D[S].T
        sig = torch.linalg.svdvals(G)
        if D.shape[0] > d:
            assume(float(w[S].max()) < float(sig[-1] / sig[0]))
            assert (ad - z).norm() < (lasso - z).norm()
        else:
            assert ((ad - z)[S].abs() < (lasso - z)[S].abs()).all()


def _true_topk(world, k):
    """A TopK SAE whose decoder is the world's dictionary and whose encoder is its transpose."""
    sae = make("topk", d=world.d, m=world.m, k=k)
    with torch.no_grad():
        sae.W_dec.copy_(world.dictionary)
        sae.W_enc.copy_(world.dictionary.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_topk_with_the_true_dictionary_has_no_shrinkage_on_an_orthonormal_world():
    """**Claim**: on an orthonormal world with exactly k active features, TopK(k) with the true
    dictionary (encoder Dᵀ) returns the true codes: x Dᵀ = z D Dᵀ = z, and the top k entries are the
    true positive ones — no shrinkage, while the Lasso at λ1 shrinks every code by exactly λ1.
    On a non-orthogonal (gaussian) world the same encoder is biased by interference (x Dᵀ = z G).
    **Source**: Gao et al. 2024 (TopK SAEs avoid ℓ1 shrinkage); claim 1 (Lasso = soft thresholding).
    **Conditions**: d = 24, m = 16, k = 3, magnitudes U[1, 3], no noise, 512 samples (float32);
    gaussian world d = 24, m = 48 for the contrast.
    **Check**: orthonormal: |ẑ − z| ≤ 1e-5 everywhere and mean(ẑ/z) on the support = 1 ± 1e-5; the
    Lasso (λ1 = 0.2, non-negative) has ẑ = z − 0.2 on the support to 1e-6 (float32 samples); gaussian: max |ẑ − z| > 0.1.
    """
    world = World(WorldConfig(d=24, m=16, dictionary=Orthonormal(), firing=ExactlyK(k=3),
                              magnitudes=Uniform(low=1.0, high=3.0), seed=3))
    batch = world.sample(512, seed=4)
    z = batch.codes.to_dense()
    zhat = _true_topk(world, 3).encode(batch.x).detach()
    on = z != 0
    assert float((zhat - z).abs().max()) <= 1e-5
    assert abs(float((zhat[on] / z[on]).mean()) - 1) <= 1e-5
    lasso = sparse_code(batch.x, world.dictionary, 0.2, nonneg=True).z
    assert torch.allclose(lasso[on], z[on].double() - 0.2, rtol=0, atol=1e-6)
    other = World(WorldConfig(d=24, m=48, dictionary=Gaussian(), firing=ExactlyK(k=3),
                              magnitudes=Uniform(low=1.0, high=3.0), seed=3))
    b = other.sample(512, seed=4)
    assert float((_true_topk(other, 3).encode(b.x).detach() - b.codes.to_dense()).abs().max()) > 0.1
