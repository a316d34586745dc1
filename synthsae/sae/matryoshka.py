"""`matryoshka`: Matryoshka sparse autoencoder (nested dictionaries) with BatchTopK inside.

Source: Bussmann, Nabeshima, Karvonen & Nanda 2025, "Learning Multi-Level Features with
Matryoshka Sparse Autoencoders" (also Nabeshima 2024, "Matryoshka Sparse Autoencoders").

Forward: codes z as in `batchtopk` (batch top-k*n in training, learned threshold at inference);
    x_hat = z W_dec + b_dec.
Loss: the mean over the nested prefixes m_1 < m_2 < ... < m_P = m of
    mse(x, z[:, :m_p] W_dec[:m_p] + b_dec)   (mean over all elements),
    plus aux_coefficient * AuxK on the full reconstruction. Each prefix of the dictionary must
    reconstruct on its own, so early latents learn general (parent) features.
Decoder rows are kept at unit norm.
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import TrainOutput, register
from synthsae.sae.batchtopk import BatchTopKConfig, BatchTopKSAE


@dataclasses.dataclass(frozen=True)
class MatryoshkaConfig(BatchTopKConfig):
    """prefixes: strictly increasing prefix sizes ending at m; None = (m/16, m/8, m/4, m/2, m)
    (rounded, duplicates and zeros dropped)."""

    prefixes: tuple[int, ...] | None = None

    def validate(self) -> None:
        super().validate()
        if self.prefixes is not None:
            p = list(self.prefixes)
            ok = len(p) >= 1 and p[-1] == self.m and all(a < b for a, b in zip(p, p[1:])) and p[0] >= 1
            require(ok, f"{type(self).__name__}.prefixes", self.prefixes,
                    f"prefix sizes must be strictly increasing, >= 1, and end at m = {self.m}",
                    f"e.g. ({max(1, self.m // 4)}, {max(1, self.m // 2)}, {self.m})")

    @property
    def resolved_prefixes(self) -> tuple[int, ...]:
        if self.prefixes is not None:
            return tuple(self.prefixes)
        sizes = sorted({max(1, self.m // f) for f in (16, 8, 4, 2)} | {self.m})
        return tuple(sizes)


@register("matryoshka", MatryoshkaConfig)
class MatryoshkaSAE(BatchTopKSAE):
    """Matryoshka BatchTopK SAE (Bussmann et al. 2025). See module docstring."""

    config: MatryoshkaConfig

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        a = self.pre_acts(x)
        z = self.batch_select(a)
        x_hat = self.b_dec.expand_as(x)
        losses = []
        start = 0
        for end in self.config.resolved_prefixes:
            x_hat = x_hat + self.decode_with(z[:, start:end], self.W_dec[start:end])
            losses.append(common.mse(x, x_hat))
            start = end
        terms = {"mse": common.mse(x, x_hat).detach(), "prefix_mse": torch.stack(losses).mean()}
        terms["aux"] = self.config.aux_coefficient * common.auxk_loss(
            x - x_hat, a, self.dead_mask(), self.config.resolved_aux_k, self.W_dec, self.decode_topk)
        terms["total"] = terms["prefix_mse"] + terms["aux"]
        return TrainOutput(x_hat, z, terms)
