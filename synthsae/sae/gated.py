"""`gated`: the Gated sparse autoencoder.

Source: Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse Autoencoders"
(Google DeepMind).

Forward (shared encoder directions W_enc, magnitude path rescaled per latent by exp(r_mag)):
    x' = x - b_dec
    pi_gate = x' W_enc + b_gate                      (b_gate is `b_enc`)
    pi_mag  = x' (W_enc * exp(r_mag)) + b_mag        (column j of W_enc scaled by exp(r_mag_j))
    z = 1[pi_gate > 0] * ReLU(pi_mag),   x_hat = z W_dec + b_dec
Loss:
    mse(x, x_hat)
    + l1_coefficient * s(step) * mean_b sum_j ReLU(pi_gate)_bj          (l1 on the gate only)
    + mse(x, ReLU(pi_gate) W_dec.detach() + b_dec.detach())          ("aux": reconstruction through
                                                                       the gate, frozen decoder)
mse = mean over all elements of the squared error; s = sparsity warmup. The Heaviside gate passes
no gradient, so the l1 and aux terms are what train the gate path. Decoder rows are unit norm
(the paper's ||W_dec,j|| weighting of the l1 is then 1).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


@dataclasses.dataclass(frozen=True)
class GatedConfig(SAEConfig):
    """l1_coefficient: weight of the l1 penalty on ReLU(pi_gate)."""

    l1_coefficient: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self._nonneg("l1_coefficient")


@register("gated", GatedConfig)
class GatedSAE(SAE):
    """Gated SAE (Rajamanoharan et al. 2024). See module docstring. `b_enc` is the gate bias."""

    config: GatedConfig
    sparsity_terms = {"l1": "l1_coefficient"}  # loss term -> its coefficient (what train(target_l0=) adapts)

    def __init__(self, config: GatedConfig):
        super().__init__(config)
        self.r_mag = nn.Parameter(torch.zeros(config.m))
        self.b_mag = nn.Parameter(torch.zeros(config.m))

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pi_gate, pi_mag), each (n, m)."""
        proj = self.project(x)
        return proj + self.b_enc, proj * torch.exp(self.r_mag) + self.b_mag

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        gate, mag = self.paths(self._check_input(x))
        return (gate > 0).to(mag.dtype) * F.relu(mag)

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        gate, mag = self.paths(x)
        z = (gate > 0).to(mag.dtype) * F.relu(mag)
        x_hat = self.decode(z)
        gate_act = F.relu(gate)
        x_gate = self.decode_with(gate_act, self.W_dec.detach(), self.b_dec.detach())
        terms = {
            "mse": common.mse(x, x_hat),
            "l1": self.config.l1_coefficient * self.sparsity_scale(step) * common.l1(gate_act),
            "aux": common.mse(x, x_gate),
        }
        terms["total"] = terms["mse"] + terms["l1"] + terms["aux"]
        return TrainOutput(x_hat, z, terms)

    def reset_latents(self, idx: torch.Tensor) -> None:
        with torch.no_grad():
            self.r_mag[idx] = 0.0
            self.b_mag[idx] = 0.0
