"""Controlled coherence: random atoms pushed apart until max |cos| between atoms <= a target."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import fail, require
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry, coherence, gaussian_rows, normalize_rows


def welch_bound(m: int, d: int) -> float:
    """The smallest coherence any m unit vectors in R^d can have: sqrt((m - d) / (d (m - 1))), 0 if m <= d."""
    return 0.0 if m <= d else ((m - d) / (d * (m - 1))) ** 0.5


@GEOMETRIES.register("coherence")
@dataclasses.dataclass(frozen=True)
class Coherence(Geometry):
    """Atoms with mutual coherence max_{i!=j} |<d_i, d_j>| <= `target` (a ceiling, reported as achieved).

    Starts from random atoms and repeatedly moves each atom away from the atoms it is too close to
    (gradient steps on sum_{i != j} (|<d_i, d_j>| - target)_+^2, then renormalization). A target below
    the Welch bound is impossible and rejected; a target not reached in `max_steps` raises with the
    coherence achieved. Cost O(m^2 d) per step: meant for m up to a few thousand.
    """

    kind = "coherence"
    target: float = 0.3
    max_steps: int = 2000
    step_size: float = 0.5

    def validate(self) -> None:
        require(0.0 < self.target <= 1.0, "dictionary(coherence).target", self.target,
                "a coherence is a cosine magnitude", "a float in (0, 1]")
        require(self.max_steps >= 1, "dictionary(coherence).max_steps", self.max_steps, "must be positive", "an int >= 1")
        require(self.step_size > 0, "dictionary(coherence).step_size", self.step_size, "must be positive", "a float > 0")

    def check_shape(self, m: int, d: int) -> None:
        bound = welch_bound(m, d)
        if self.target < bound:
            fail("dictionary(coherence).target", self.target,
                 f"no {m} unit vectors in R^{d} have coherence below the Welch bound {bound:.4f}",
                 f"a target >= {bound:.4f}")

    def build_bytes(self, m: int, d: int) -> int:
        # float64 Gram matrix, its excess and sign terms, and the mask: about four (m, m) arrays
        return 28 * m * d + 33 * m * m

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        D = gaussian_rows(m, d, generator)
        eye = torch.eye(m, dtype=torch.bool)
        # Aim a little below the target: stopping exactly at it leaves atoms oscillating on the boundary.
        aim = self.target - 0.05 * (self.target - welch_bound(m, d))
        for _ in range(self.max_steps):
            G = (D @ D.T).masked_fill_(eye, 0.0)
            excess = (G.abs() - aim).clamp_min_(0.0)
            if float(G.abs().max()) <= self.target:
                break
            D = normalize_rows(D - self.step_size * (excess * G.sign()) @ D)
        achieved = coherence(D)
        if achieved > self.target + 1e-9:
            fail("dictionary(coherence).target", self.target,
                 f"not reached in {self.max_steps} steps (achieved {achieved:.4f}; Welch bound {welch_bound(m, d):.4f})",
                 "a larger target or more max_steps")
        return Built(D, info={"coherence": achieved, "welch_bound": welch_bound(m, d)})
