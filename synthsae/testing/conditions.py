"""The quantities that sparse-recovery theorems are stated in, computed exactly (float64).

Atoms are the rows of D (m, d); a support S is a list of atom indices, D_S = D[S] (k, d),
G_SS = D_S D_Sᵀ. For j ∉ S, c_j = d_j D_Sᵀ G_SS⁻¹ (k,) are the coefficients of the projection of
d_j onto span(D_S) (Tropp's D_S⁺ d_j). These helpers are used by `theory/` and by users writing
their own claims; every one is a direct transcription of the formula in its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from synthsae.errors import require

F64 = torch.float64


def _support(D: torch.Tensor, support) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    D = torch.as_tensor(D, dtype=F64)
    S = torch.as_tensor(support, dtype=torch.long).flatten()
    m = D.shape[0]
    require(len(S) >= 1 and len(torch.unique(S)) == len(S) and int(S.min()) >= 0 and int(S.max()) < m,
            "support", S.tolist()[:10], "must be distinct atom indices", f"1 to {m} distinct ints in [0, {m})")
    off = torch.ones(m, dtype=torch.bool)
    off[S] = False
    return D, S, off


def projection_coefficients(D, support) -> torch.Tensor:
    """C (m − k, k): row j = c_j = d_j D_Sᵀ (D_S D_Sᵀ)⁻¹ for each atom j ∉ S (in index order).
    Raises ValueError if the atoms of S are linearly dependent."""
    D, S, off = _support(D, support)
    DS = D[S]
    G = DS @ DS.T
    L, info = torch.linalg.cholesky_ex(G)
    require(int(info) == 0, "support", S.tolist()[:10], "its atoms are linearly dependent (G_SS singular)",
            "a support whose atoms are linearly independent")
    return torch.cholesky_solve(DS @ D[off].T, L).T


def exact_recovery_coefficient(D, support) -> float:
    """Tropp's ERC(S) = max_{j ∉ S} ‖D_S⁺ d_j‖₁ (Tropp 2004, Thm 3.1). ERC < 1 ⇒ OMP and basis
    pursuit recover every signal supported on S; 0 if S holds every atom."""
    C = projection_coefficients(D, support)
    return float(C.abs().sum(1).max()) if C.shape[0] else 0.0


def coherence_erc_bound(mu: float, k: int) -> float:
    """Tropp 2004 (Thm 3.5): ERC(S) ≤ kμ / (1 − (k − 1)μ) for every |S| = k, valid while (k−1)μ < 1.
    The bound is < 1 exactly when k < (1 + 1/μ)/2."""
    require((k - 1) * mu < 1, "(mu, k)", (mu, k), "the bound needs (k − 1)μ < 1", "a smaller k or μ")
    return k * mu / (1 - (k - 1) * mu)


def irrepresentable_value(D, support, signs, weights=None, nonneg: bool = False) -> float:
    """max_{j ∉ S} |c_j · (w_S ∘ s_S)| / w_j  (Zhao & Yu 2006, with adaptive weights w as in Zou 2006).

    The (weighted) irrepresentable condition holds iff this is < 1. For non-negative codes the
    condition is one-sided: max_j c_j · (w_S ∘ s_S) / w_j (no absolute value). weights: None (all 1)
    or (m,) > 0. signs: (k,) in {−1, +1}, aligned with `support`.
    """
    D, S, off = _support(D, support)
    s = torch.as_tensor(signs, dtype=F64).flatten()
    require(s.shape == S.shape and bool((s.abs() == 1).all()), "signs", s.tolist()[:10],
            "one sign ±1 per support index", f"{len(S)} values in {{-1, +1}}")
    w = torch.ones(D.shape[0], dtype=F64) if weights is None else torch.as_tensor(weights, dtype=F64).flatten()
    v = projection_coefficients(D, S) @ (w[S] * s) / w[off]
    if v.numel() == 0:
        return 0.0
    return float(v.max() if nonneg else v.abs().max())


@dataclass(frozen=True)
class Witness:
    """The primal–dual witness for one sample (Wainwright 2009).

    z (m,): z_S = (G_SS + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S), zero off S. sign_consistent: sign(z_S) = s_S.
    dual_value: max_{j ∉ S} |d_j · r| / (λ1 w_j) with r = x − z D (one-sided for nonneg); strict dual
    feasibility is dual_value < 1. `succeeds` = both. When it succeeds and D_S has full row rank
    (or λ2 > 0), z is the unique solution of the (weighted) Lasso / elastic net.
    """

    z: torch.Tensor
    sign_consistent: bool
    dual_value: float

    @property
    def succeeds(self) -> bool:
        return self.sign_consistent and self.dual_value < 1


def primal_dual_witness(x, D, support, signs, l1: float, l2: float = 0.0, weights=None,
                        nonneg: bool = False) -> Witness:
    """Build the witness for sample x (d,) with the guessed support S and signs s_S (see `Witness`)."""
    D, S, off = _support(D, support)
    x = torch.as_tensor(x, dtype=F64).flatten()
    s = torch.as_tensor(signs, dtype=F64).flatten()
    require(l1 > 0, "l1", l1, "the witness divides by λ1", "l1 > 0")
    w = torch.ones(D.shape[0], dtype=F64) if weights is None else torch.as_tensor(weights, dtype=F64).flatten()
    DS = D[S]
    A = DS @ DS.T + l2 * torch.eye(len(S), dtype=F64)
    zS = torch.linalg.solve(A, DS @ x - l1 * w[S] * s)
    z = torch.zeros(D.shape[0], dtype=F64)
    z[S] = zS
    u = (x - z @ D) @ D[off].T / (l1 * w[off])
    dual = float((u if nonneg else u.abs()).max()) if u.numel() else 0.0
    return Witness(z, bool((torch.sign(zS) == s).all()), dual)
