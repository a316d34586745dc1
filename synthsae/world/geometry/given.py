"""A user-supplied dictionary, read from a safetensors file (or passed to `World(..., dictionary=D)`)."""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import fail, require
from synthsae.io import load_tensors
from synthsae.world.geometry.base import GEOMETRIES, Built, Geometry


def check_dictionary(D: torch.Tensor, m: int, d: int, normalize: bool, field: str = "dictionary") -> torch.Tensor:
    """Validate a user dictionary (m, d): shape, finite, no zero rows; unit-normalize if asked.

    Rows that are not unit norm raise unless `normalize=True` (never silently rescaled).
    Returns float64.
    """
    D = torch.as_tensor(D).to(torch.float64)
    require(D.shape == (m, d), field, tuple(D.shape), "the dictionary shape must be (m, d) with atoms as rows",
            f"shape ({m}, {d})")
    require(bool(torch.isfinite(D).all()), field, "a tensor with NaN/inf", "atoms must be finite", "finite values")
    norms = D.norm(dim=1)
    if bool((norms == 0).any()):
        fail(field, f"row {int((norms == 0).nonzero()[0])} is all zeros", "a zero atom has no direction",
             "rows with non-zero norm")
    if normalize:
        return D / norms.unsqueeze(1)
    bad = (norms - 1).abs() > 1e-4
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        fail(field, f"row {j} with norm {float(norms[j]):.6g}", "atoms must have unit norm",
             "unit-norm rows, or normalize=True to rescale them explicitly")
    return D / norms.unsqueeze(1)


@GEOMETRIES.register("given")
@dataclasses.dataclass(frozen=True)
class Given(Geometry):
    """Atoms from `path` (a .safetensors file holding tensor `key`, shape (m, d), atoms as rows)."""

    kind = "given"
    path: str | None = None
    key: str = "dictionary"
    normalize: bool = False

    def build(self, m: int, d: int, generator: torch.Generator) -> Built:
        if self.path is None:
            fail("dictionary(given).path", None, "a 'given' dictionary needs a file or an explicit tensor",
                 "a .safetensors path, or World(config, dictionary=D)")
        tensors = load_tensors(self.path)
        if self.key not in tensors:
            fail("dictionary(given).key", self.key, f"{self.path} has no such tensor", f"one of {sorted(tensors)}")
        return Built(check_dictionary(tensors[self.key], m, d, self.normalize))
