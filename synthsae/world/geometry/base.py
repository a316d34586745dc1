"""The geometry family base class and helpers shared by all geometries."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.config import Config
from synthsae.registry import Registry

GEOMETRIES: Registry[type["Geometry"]] = Registry("dictionary geometry")


@dataclasses.dataclass(frozen=True)
class Built:
    """What a geometry builds.

    dictionary: (m, d) float64, unit-norm rows (atoms are rows).
    groups: (m,) long subspace-group id per feature, -1 for features in no group; None if no groups.
    tied: True if each group fires as one unit with a rotation-invariant code (see `Subspaces`).
    info: scalar facts worth reporting (e.g. the coherence achieved).
    """

    dictionary: torch.Tensor
    groups: torch.Tensor | None = None
    tied: bool = False
    info: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Geometry(Config):
    """Base of all dictionary geometries (a config family keyed by `kind`)."""

    family = GEOMETRIES

    def check_shape(self, m: int, d: int) -> None:
        """Raise `ValueError` if this geometry cannot produce an (m, d) dictionary. Override."""

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:  # pragma: no cover
        raise NotImplementedError

    def build_bytes(self, m: int, d: int) -> int:
        """Estimated peak bytes of `build` (checked before building; see `synthsae.world.memory`): a few
        float64 (m, d) work arrays and the float32 copy the world keeps. Override when larger."""
        return 28 * m * d


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit Euclidean norm. x: (m, d)."""
    return x / x.norm(dim=1, keepdim=True)


def gaussian_rows(m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """(m, d) float64 rows drawn uniformly from the unit sphere (normalized Gaussians)."""
    return normalize_rows(torch.randn(m, d, generator=generator, dtype=torch.float64))


def coherence(D: torch.Tensor, chunk: int = 2048) -> float:
    """Mutual coherence max_{i != j} |<d_i, d_j>| / (|d_i| |d_j|) of the rows of D (m, d).

    Computed in row chunks, so memory is O(chunk * m) even for m = 16k.
    """
    D = normalize_rows(D.to(torch.float32))
    m = D.shape[0]
    if m < 2:
        return 0.0
    best = 0.0
    for start in range(0, m, chunk):
        block = (D[start : start + chunk] @ D.T).abs_()
        idx = torch.arange(block.shape[0])
        block[idx, idx + start] = 0.0
        best = max(best, float(block.max()))
    return best
