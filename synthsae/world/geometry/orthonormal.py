"""Orthonormal dictionary (m <= d): the setting where sparse coding has closed forms."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import fail
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry


@GEOMETRIES.register("orthonormal")
@dataclasses.dataclass(frozen=True)
class Orthonormal(Geometry):
    """m orthonormal rows: a random rotation of the first m standard basis vectors (D D^T = I_m).

    `identity=True` gives the standard basis itself (D = [I_m, 0]), handy for positive controls.
    """

    kind = "orthonormal"
    identity: bool = False

    def check_shape(self, m: int, d: int) -> None:
        if m > d:
            fail("dictionary(orthonormal).m", m, f"at most d = {d} orthonormal atoms fit in {d} dimensions",
                 f"m <= {d}, or a 'tight_frame' / 'coherence' geometry for m > d")

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        if self.identity:
            return Built(torch.eye(m, d, dtype=torch.float64))
        # QR of a Gaussian matrix gives a Haar-random orthonormal basis once the signs of R are fixed.
        q, r = torch.linalg.qr(torch.randn(d, m, generator=generator, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        return Built(q.T.contiguous())
