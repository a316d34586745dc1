"""Per-feature parameter profiles: a number that varies across features (means, stds, ...).

Anywhere a magnitude parameter accepts `float | Profile`, a float means "the same for every
feature" and a profile gives one value per feature (feature 0 first):

    {"kind": "linear", "start": 5.0, "end": 4.0}          # 5.0 for feature 0 down to 4.0 for feature m-1
    {"kind": "folded_normal", "mean": 0.5, "std": 0.5}    # |N(mean, std^2)| drawn once per feature
    {"kind": "values", "values": [1.0, 2.0, ...]}         # given explicitly (length m)
"""

from __future__ import annotations

import dataclasses
import math

import torch

from synthsae.config import Config
from synthsae.errors import require
from synthsae.registry import Registry

PROFILES: Registry[type["Profile"]] = Registry("feature profile")


@dataclasses.dataclass(frozen=True)
class Profile(Config):
    family = PROFILES

    def values_for(self, m: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@PROFILES.register("linear")
@dataclasses.dataclass(frozen=True)
class Linear(Profile):
    """Linear from `start` (feature 0) to `end` (feature m-1)."""

    kind = "linear"
    start: float = 1.0
    end: float = 1.0

    def values_for(self, m: int, generator: torch.Generator) -> torch.Tensor:
        return torch.linspace(self.start, self.end, m, dtype=torch.float64)


@PROFILES.register("folded_normal")
@dataclasses.dataclass(frozen=True)
class FoldedNormal(Profile):
    """|N(mean, std^2)| drawn independently per feature (SynthSAEBench's per-feature magnitude stds)."""

    kind = "folded_normal"
    mean: float = 0.0
    std: float = 1.0

    def validate(self) -> None:
        require(self.std >= 0 and math.isfinite(self.std), "profile(folded_normal).std", self.std,
                "a standard deviation is finite and non-negative", "a float >= 0")

    def values_for(self, m: int, generator: torch.Generator) -> torch.Tensor:
        return (self.mean + self.std * torch.randn(m, generator=generator, dtype=torch.float64)).abs()


@PROFILES.register("values")
@dataclasses.dataclass(frozen=True)
class Values(Profile):
    """Explicit per-feature values (length m)."""

    kind = "values"
    values: tuple[float, ...] = ()

    def values_for(self, m: int, generator: torch.Generator) -> torch.Tensor:
        require(len(self.values) == m, "profile(values).values", f"{len(self.values)} values",
                "one value per feature is needed", f"exactly m = {m} values")
        return torch.tensor(self.values, dtype=torch.float64)


def resolve(param: float | Profile, m: int, generator: torch.Generator, field: str, minimum: float = 0.0) -> torch.Tensor:
    """Expand a float or a profile to an (m,) float64 tensor; every value must be finite and >= minimum."""
    values = (param.values_for(m, generator) if isinstance(param, Profile)
              else torch.full((m,), float(param), dtype=torch.float64))
    bad = ~torch.isfinite(values) | (values < minimum)
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        require(False, field, f"{float(values[j])} (feature {j})", "values must be finite and not below the minimum",
                f"finite values >= {minimum}")
    return values
