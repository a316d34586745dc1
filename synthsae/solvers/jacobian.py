"""Active-set Jacobian of the coding map and the elastic-net Lipschitz bound (atoms are rows of D).

On a stable support S, z_S(x) = (D_S D_Sᵀ + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S), so
∂z_S/∂x = (D_S D_Sᵀ + λ2 I)⁻¹ D_S (|S| × d) and ∂z_j/∂x = 0 off S (weights held fixed).
"""

from __future__ import annotations

import torch

from synthsae.errors import require
from synthsae.solvers.problem import as_float64
from synthsae.solvers.refit import padded_support


def lipschitz_bound(D, l2: float) -> float:
    """min(‖D‖₂/λ2, 1/(2√λ2)): Lipschitz constant of x → z*(x) for the elastic net (λ2 > 0)."""
    require(not isinstance(l2, bool) and isinstance(l2, float | int) and l2 > 0, "l2", l2,
            "the bound needs strong convexity", "l2 > 0")
    D = as_float64("D", D, torch.device("cpu") if not isinstance(D, torch.Tensor) else D.device)
    return min(float(torch.linalg.matrix_norm(D, 2)) / l2, 1.0 / (2.0 * l2 ** 0.5))


def active_set_jacobian(z, D, l2: float = 0.0) -> torch.Tensor:
    """∂z/∂x per sample, (n, m, d) float64, from codes z (n, m) (or a `SparseCodeResult`, whose
    l2 is then used). Raises ValueError where D_S D_Sᵀ + λ2 I is singular."""
    if hasattr(z, "support"):
        z, l2 = z.z, z.l2
    z = torch.as_tensor(z)
    D = as_float64("D", D, z.device)
    require(z.ndim == 2 and z.shape[1] == D.shape[0], "z.shape", tuple(z.shape), "does not match D",
            f"(n, {D.shape[0]})")
    idx, valid = padded_support(z != 0)
    n, k = idx.shape
    DS = D[idx] * valid[:, :, None]
    eye = torch.eye(k, dtype=D.dtype, device=D.device)
    A = DS @ DS.transpose(1, 2) + l2 * eye
    A = torch.where(valid[:, :, None] & valid[:, None, :], A, eye.expand_as(A) * (~valid[:, :, None]))
    L, info = torch.linalg.cholesky_ex(A)
    require(bool((info == 0).all()), "z", f"{int((info != 0).sum())} samples", "D_S D_Sᵀ + λ2 I is singular "
            "on their support", "linearly independent active atoms or l2 > 0")
    JS = torch.cholesky_solve(DS, L)
    J = torch.zeros(n, D.shape[0], D.shape[1], dtype=D.dtype, device=D.device)
    J.scatter_add_(1, idx[:, :, None].expand_as(JS), JS * valid[:, :, None])
    return J
