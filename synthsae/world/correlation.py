"""Correlated firing through a Gaussian copula.

Feature j fires when g_j < Phi^-1(q_j), where g ~ N(0, C) and C is a correlation matrix (unit
diagonal). Each feature keeps its marginal q_j exactly; C sets how features co-fire. The copula
needs one Gaussian per feature and sample, so correlated sampling is dense: O(n m) (plus
O(n m r) for rank-r structure), unlike independent firing, which is sparse.

Three structures (family `CORRELATIONS`), each giving g = eta F^T + sqrt(diag) * eps with
eta ~ N(0, I_r), eps ~ N(0, I_m):
- `full`: a given matrix (validated: symmetric, unit diagonal, PSD; never silently repaired).
- `block`: consecutive blocks of `size` features with within-block correlation `rho` >= 0.
- `low_rank`: C = F F^T + diag(1 - rowsum(F^2)) with F ~ scale * N(0, 1), shape (m, rank).
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.registry import Registry

CORRELATIONS: Registry[type["Correlation"]] = Registry("correlation structure")


@dataclasses.dataclass(frozen=True)
class Correlation(Config):
    family = CORRELATIONS

    def factors(self, m: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(F (m, r), diag (m,)) float64 with C = F F^T + diag(diag) and unit diagonal."""
        raise NotImplementedError  # pragma: no cover


@CORRELATIONS.register("full")
@dataclasses.dataclass(frozen=True)
class Full(Correlation):
    """A given m x m correlation matrix (rows as lists)."""

    kind = "full"
    matrix: tuple[tuple[float, ...], ...] = ()

    def factors(self, m, generator):
        C = torch.tensor(self.matrix, dtype=torch.float64)
        return full_factor(C, m), torch.zeros(m, dtype=torch.float64)


def full_factor(C: torch.Tensor, m: int, field: str = "correlation(full).matrix") -> torch.Tensor:
    """Validate a correlation matrix C (m, m) and return F with F F^T = C (via eigh; PSD allowed)."""
    require(C.shape == (m, m), field, tuple(C.shape), "a correlation matrix is m x m", f"shape ({m}, {m})")
    require(bool(torch.isfinite(C).all()), field, "a matrix with NaN/inf", "entries must be finite", "finite values")
    asym = float((C - C.T).abs().max()) if m else 0.0
    require(asym <= 1e-8, field, f"max |C - C^T| = {asym:.3g}", "a correlation matrix is symmetric", "C == C^T")
    diag_err = float((torch.diagonal(C) - 1).abs().max()) if m else 0.0
    require(diag_err <= 1e-8, field, f"max |diag - 1| = {diag_err:.3g}", "a correlation matrix has unit diagonal",
            "C[j, j] == 1")
    evals, evecs = torch.linalg.eigh(C)
    if float(evals.min()) < -1e-8:
        fail(field, f"smallest eigenvalue {float(evals.min()):.4g}", "a correlation matrix is positive semi-definite",
             "a PSD matrix (nothing is repaired: fix the matrix, e.g. by clipping eigenvalues yourself)")
    return evecs * evals.clamp_min(0.0).sqrt()


@CORRELATIONS.register("block")
@dataclasses.dataclass(frozen=True)
class Block(Correlation):
    """Blocks of `size` consecutive features, correlation `rho` inside a block, 0 across blocks."""

    kind = "block"
    size: int = 8
    rho: float = 0.5

    def validate(self):
        require(self.size >= 1, "correlation(block).size", self.size, "a block holds at least one feature", "an int >= 1")
        require(0.0 <= self.rho <= 1.0, "correlation(block).rho", self.rho,
                "this structure supports non-negative within-block correlation", "a float in [0, 1] (or 'full')")

    def factors(self, m, generator):
        n_blocks = -(-m // self.size)
        F = torch.zeros(m, n_blocks, dtype=torch.float64)
        F[torch.arange(m), torch.arange(m) // self.size] = self.rho**0.5
        return F, torch.full((m,), 1.0 - self.rho, dtype=torch.float64)


@CORRELATIONS.register("low_rank")
@dataclasses.dataclass(frozen=True)
class LowRank(Correlation):
    """C = F F^T + diag(1 - rowsum(F^2)), F = scale * N(0, 1) of shape (m, rank) (as in SynthSAEBench).

    If some row has rowsum(F^2) >= 1 the matrix is not a correlation matrix; SAELens then rescales
    those rows silently. We raise instead, naming how many rows fail (lower `scale` or `rank`).
    """

    kind = "low_rank"
    rank: int = 25
    scale: float = 0.1

    def validate(self):
        require(self.rank >= 1, "correlation(low_rank).rank", self.rank, "rank must be positive", "an int >= 1")
        require(self.scale >= 0, "correlation(low_rank).scale", self.scale, "must be non-negative", "a float >= 0")

    def factors(self, m, generator):
        F = self.scale * torch.randn(m, self.rank, generator=generator, dtype=torch.float64)
        diag = 1.0 - (F**2).sum(1)
        bad = int((diag <= 0).sum())
        if bad:
            fail("correlation(low_rank)", f"rank={self.rank}, scale={self.scale}",
                 f"{bad} of {m} rows have rowsum(F^2) >= 1, so C would not have unit diagonal",
                 "a smaller scale or rank (rank * scale^2 well below 1)")
        return F, diag
