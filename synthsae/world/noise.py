"""Additive noise and a mean offset: x = z D + bias + eps, eps ~ N(0, std^2 I_d)."""

from __future__ import annotations

import dataclasses
import math

from synthsae.config import Config
from synthsae.errors import require


@dataclasses.dataclass(frozen=True)
class Noise(Config):
    """Isotropic Gaussian noise given by `std` or by a target `snr`, plus an optional bias.

    snr: target signal-to-noise power ratio E||z D||^2 / E||eps||^2. The world measures the signal
        power once on a calibration batch drawn with its own seed and sets std accordingly.
    bias_norm: norm of a fixed random offset added to every sample (SAELens's `bias`); 0 for none.
    """

    std: float = 0.0
    snr: float | None = None
    bias_norm: float = 0.0

    def validate(self) -> None:
        require(math.isfinite(self.std) and self.std >= 0, "noise.std", self.std,
                "a standard deviation is finite and non-negative", "a float >= 0")
        if self.snr is not None:
            require(self.std == 0.0, "noise.snr", self.snr, "give either std or snr, not both", "std = 0 when snr is set")
            require(math.isfinite(self.snr) and self.snr > 0, "noise.snr", self.snr, "a power ratio is positive",
                    "a float > 0 (or None)")
        require(math.isfinite(self.bias_norm) and self.bias_norm >= 0, "noise.bias_norm", self.bias_norm,
                "a norm is finite and non-negative", "a float >= 0")
