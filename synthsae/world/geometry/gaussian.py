"""Random Gaussian dictionary: atoms uniform on the unit sphere (the default, as in SAELens)."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, gaussian_rows


@GEOMETRIES.register("gaussian")
@dataclasses.dataclass(frozen=True)
class Gaussian(Geometry):
    """d_j = g_j / ||g_j|| with g_j ~ N(0, I_d) independently. Coherence ~ sqrt(2 log(m^2) / d)."""

    kind = "gaussian"

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        return Built(gaussian_rows(m, d, generator))
