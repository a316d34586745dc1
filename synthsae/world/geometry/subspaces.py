"""Low-rank subspace groups: features that live (and, if tied, fire) together in r-dim subspaces."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import fail, require
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, gaussian_rows


@GEOMETRIES.register("subspaces")
@dataclasses.dataclass(frozen=True)
class Subspaces(Geometry):
    """`n_groups` random r-dimensional subspaces, each spanned by r orthonormal atoms.

    Features 0 .. n_groups*rank - 1 form the groups (group g = features g*rank .. g*rank + rank-1);
    the remaining m - n_groups*rank features are ordinary random atoms (group id -1).

    With `tied=True` (the default) a group fires as one unit: when it fires with magnitude a, its
    code is a * u with u uniform on the unit sphere of R^r. That law is invariant under rotations of
    the group's basis, so the data distribution cannot tell a rotated basis from the planted one:
    the individual features are non-identifiable while their subspace is (the "basis ambiguity"
    behind unstable-but-reproducible-subspace SAE features, Gerasimov et al. 2026). Codes of tied
    groups can be negative. With `tied=False` the group atoms fire independently like any feature.
    """

    kind = "subspaces"
    n_groups: int = 8
    rank: int = 4
    tied: bool = True

    def validate(self) -> None:
        require(self.n_groups >= 1, "dictionary(subspaces).n_groups", self.n_groups, "need at least one group", "an int >= 1")
        require(self.rank >= 2, "dictionary(subspaces).rank", self.rank,
                "a rank-1 group is just a feature", "an int >= 2")

    def check_shape(self, m: int, d: int) -> None:
        if self.n_groups * self.rank > m:
            fail("dictionary(subspaces)", f"n_groups={self.n_groups}, rank={self.rank}",
                 f"the groups need {self.n_groups * self.rank} features but m = {m}",
                 f"n_groups * rank <= {m}")
        if self.rank > d:
            fail("dictionary(subspaces).rank", self.rank, f"a subspace of R^{d} has dimension at most {d}", f"rank <= {d}")

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        D = gaussian_rows(m, d, generator)
        groups = torch.full((m,), -1, dtype=torch.long)
        for g in range(self.n_groups):
            q, _ = torch.linalg.qr(torch.randn(d, self.rank, generator=generator, dtype=torch.float64))
            rows = slice(g * self.rank, (g + 1) * self.rank)
            D[rows] = q.T
            groups[rows] = g
        return Built(D, groups=groups, tied=self.tied)
