"""Sparse true codes and sample batches."""

from __future__ import annotations

import dataclasses
import warnings

import torch

# `SparseCodes.matmul` multiplies by blocks of about this many bytes of the dictionary: several per
# core's L2 cache, well within a shared L3 (measured fastest on the 2-core EPYC we benchmark on).
BLOCK_BYTES = 4 << 20


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # torch warns that CSR support is "beta"; addmm with it is stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


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

    def to_csr(self) -> torch.Tensor:
        """The codes as a torch sparse CSR tensor (n, m): the fast layout for x = z D (`torch.addmm`)."""
        crow = torch.zeros(self.n + 1, dtype=torch.long, device=self.rows.device)
        torch.cumsum(torch.bincount(self.rows, minlength=self.n), 0, out=crow[1:])
        return _csr(crow, self.cols, self.values, (self.n, self.m))

    def matmul(self, D: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """x = add + z D, (n, d): D (m, d) dense with atoms as rows; add (d,) or (n, d), optional.

        On the CPU the product runs over blocks of about BLOCK_BYTES of D (all samples at a time):
        each block of atoms is read from memory once and reused from cache by every sample that
        uses it, instead of re-reading a random atom per active feature (about 2x faster at 16k x 768,
        where D is larger than the cache). Same sums, grouped by block (float round-off may differ).
        """
        n, d = self.n, D.shape[1]
        x = (torch.zeros((), dtype=D.dtype, device=D.device) if add is None else add).expand(n, d).clone()
        per_block = max(1, BLOCK_BYTES // max(1, d * D.element_size()))
        if D.device.type != "cpu" or per_block >= self.m:
            return x.addmm_(self.to_csr(), D)
        n_blocks = -(-self.m // per_block)
        block = torch.div(self.cols, per_block, rounding_mode="floor")
        order = torch.sort(block, stable=True).indices  # events of each block together, still row-major
        block = torch.index_select(block, 0, order)
        cols = torch.index_select(self.cols, 0, order) - block * per_block
        values = torch.index_select(self.values, 0, order)
        counts = torch.bincount(block * n + torch.index_select(self.rows, 0, order), minlength=n_blocks * n)
        crow = torch.zeros(n_blocks, n + 1, dtype=torch.long)
        torch.cumsum(counts.view(n_blocks, n), 1, out=crow[:, 1:])
        start = 0
        for b, end in enumerate(torch.cumsum(crow[:, -1], 0).tolist()):
            lo, hi = b * per_block, min(self.m, (b + 1) * per_block)
            if end > start:
                x.addmm_(_csr(crow[b], cols[start:end], values[start:end], (n, hi - lo)), D[lo:hi])
            start = end
        return x

    def to(self, device=None, dtype=None) -> "SparseCodes":
        return SparseCodes(self.rows.to(device), self.cols.to(device), self.values.to(device=device, dtype=dtype),
                           self.n, self.m)


@dataclasses.dataclass(frozen=True)
class Batch:
    """A batch of samples. x: (n, d) = codes D + bias + noise. codes: the true `SparseCodes`.
    noise: (n, d) the noise added; for a noiseless world a read-only broadcast view of zeros
    (`torch.zeros(d).expand(n, d)`: no memory per sample; copy it before writing into it)."""

    x: torch.Tensor
    codes: SparseCodes
    noise: torch.Tensor
