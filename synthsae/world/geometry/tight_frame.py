"""Orthogonalized dictionary: a unit-norm tight frame, the most orthogonal layout of m > d atoms.

SAELens/SynthSAEBench orthogonalize random atoms by descending sum_{i != j} <d_i, d_j>^2 (with a unit-
norm penalty) using Adam. That loss is the frame potential, whose minimizers over unit-norm atoms
are exactly the unit-norm tight frames (D^T D = (m/d) I_d; Benedetto & Fickus 2003). We reach one
directly by alternating projections (Tropp et al. 2005): scale to the nearest tight frame
D (D^T D)^(-1/2) sqrt(m/d), then renormalize rows. Each step costs O(m d^2) instead of O(m^2 d).
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import require
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, coherence, gaussian_rows, normalize_rows


def tight_frame_step(D: torch.Tensor) -> torch.Tensor:
    """One alternating-projection step towards a unit-norm tight frame. D: (m, d) float64."""
    m, d = D.shape
    evals, evecs = torch.linalg.eigh(D.T @ D)
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(1e-12).rsqrt()) @ evecs.T
    return normalize_rows(D @ inv_sqrt * (m / d) ** 0.5)


def frame_potential_excess(D: torch.Tensor) -> float:
    """||D^T D - (m/d) I||_F / (m / sqrt(d)): 0 for a tight frame; ~1/sqrt(m) ... for random atoms."""
    m, d = D.shape
    return float(torch.linalg.matrix_norm(D.T @ D - (m / d) * torch.eye(d, dtype=D.dtype)) / (m / d**0.5))


@GEOMETRIES.register("tight_frame")
@dataclasses.dataclass(frozen=True)
class TightFrame(Geometry):
    """Random atoms pushed to a unit-norm tight frame in `steps` alternating projections."""

    kind = "tight_frame"
    steps: int = 20

    def validate(self) -> None:
        require(self.steps >= 1, "dictionary(tight_frame).steps", self.steps, "at least one step is needed",
                "an int >= 1")

    def build_bytes(self, m: int, d: int) -> int:
        return 48 * m * d + 24 * d * d  # each step keeps a few (m, d) arrays and a (d, d) frame operator

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        D = gaussian_rows(m, d, generator)
        start = frame_potential_excess(D)
        for _ in range(self.steps):
            D = tight_frame_step(D)
        return Built(D, info={"frame_excess_before": start, "frame_excess_after": frame_potential_excess(D)})
