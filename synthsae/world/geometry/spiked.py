"""Spiked dictionary: every atom shares one direction v (the AEN-SAE paper's synthetic data)."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import require
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, coherence, gaussian_rows, normalize_rows


@GEOMETRIES.register("spiked")
@dataclasses.dataclass(frozen=True)
class Spiked(Geometry):
    """d_j = normalize(sqrt(1 - rho) u_j + sqrt(rho) v) with u_j, v uniform on the unit sphere.

    Source: adaptive elastic-net SAE, arXiv 2605.05341 (rho in {0, .3, .5, .7, .9}). Pairwise
    cosines concentrate near rho, so Lasso's irrepresentable condition fails for rho >~ 0.3.
    """

    kind = "spiked"
    rho: float = 0.5

    def validate(self) -> None:
        require(0.0 <= self.rho < 1.0, "dictionary(spiked).rho", self.rho,
                "rho = 1 would make every atom equal to the spike", "a float in [0, 1)")

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        u = gaussian_rows(m, d, generator)
        v = gaussian_rows(1, d, generator)
        D = normalize_rows((1 - self.rho) ** 0.5 * u + self.rho**0.5 * v)
        return Built(D, info={"coherence": coherence(D)})
