"""Dictionary geometries: how the planted atoms (rows of D, shape (m, d), unit norm) are laid out.

One file per geometry; each is a frozen config registered in `GEOMETRIES` under its `kind`, with
`build(m, d, generator) -> Built`. Use them in a `WorldConfig(dictionary=...)`.
"""

from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, coherence, normalize_rows
from synthsae.world.geometry.coherent import Coherence
from synthsae.world.geometry.gaussian import Gaussian
from synthsae.world.geometry.given import Given
from synthsae.world.geometry.orthonormal import Orthonormal
from synthsae.world.geometry.spiked import Spiked
from synthsae.world.geometry.subspaces import Subspaces
from synthsae.world.geometry.tight_frame import TightFrame

__all__ = [
    "GEOMETRIES", "Built", "Geometry", "coherence", "normalize_rows",
    "Coherence", "Gaussian", "Given", "Orthonormal", "Spiked", "Subspaces", "TightFrame",
]
