"""`aen`: the adaptive elastic-net sparse autoencoder (AEN-SAE).

Source: arXiv 2605.05341 (2026), "adaptive elastic-net SAE"; definition taken from the authors'
public code as summarized in docs/background.md.

Forward:  h = ReLU((x - b_dec) W_enc + b_enc),   x_hat = h W_dec + b_dec, unit-norm decoder rows
          (the paper's "columns": its decoder is (d, m)).
Loss:     mean((x - x_hat)^2)                         (mean over ALL n*d elements, not sum over d)
          + l1_coefficient * mean_b sum_j w_eff,j |h_bj|
          + l2_coefficient * mean_b sum_j h_bj^2
Adaptive weights (buffers, no gradient):
    ema_j  <- beta ema_j + (1 - beta) mean_b |h_bj|       beta = 0.999, ema starts at 0 and is
                                                          updated after each optimizer step
    e_j    = max(ema_j, 1e-5)
    ref    = mean of the largest ceil(1% of m) values of e
    w_j    = clamp((ref / e_j)^gamma, w_min, w_max)
    f      = 0 for step < warmup_steps, then (step - warmup_steps) / ramp_steps, capped at 1
    w_eff  = 1 + (w - 1) f
so the penalty is a plain elastic net until `warmup_steps`, then the adaptive weights fade in.
(Starting the EMA at 0 scales every e_j by the same factor early on, which ref / e_j cancels,
except where the 1e-5 floor binds.) The sparsity warmup of the base config, if set, also
multiplies the l1 term (it defaults to off).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register

EMA_FLOOR = 1e-5
TOP_FRACTION = 0.01


@dataclasses.dataclass(frozen=True)
class AENConfig(SAEConfig):
    """l1_coefficient (lambda1), l2_coefficient (lambda2), gamma, w_min, w_max, ema_beta,
    warmup_steps (adaptive weights off before), ramp_steps (linear fade-in after)."""

    l1_coefficient: float = 1e-3
    l2_coefficient: float = 1e-4
    gamma: float = 1.0
    w_min: float = 0.1
    w_max: float = 10.0
    ema_beta: float = 0.999
    warmup_steps: int = 10_000
    ramp_steps: int = 2_000

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        for f in ("l1_coefficient", "l2_coefficient", "gamma"):
            self._nonneg(f)
        self._positive("w_min")
        require(self.w_max >= self.w_min, f"{name}.w_max", self.w_max,
                f"w_max must be at least w_min = {self.w_min}", f"a float >= {self.w_min}")
        require(0.0 <= self.ema_beta < 1.0, f"{name}.ema_beta", self.ema_beta,
                "an EMA factor must lie in [0, 1)", "a float in [0, 1)")
        require(self.warmup_steps >= 0, f"{name}.warmup_steps", self.warmup_steps,
                "a step count cannot be negative", "an int >= 0")
        require(self.ramp_steps >= 0, f"{name}.ramp_steps", self.ramp_steps,
                "a step count cannot be negative", "an int >= 0")


@register("aen", AENConfig)
class AENSAE(SAE):
    """Adaptive elastic-net SAE. See module docstring. Buffer `ema` (m,) holds ema_j."""

    config: AENConfig
    sparsity_terms = {"l1": "l1_coefficient"}  # loss term -> its coefficient (what train(target_l0=) adapts)

    def __init__(self, config: AENConfig):
        super().__init__(config)
        self.register_buffer("ema", torch.zeros(config.m))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pre_acts(self._check_input(x)))

    def ramp(self, step: int) -> float:
        """f(step): 0 before warmup_steps, then a linear ramp to 1 over ramp_steps."""
        c = self.config
        if step < c.warmup_steps:
            return 0.0
        if c.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - c.warmup_steps) / c.ramp_steps)

    @torch.no_grad()
    def adaptive_weights(self) -> torch.Tensor:
        """w (m,) = clamp((ref / max(ema, 1e-5))^gamma, w_min, w_max)."""
        c = self.config
        e = self.ema.clamp_min(EMA_FLOOR)
        n_top = max(1, math.ceil(TOP_FRACTION * c.m))
        ref = e.topk(n_top).values.mean()
        return (ref / e).pow(c.gamma).clamp(c.w_min, c.w_max)

    def effective_weights(self, step: int) -> torch.Tensor:
        """w_eff (m,) = 1 + (w - 1) f(step)."""
        f = self.ramp(step)
        if f == 0.0:
            return torch.ones_like(self.ema)
        return 1.0 + (self.adaptive_weights() - 1.0) * f

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        a = self.pre_acts(x)
        w = self.effective_weights(step)
        h = self.relu_codes(a)
        x_hat = h.decode(self.W_dec, self.b_dec)
        c = self.config
        terms = {
            "mse": common.mse(x, x_hat),
            "l1": c.l1_coefficient * self.sparsity_scale(step) * h.penalty(w),
            "l2": c.l2_coefficient * h.sum_of_squares(),
        }
        terms["total"] = terms["mse"] + terms["l1"] + terms["l2"]
        return TrainOutput(x_hat, h.codes, terms, fired=h.fired())

    @torch.no_grad()
    def update(self, out: TrainOutput, step: int) -> None:
        super().update(out, step)
        common.ema_(self.ema, out.codes.abs().mean(dim=0), self.config.ema_beta)
