"""`jumprelu`: the JumpReLU sparse autoencoder with an l0 penalty.

Source: Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders" (Google DeepMind).

Forward:  a = (x - b_dec) W_enc + b_enc,  theta = exp(log_threshold)  (per latent, learned),
          z = JumpReLU_theta(a) = a * H(a - theta),  x_hat = z W_dec + b_dec.
Loss:     mse + l0_coefficient * s(step) * mean_b sum_j H(a_bj - theta_j)
          (mse = mean over all elements of (x - x_hat)^2; s = sparsity warmup).
Gradients: H has zero derivative, so theta is trained with straight-through pseudo-derivatives
using the rectangle kernel K(u) = 1[|u| < 1/2] and bandwidth eps:
    d/dtheta JumpReLU_theta(a) = -(theta / eps) K((a - theta) / eps)
    d/dtheta H(a - theta)      = -(1 / eps) K((a - theta) / eps)
while d/da JumpReLU = H(a - theta) and d/da H = 0 (the l0 term moves only the thresholds).
The chain rule through theta = exp(log_threshold) multiplies by theta. Decoder rows unit norm.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel K(u) = 1[|u| < 1/2]."""
    return (u.abs() < 0.5).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, theta, eps):
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return a * (a > theta).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, theta = ctx.saved_tensors
        eps = ctx.eps
        grad_a = g * (a > theta).to(a.dtype)
        grad_theta = (g * (-(theta / eps) * rectangle((a - theta) / eps))).sum(dim=0)
        return grad_a, grad_theta, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, theta, eps):
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return (a > theta).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, theta = ctx.saved_tensors
        eps = ctx.eps
        grad_theta = (g * (-(1.0 / eps) * rectangle((a - theta) / eps))).sum(dim=0)
        return torch.zeros_like(a), grad_theta, None


def jumprelu(a: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """a * H(a - theta) with the rectangle-kernel STE for theta. a (n, m), theta (m,)."""
    return _JumpReLU.apply(a, theta, eps)


def step(a: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """H(a - theta) with the rectangle-kernel STE for theta (zero gradient for a)."""
    return _Step.apply(a, theta, eps)


@dataclasses.dataclass(frozen=True)
class JumpReLUConfig(SAEConfig):
    """l0_coefficient: weight of the l0 term. bandwidth: STE kernel width eps.
    threshold_init: initial theta for every latent (the paper's 0.001 assumes normalized inputs)."""

    l0_coefficient: float = 1e-3
    bandwidth: float = 1e-3
    threshold_init: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self._nonneg("l0_coefficient")
        self._positive("bandwidth")
        self._positive("threshold_init")


@register("jumprelu", JumpReLUConfig)
class JumpReLUSAE(SAE):
    """JumpReLU SAE (Rajamanoharan et al. 2024). See module docstring."""

    config: JumpReLUConfig
    sparsity_terms = {"l0": "l0_coefficient"}  # loss term -> its coefficient (what train(target_l0=) adapts)

    def __init__(self, config: JumpReLUConfig):
        super().__init__(config)
        self.log_threshold = nn.Parameter(torch.full((config.m,), math.log(config.threshold_init)))

    @property
    def threshold(self) -> torch.Tensor:
        """theta (m,) = exp(log_threshold)."""
        return self.log_threshold.exp()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre_acts(self._check_input(x))
        return a * (a > self.threshold).to(a.dtype)

    def forward_train(self, x: torch.Tensor, step_: int) -> TrainOutput:
        a = self.pre_acts(x)
        theta = self.threshold
        eps = self.config.bandwidth
        z = jumprelu(a, theta, eps)
        x_hat = self.decode(z)
        l0 = step(a, theta, eps).sum(dim=1).mean()
        terms = {"mse": common.mse(x, x_hat),
                 "l0": self.config.l0_coefficient * self.sparsity_scale(step_) * l0}
        terms["total"] = terms["mse"] + terms["l0"]
        return TrainOutput(x_hat, z, terms)

    def reset_latents(self, idx: torch.Tensor) -> None:
        with torch.no_grad():
            self.log_threshold[idx] = math.log(self.config.threshold_init)
