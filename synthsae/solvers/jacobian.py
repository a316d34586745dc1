"""Active-set Jacobian of the coding map and the elastic-net Lipschitz bound (atoms are rows of D).

On a stable support S, z_S(x) = (D_S D_Sᵀ + λ2 I)⁻¹ (D_S x − λ1 w_S ∘ s_S), so
∂z_S/∂x = (D_S D_Sᵀ + λ2 I)⁻¹ D_S (|S| × d) and ∂z_j/∂x = 0 off S (weights held fixed).

Two forms: `support_jacobian` keeps only the support rows, (n, K, d) with K = max |S| (what the
Lipschitz and steering metrics need: same singular values, same products); `active_set_jacobian`
scatters them into the dense (n, m, d) tensor and refuses (ValueError) when that would exceed
`max_bytes`, instead of exhausting memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from synthsae.errors import require
from synthsae.solvers.problem import as_float64
from synthsae.solvers.refit import padded_support

# Default memory budget of the dense (n, m, d) Jacobian: 2 GiB.
DENSE_MAX_BYTES = 2 * 1024**3


def lipschitz_bound(D, l2: float) -> float:
    """min(‖D‖₂/λ2, 1/(2√λ2)): Lipschitz constant of x → z*(x) for the elastic net (λ2 > 0)."""
    require(not isinstance(l2, bool) and isinstance(l2, float | int) and l2 > 0, "l2", l2,
            "the bound needs strong convexity", "l2 > 0")
    D = as_float64("D", D, torch.device("cpu") if not isinstance(D, torch.Tensor) else D.device)
    return min(float(torch.linalg.matrix_norm(D, 2)) / l2, 1.0 / (2.0 * l2 ** 0.5))


@dataclass(frozen=True, eq=False)
class SupportJacobian:
    """∂z/∂x restricted to each sample's support. rows (n, K): atom index of block row k (padding
    rows point at atom 0 and are zero); valid (n, K); blocks (n, K, d) float64. m: number of atoms."""

    rows: torch.Tensor
    valid: torch.Tensor
    blocks: torch.Tensor
    m: int

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """J v per sample: v (n, d) -> (n, m), the first-order change of z for a change v of x."""
        out = torch.zeros(self.blocks.shape[0], self.m, dtype=self.blocks.dtype, device=self.blocks.device)
        return out.scatter_add_(1, self.rows, torch.einsum("nkd,nd->nk", self.blocks, v.to(self.blocks)))

    def spectral_norm(self) -> torch.Tensor:
        """‖∂z/∂x‖₂ per sample (n,) (zero rows do not change singular values)."""
        if self.blocks.shape[1] == 0:
            return torch.zeros(self.blocks.shape[0], dtype=self.blocks.dtype, device=self.blocks.device)
        return torch.linalg.matrix_norm(self.blocks, 2)

    def dense(self) -> torch.Tensor:
        """The dense (n, m, d) Jacobian."""
        n, _, d = self.blocks.shape
        J = torch.zeros(n, self.m, d, dtype=self.blocks.dtype, device=self.blocks.device)
        return J.scatter_add_(1, self.rows[:, :, None].expand_as(self.blocks), self.blocks)


def _codes(z, D, l2):
    if hasattr(z, "support"):
        z, l2 = z.z, z.l2
    z = torch.as_tensor(z)
    D = as_float64("D", D, z.device)
    require(z.ndim == 2 and z.shape[1] == D.shape[0], "z.shape", tuple(z.shape), "does not match D",
            f"(n, {D.shape[0]})")
    return z, D, l2


def support_jacobian(z, D, l2: float = 0.0) -> SupportJacobian:
    """∂z/∂x on each support, from codes z (n, m) (or a `SparseCodeResult`, whose l2 is then used).
    Memory n·K·d with K = max support size. Raises ValueError where D_S D_Sᵀ + λ2 I is singular."""
    z, D, l2 = _codes(z, D, l2)
    idx, valid = padded_support(z != 0)
    k = idx.shape[1]
    DS = D[idx] * valid[:, :, None]
    A = DS @ DS.transpose(1, 2) + l2 * torch.eye(k, dtype=D.dtype, device=D.device)
    A.diagonal(dim1=1, dim2=2).add_(~valid * (1.0 - l2))  # identity on padding rows
    L, info = torch.linalg.cholesky_ex(A)
    require(bool((info == 0).all()), "z", f"{int((info != 0).sum())} samples", "D_S D_Sᵀ + λ2 I is singular "
            "on their support", "linearly independent active atoms or l2 > 0")
    return SupportJacobian(idx, valid, torch.cholesky_solve(DS, L) * valid[:, :, None], D.shape[0])


def active_set_jacobian(z, D, l2: float = 0.0, max_bytes: int = DENSE_MAX_BYTES) -> torch.Tensor:
    """∂z/∂x per sample, dense (n, m, d) float64, from codes z (n, m) (or a `SparseCodeResult`, whose
    l2 is then used). Raises ValueError where D_S D_Sᵀ + λ2 I is singular, or when the dense tensor
    would take more than `max_bytes` (use `support_jacobian`, or call this on chunks of rows)."""
    zz, DD, _ = _codes(z, D, l2)
    need = zz.shape[0] * DD.shape[0] * DD.shape[1] * 8
    shape = f"n·m·d = {zz.shape[0]}·{DD.shape[0]}·{DD.shape[1]} ({need / 2**30:.2f} GiB)"
    require(need <= max_bytes, "z, D", shape,
            f"the dense Jacobian would exceed max_bytes = {max_bytes / 2**30:.2f} GiB",
            "support_jacobian(...) (support rows only), fewer rows per call, or a larger max_bytes")
    return support_jacobian(z, D, l2).dense()
