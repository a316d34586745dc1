"""Correlated firing through a Gaussian copula.

Feature j fires when g_j < Phi^-1(q_j), where g ~ N(0, C) and C is a correlation matrix (unit
diagonal). Each feature keeps its marginal q_j exactly; C sets how features co-fire. The copula
needs one Gaussian per feature and sample, so correlated sampling is dense: O(n m) (plus
O(n m r) for rank-r structure), unlike independent firing, which is sparse.

Three structures (family `CORRELATIONS`), each giving g = eta F^T + sqrt(diag) * eps with
eta ~ N(0, I_r), eps ~ N(0, I_m):
- `full`: a given matrix (validated: symmetric, unit diagonal, PSD; never silently repaired:
  `repair=True` replaces an invalid one by the nearest correlation matrix, with a warning that
  says what changed).
- `block`: consecutive blocks of `size` features with within-block correlation `rho` >= 0.
- `low_rank`: C = F F^T + diag(1 - rowsum(F^2)) with F ~ scale * N(0, 1), shape (m, rank).
"""

from __future__ import annotations

import dataclasses
import warnings

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

    def build_bytes(self, m: int) -> int:
        """Estimated peak bytes of `factors` (checked before building; see `synthsae.world.memory`)."""
        return 16 * m


@CORRELATIONS.register("full")
@dataclasses.dataclass(frozen=True)
class Full(Correlation):
    """A given m x m correlation matrix (rows as lists).

    repair: False (default): a matrix that is not symmetric, not unit-diagonal or not PSD raises
    ValueError. True: it is replaced by the nearest correlation matrix (`nearest_correlation`) and a
    `CorrelationRepairWarning` states exactly what changed; a valid matrix is used as given.
    """

    kind = "full"
    matrix: tuple[tuple[float, ...], ...] = ()
    repair: bool = False

    def validate(self):
        n = len(self.matrix)
        for i, row in enumerate(self.matrix):
            require(len(row) == n, f"correlation(full).matrix[{i}]", f"a row of {len(row)} values",
                    f"a correlation matrix is square: the matrix has {n} rows", f"{n} values in every row")

    def build_bytes(self, m):
        return 8 * m * m * 5  # C, its eigenvectors and the factor, plus eigh's workspace

    def factors(self, m, generator):
        C = torch.tensor(self.matrix, dtype=torch.float64)
        if self.repair and C.shape == (m, m) and bool(torch.isfinite(C).all()) and not _is_correlation(C):
            C, record = nearest_correlation(C)
            warnings.warn(f"correlation(full).matrix was repaired (repair=True): {record}", CorrelationRepairWarning,
                          stacklevel=2)
        return full_factor(C, m), torch.zeros(m, dtype=torch.float64)


class CorrelationRepairWarning(UserWarning):
    """A correlation matrix given with repair=True was changed; the message says how much."""


@dataclasses.dataclass(frozen=True)
class RepairRecord:
    """What `nearest_correlation` changed. asymmetry: max |C - C^T| of the input; diagonal: max
    |C_jj - 1| of the input; min_eigenvalue: the smallest eigenvalue of the symmetrized input;
    max_change: max |C_new - C| over all entries; frobenius: ||C_new - C||_F; iterations: of the
    alternating projections."""

    asymmetry: float
    diagonal: float
    min_eigenvalue: float
    max_change: float
    frobenius: float
    iterations: int

    def __str__(self) -> str:
        return (f"input asymmetry max |C - C^T| = {self.asymmetry:.3g}, diagonal error max |C_jj - 1| = "
                f"{self.diagonal:.3g}, smallest eigenvalue {self.min_eigenvalue:.4g}; entries changed by up to "
                f"{self.max_change:.3g} (Frobenius distance {self.frobenius:.3g}, {self.iterations} iterations)")


def _is_correlation(C: torch.Tensor, tol: float = 1e-8) -> bool:
    if float((C - C.T).abs().max()) > tol or float((torch.diagonal(C) - 1).abs().max()) > tol:
        return False
    return float(torch.linalg.eigvalsh(C).min()) >= -tol


def nearest_correlation(C: torch.Tensor, tol: float = 1e-10, max_iter: int = 1000) -> tuple[torch.Tensor, RepairRecord]:
    """The correlation matrix nearest to C (m, m) in Frobenius norm, and a record of what changed.

    C is symmetrized, then Higham's alternating projections (with Dykstra's correction) alternate
    between the PSD cone (eigenvalues clipped at 0) and the unit-diagonal matrices (N. Higham,
    "Computing the nearest correlation matrix", IMA J. Numer. Anal. 22, 2002). A last PSD projection
    rescaled to unit diagonal makes the result exactly unit-diagonal and PSD. float64 throughout.
    """
    C = C.double()
    asym = float((C - C.T).abs().max()) if len(C) else 0.0
    diag = float((torch.diagonal(C) - 1).abs().max()) if len(C) else 0.0
    Y = (C + C.T) / 2
    min_eig = float(torch.linalg.eigvalsh(Y).min()) if len(C) else 0.0
    correction = torch.zeros_like(Y)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        R = Y - correction
        X = _psd_part(R)
        correction = X - R
        previous, Y = Y, X.clone()
        Y.fill_diagonal_(1.0)
        if float((Y - previous).norm()) <= tol * max(1.0, float(Y.norm())):
            break
    X = _psd_part(Y)
    scale = torch.diagonal(X).clamp_min(1e-300).rsqrt()
    out = X * scale[:, None] * scale[None, :]
    out = (out + out.T) / 2
    out.fill_diagonal_(1.0)
    change = out - C
    return out, RepairRecord(asym, diag, min_eig, float(change.abs().max()) if len(C) else 0.0,
                             float(change.norm()), iterations)


def _psd_part(A: torch.Tensor) -> torch.Tensor:
    """The nearest PSD matrix to the symmetric A: eigenvalues clipped at 0."""
    evals, evecs = torch.linalg.eigh(A)
    return (evecs * evals.clamp_min(0.0)) @ evecs.T


def full_factor(C: torch.Tensor, m: int, field: str = "correlation(full).matrix") -> torch.Tensor:
    """Validate a correlation matrix C (m, m) and return F with F F^T = C (via eigh; PSD allowed)."""
    require(C.shape == (m, m), field, tuple(C.shape), "a correlation matrix is m x m", f"shape ({m}, {m})")
    require(bool(torch.isfinite(C).all()), field, "a matrix with NaN/inf", "entries must be finite", "finite values")
    asym = float((C - C.T).abs().max()) if m else 0.0
    require(asym <= 1e-8, field, f"max |C - C^T| = {asym:.3g}", "a correlation matrix is symmetric",
            "C == C^T (or repair=True for the nearest correlation matrix)")
    diag_err = float((torch.diagonal(C) - 1).abs().max()) if m else 0.0
    require(diag_err <= 1e-8, field, f"max |diag - 1| = {diag_err:.3g}", "a correlation matrix has unit diagonal",
            "C[j, j] == 1 (or repair=True for the nearest correlation matrix)")
    evals, evecs = torch.linalg.eigh(C)
    if float(evals.min()) < -1e-8:
        fail(field, f"smallest eigenvalue {float(evals.min()):.4g}", "a correlation matrix is positive semi-definite",
             "a PSD matrix (nothing is repaired silently: fix it, or pass repair=True for the nearest "
             "correlation matrix)")
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

    def build_bytes(self, m):
        return 8 * m * (-(-m // self.size) + 2)  # F is stored dense: m x (number of blocks)

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

    def build_bytes(self, m):
        return 8 * m * (2 * self.rank + 2)

    def factors(self, m, generator):
        F = self.scale * torch.randn(m, self.rank, generator=generator, dtype=torch.float64)
        diag = 1.0 - (F**2).sum(1)
        bad = int((diag <= 0).sum())
        if bad:
            fail("correlation(low_rank)", f"rank={self.rank}, scale={self.scale}",
                 f"{bad} of {m} rows have rowsum(F^2) >= 1, so C would not have unit diagonal",
                 "a smaller scale or rank (rank * scale^2 well below 1)")
        return F, diag
