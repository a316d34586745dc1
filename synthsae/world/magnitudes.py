"""Magnitude laws: the value a feature takes when it fires.

Each law is a frozen config in the `MAGNITUDES` family. Parameters accept a float (same for all
features) or a per-feature `Profile` (see `synthsae.world.profiles`). `prepare(m, generator)`
expands them once into (m,) tensors; sampling then only indexes those tensors, so it costs
O(number of active features).

A draw of exactly 0 (possible only for `normal_relu`) means the feature did not fire: it is
dropped from the codes, exactly as a dense ReLU'd activation would show it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch

from synthsae.config import Config
from synthsae.errors import require
from synthsae.registry import Registry
from synthsae.world.profiles import Profile, resolve

MAGNITUDES: Registry[type["Magnitudes"]] = Registry("magnitude law")

Param = float | Profile


@dataclasses.dataclass(frozen=True)
class Magnitudes(Config):
    family = MAGNITUDES
    # Parameters that must be > 0 (the others must be >= 0), as `prepare` enforces when it builds them.
    positive: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        """The names of the per-feature parameter tensors (`prepare`'s keys): the law's fields."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_parameters(cls, params: dict[str, torch.Tensor]) -> tuple[str, str, str] | None:
        """(key, why, expected) for the first invalid prepared parameter, or None (used on loaded worlds)."""
        for key in cls.parameters():
            low = 1e-300 if key in cls.positive else 0.0
            if not bool((params[key] >= low).all()):
                return key, f"a value below {low:g}", f"values >= {low:g}" if low == 0 else "values > 0"
        return None

    def prepare(self, m: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-feature parameter tensors (m,) float64, validated."""
        raise NotImplementedError  # pragma: no cover

    @staticmethod
    def sample(params: dict[str, torch.Tensor], cols: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw one magnitude per event. cols: (nnz,) feature index of each event -> (nnz,) float64."""
        raise NotImplementedError  # pragma: no cover

    @staticmethod
    def means(params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Expected magnitude of each feature when it fires, (m,)."""
        raise NotImplementedError  # pragma: no cover


def _at(params: dict[str, torch.Tensor], key: str, cols: torch.Tensor) -> torch.Tensor:
    """Per-event values of parameter `key` (index_select: several times faster than fancy indexing)."""
    return torch.index_select(params[key], 0, cols)


def _uniform(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64, device=like.device)


def _normal(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(n, generator=generator, dtype=torch.float64, device=like.device)


@MAGNITUDES.register("constant")
@dataclasses.dataclass(frozen=True)
class ConstantMagnitude(Magnitudes):
    """Always `value`."""

    kind = "constant"
    positive = ("value",)
    value: Param = 1.0

    def prepare(self, m, generator):
        return {"value": resolve(self.value, m, generator, "magnitudes(constant).value", minimum=1e-300)}

    @staticmethod
    def sample(params, cols, generator):
        return _at(params, "value", cols)

    @staticmethod
    def means(params):
        return params["value"]


@MAGNITUDES.register("uniform")
@dataclasses.dataclass(frozen=True)
class Uniform(Magnitudes):
    """U[low, high] (AEN-SAE setup: U[1, 3])."""

    kind = "uniform"
    positive = ("low",)
    low: Param = 1.0
    high: Param = 3.0

    def prepare(self, m, generator):
        low = resolve(self.low, m, generator, "magnitudes(uniform).low", minimum=1e-300)
        high = resolve(self.high, m, generator, "magnitudes(uniform).high")
        require(bool((high >= low).all()), "magnitudes(uniform).high", self.high, "below low", "high >= low")
        return {"low": low, "high": high}

    @classmethod
    def check_parameters(cls, params):
        if not bool((params["high"] >= params["low"]).all()):
            return "high", "below low for some feature", "high >= low"
        return super().check_parameters(params)

    @staticmethod
    def sample(params, cols, generator):
        low = _at(params, "low", cols)
        return low + (_at(params, "high", cols) - low) * _uniform(len(cols), generator, low)

    @staticmethod
    def means(params):
        return (params["low"] + params["high"]) / 2


@MAGNITUDES.register("lognormal")
@dataclasses.dataclass(frozen=True)
class LogNormal(Magnitudes):
    """mean * exp(sigma * eps - sigma^2 / 2), eps ~ N(0, 1): log-normal with the given mean."""

    kind = "lognormal"
    positive = ("mean",)
    mean: Param = 1.0
    sigma: Param = 0.5

    def prepare(self, m, generator):
        return {"mean": resolve(self.mean, m, generator, "magnitudes(lognormal).mean", minimum=1e-300),
                "sigma": resolve(self.sigma, m, generator, "magnitudes(lognormal).sigma")}

    @staticmethod
    def sample(params, cols, generator):
        sigma = _at(params, "sigma", cols)
        return _at(params, "mean", cols) * torch.exp(sigma * _normal(len(cols), generator, sigma) - sigma**2 / 2)

    @staticmethod
    def means(params):
        return params["mean"]


@MAGNITUDES.register("folded_normal")
@dataclasses.dataclass(frozen=True)
class FoldedNormalMagnitude(Magnitudes):
    """|mean + std * eps|, eps ~ N(0, 1)."""

    kind = "folded_normal"
    mean: Param = 1.0
    std: Param = 0.5

    def prepare(self, m, generator):
        return {"mean": resolve(self.mean, m, generator, "magnitudes(folded_normal).mean"),
                "std": resolve(self.std, m, generator, "magnitudes(folded_normal).std")}

    @staticmethod
    def sample(params, cols, generator):
        mean = _at(params, "mean", cols)
        return (mean + _at(params, "std", cols) * _normal(len(cols), generator, mean)).abs()

    @staticmethod
    def means(params):
        mu, sd = params["mean"], params["std"].clamp_min(1e-300)
        normal = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        return sd * math.sqrt(2 / math.pi) * torch.exp(-(mu**2) / (2 * sd**2)) + mu * (1 - 2 * normal.cdf(-mu / sd))


@MAGNITUDES.register("normal_relu")
@dataclasses.dataclass(frozen=True)
class NormalRelu(Magnitudes):
    """max(0, mean + std * eps): SAELens's magnitude law (a draw of 0 means 'did not fire')."""

    kind = "normal_relu"
    mean: Param = 1.0
    std: Param = 0.0

    def prepare(self, m, generator):
        return {"mean": resolve(self.mean, m, generator, "magnitudes(normal_relu).mean"),
                "std": resolve(self.std, m, generator, "magnitudes(normal_relu).std")}

    @staticmethod
    def sample(params, cols, generator):
        mean = _at(params, "mean", cols)
        return (mean + _at(params, "std", cols) * _normal(len(cols), generator, mean)).clamp_min(0.0)

    @staticmethod
    def means(params):
        # E[max(0, X)] for X ~ N(mu, sd^2): mu * Phi(mu/sd) + sd * phi(mu/sd).
        mu, sd = params["mean"], params["std"]
        safe = sd.clamp_min(1e-300)
        normal = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        t = mu / safe
        out = mu * normal.cdf(t) + safe * torch.exp(normal.log_prob(t))
        return torch.where(sd > 0, out, mu.clamp_min(0.0))


@MAGNITUDES.register("exponential")
@dataclasses.dataclass(frozen=True)
class Exponential(Magnitudes):
    """Exponential with the given mean."""

    kind = "exponential"
    positive = ("mean",)
    mean: Param = 1.0

    def prepare(self, m, generator):
        return {"mean": resolve(self.mean, m, generator, "magnitudes(exponential).mean", minimum=1e-300)}

    @staticmethod
    def sample(params, cols, generator):
        mean = _at(params, "mean", cols)
        # 1 - U lies in (0, 1], so the log is finite.
        return -mean * torch.log1p(-_uniform(len(cols), generator, mean))

    @staticmethod
    def means(params):
        return params["mean"]
