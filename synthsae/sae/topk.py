"""`topk`: the TopK sparse autoencoder with the AuxK loss for dead latents.

Source: Gao et al. 2024, "Scaling and evaluating sparse autoencoders" (OpenAI).

Forward:  a = (x - b_dec) W_enc + b_enc;  z = ReLU(TopK_k(a))  (the k largest entries of a per
          sample are kept, the rest set to 0; ReLU after selection, so a sample has exactly k
          active latents whenever at least k pre-activations are positive, and never more than k);
          x_hat = z W_dec + b_dec.
Loss:     mse + aux_coefficient * AuxK, where mse is the mean over all elements of (x - x_hat)^2
          and AuxK is the mse between the residual e = x - x_hat (detached) and its reconstruction
          from the top-`aux_k` pre-activations among dead latents (see `common.auxk_loss`).
Decoder rows are kept at unit norm.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


@dataclasses.dataclass(frozen=True)
class TopKConfig(SAEConfig):
    """k: active latents per sample. aux_k: dead latents used by AuxK (None = min(m, d // 2),
    Gao et al.'s d/2). aux_coefficient: AuxK weight (1/32 in Gao et al.)."""

    k: int = 16
    aux_k: int | None = None
    aux_coefficient: float = 1 / 32

    def validate(self) -> None:
        super().validate()
        self._k("k")
        if self.aux_k is not None:
            require(self.aux_k >= 1, f"{type(self).__name__}.aux_k", self.aux_k,
                    "AuxK needs at least one latent", "an int >= 1 or None")
        self._nonneg("aux_coefficient")

    @property
    def resolved_aux_k(self) -> int:
        return self.aux_k if self.aux_k is not None else max(1, min(self.m, self.d // 2))


@register("topk", TopKConfig)
class TopKSAE(SAE):
    """TopK SAE with AuxK (Gao et al. 2024). See module docstring."""

    config: TopKConfig

    def select(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(idx, vals), each (n, k): the k largest pre-activations per row, ReLU applied."""
        vals, idx = a.topk(self.config.k, dim=1, sorted=False)
        return idx, F.relu(vals)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_codes(self.pre_acts(self._check_input(x)))

    def dense_codes(self, a: torch.Tensor) -> torch.Tensor:
        """(n, m) codes ReLU(TopK_k(a)) as a dense tensor."""
        return common.scatter_codes(*self.select(a), self.config.m)

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        a = self.pre_acts(x)
        idx, vals = self.select(a)
        x_hat = self.decode_topk(idx, vals, self.W_dec) + self.b_dec
        terms = {"mse": common.mse(x, x_hat)}
        terms["aux"] = self.config.aux_coefficient * common.auxk_loss(
            x - x_hat, a, self.dead_mask(), self.config.resolved_aux_k, self.W_dec, self.decode_topk)
        terms["total"] = terms["mse"] + terms["aux"]
        # the dense codes are built only if asked for; fire counts come from (idx, vals)
        return TrainOutput(x_hat, None, terms, topk=(idx, vals.detach()), m=self.config.m)
