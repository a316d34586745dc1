"""Firing laws: the configured probability that each feature is active (or exactly k per sample).

Each law is a frozen config in the `FIRING` family with `probabilities(m) -> (m,) float64`.
These are the *target marginals*; with a hierarchy, a child's probability is interpreted as
described in `synthsae.world.hierarchy`.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.registry import Registry

FIRING: Registry[type["Firing"]] = Registry("firing law")


@dataclasses.dataclass(frozen=True)
class Firing(Config):
    family = FIRING

    def probabilities(self, m: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def _check_probability(field: str, p: float) -> None:
    require(isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0, field, p,
            "a probability must lie in [0, 1]", "a float in [0, 1]")


@FIRING.register("constant")
@dataclasses.dataclass(frozen=True)
class Constant(Firing):
    """Every feature fires independently with probability `p`."""

    kind = "constant"
    p: float = 0.05

    def validate(self) -> None:
        _check_probability("firing(constant).p", self.p)

    def probabilities(self, m: int) -> torch.Tensor:
        return torch.full((m,), self.p, dtype=torch.float64)


@FIRING.register("zipf")
@dataclasses.dataclass(frozen=True)
class Zipf(Firing):
    """p_j proportional to (j+1)^-exponent, rescaled affinely so p_0 = max_p and p_{m-1} = min_p.

    Same law as SAELens's `zipfian_firing_probabilities`, so SynthSAEBench configs carry over.
    """

    kind = "zipf"
    exponent: float = 1.0
    max_p: float = 0.3
    min_p: float = 0.01

    def validate(self) -> None:
        require(self.exponent > 0, "firing(zipf).exponent", self.exponent, "must be positive", "a float > 0")
        _check_probability("firing(zipf).max_p", self.max_p)
        _check_probability("firing(zipf).min_p", self.min_p)
        require(self.min_p <= self.max_p, "firing(zipf).min_p", self.min_p, f"above max_p = {self.max_p}",
                "min_p <= max_p")

    def probabilities(self, m: int) -> torch.Tensor:
        if m == 1:
            return torch.tensor([self.max_p], dtype=torch.float64)
        raw = torch.arange(1, m + 1, dtype=torch.float64) ** -self.exponent
        raw = (raw - raw[-1]) / (raw[0] - raw[-1])
        return self.min_p + (self.max_p - self.min_p) * raw


@FIRING.register("linear")
@dataclasses.dataclass(frozen=True)
class LinearLaw(Firing):
    """p_j linear from `max_p` (feature 0) to `min_p` (feature m-1)."""

    kind = "linear"
    max_p: float = 0.2
    min_p: float = 0.01

    def validate(self) -> None:
        _check_probability("firing(linear).max_p", self.max_p)
        _check_probability("firing(linear).min_p", self.min_p)

    def probabilities(self, m: int) -> torch.Tensor:
        return torch.linspace(self.max_p, self.min_p, m, dtype=torch.float64)


@FIRING.register("geometric")
@dataclasses.dataclass(frozen=True)
class Geometric(Firing):
    """p_j = max(p0 * ratio^j, min_p): geometric decay of firing rates across features."""

    kind = "geometric"
    p0: float = 0.3
    ratio: float = 0.99
    min_p: float = 0.0

    def validate(self) -> None:
        _check_probability("firing(geometric).p0", self.p0)
        _check_probability("firing(geometric).min_p", self.min_p)
        require(0 < self.ratio <= 1, "firing(geometric).ratio", self.ratio, "a decay ratio lies in (0, 1]",
                "a float in (0, 1]")

    def probabilities(self, m: int) -> torch.Tensor:
        p = self.p0 * self.ratio ** torch.arange(m, dtype=torch.float64)
        return p.clamp_min(self.min_p)


@FIRING.register("vector")
@dataclasses.dataclass(frozen=True)
class Vector(Firing):
    """Explicit per-feature probabilities (length m)."""

    kind = "vector"
    p: tuple[float, ...] = ()

    def validate(self) -> None:
        for j, pj in enumerate(self.p):
            _check_probability(f"firing(vector).p[{j}]", pj)

    def probabilities(self, m: int) -> torch.Tensor:
        if len(self.p) != m:
            fail("firing(vector).p", f"{len(self.p)} probabilities", "one probability per feature is needed",
                 f"exactly m = {m} values")
        return torch.tensor(self.p, dtype=torch.float64)


@FIRING.register("exactly_k")
@dataclasses.dataclass(frozen=True)
class ExactlyK(Firing):
    """Exactly k features active in every sample, a uniformly random k-subset (AEN-SAE setup: k = 16)."""

    kind = "exactly_k"
    k: int = 16

    def validate(self) -> None:
        require(self.k >= 1, "firing(exactly_k).k", self.k, "at least one feature must fire", "an int >= 1")

    def probabilities(self, m: int) -> torch.Tensor:
        if self.k > m:
            fail("firing(exactly_k).k", self.k, f"cannot pick {self.k} distinct features out of m = {m}", f"k <= {m}")
        return torch.full((m,), self.k / m, dtype=torch.float64)
