"""Sparse true codes and sample batches."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class SparseCodes:
    """True codes of a batch in coordinate form, sorted by (row, col).

    rows, cols: (nnz,) long — sample index and feature index of each active (non-zero) entry.
    values: (nnz,) — the code values z[row, col]. n, m: the dense shape.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    n: int
    m: int

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def to_dense(self) -> torch.Tensor:
        """(n, m) dense codes z, zeros off the support."""
        z = torch.zeros(self.n, self.m, dtype=self.values.dtype, device=self.values.device)
        z[self.rows, self.cols] = self.values
        return z

    def active(self) -> torch.Tensor:
        """(n, m) bool: which features are active in each sample."""
        a = torch.zeros(self.n, self.m, dtype=torch.bool, device=self.rows.device)
        a[self.rows, self.cols] = True
        return a

    def l0(self) -> torch.Tensor:
        """(n,) number of active features per sample."""
        return torch.bincount(self.rows, minlength=self.n)

    def to_sparse(self) -> torch.Tensor:
        """The codes as a coalesced torch sparse COO tensor (n, m)."""
        return torch.sparse_coo_tensor(torch.stack([self.rows, self.cols]), self.values, (self.n, self.m),
                                       is_coalesced=True, check_invariants=False)

    def to(self, device=None, dtype=None) -> "SparseCodes":
        return SparseCodes(self.rows.to(device), self.cols.to(device), self.values.to(device=device, dtype=dtype),
                           self.n, self.m)


@dataclasses.dataclass(frozen=True)
class Batch:
    """A batch of samples. x: (n, d) = codes D + bias + noise. codes: the true `SparseCodes`.
    noise: (n, d) the noise added (zeros if the world is noiseless)."""

    x: torch.Tensor
    codes: SparseCodes
    noise: torch.Tensor
