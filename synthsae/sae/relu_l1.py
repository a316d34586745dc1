"""`relu_l1`: the vanilla ReLU sparse autoencoder with an l1 penalty.

Source: Bricken et al. 2023, "Towards Monosemanticity" (Anthropic), and the decoder-norm-weighted
variant of Anthropic's "Circuits Updates - April 2024".

Forward:  z = ReLU((x - b_dec) W_enc + b_enc),   x_hat = z W_dec + b_dec.
Loss:     mse + l1_coefficient * s(step) * mean_b sum_j |z_bj| * n_j
where mse is the mean over all elements of (x - x_hat)^2, s the sparsity warmup, and
n_j = 1 with unit-norm decoder rows (default), or n_j = ||W_dec,j|| when
`decoder_norm_penalty=True` (then the rows are left unconstrained, as in the April 2024 update).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


@dataclasses.dataclass(frozen=True)
class ReluL1Config(SAEConfig):
    """l1_coefficient: weight of the l1 term. decoder_norm_penalty: weight each |z_j| by
    ||W_dec,j|| and drop the unit-norm constraint."""

    l1_coefficient: float = 1e-3
    decoder_norm_penalty: bool = False

    def validate(self) -> None:
        super().validate()
        self._nonneg("l1_coefficient")


@register("relu_l1", ReluL1Config)
class ReluL1SAE(SAE):
    """ReLU + l1 SAE (Bricken et al. 2023; Anthropic April 2024 update). See module docstring."""

    config: ReluL1Config
    sparsity_terms = {"l1": "l1_coefficient"}  # loss term -> its coefficient (what train(target_l0=) adapts)

    @property
    def unit_norm_decoder(self) -> bool:
        return not self.config.decoder_norm_penalty

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pre_acts(self._check_input(x)))

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        norms = self.W_dec.norm(dim=1) if self.config.decoder_norm_penalty else None
        z = self.relu_codes(self.pre_acts(x))
        x_hat = z.decode(self.W_dec, self.b_dec)
        terms = {"mse": common.mse(x, x_hat),
                 "l1": self.config.l1_coefficient * self.sparsity_scale(step) * z.penalty(norms)}
        terms["total"] = terms["mse"] + terms["l1"]
        return TrainOutput(x_hat, z.codes, terms, fired=z.fired())
