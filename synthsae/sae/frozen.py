"""Baselines from the SAE sanity-check paper: parts of a TopK SAE left (almost) untrained.

Source: arXiv 2602.14111 (2026), sanity checks for sparse autoencoders: on synthetic data,
SAEs with a frozen random decoder, a "soft-frozen" decoder or a frozen random encoder nearly match
fully trained ones.

All three are the `topk` SAE (Gao et al. 2024; same forward pass and loss: mse + AuxK, codes =
ReLU(TopK_k((x - b_dec) W_enc + b_enc)), x_hat = z W_dec + b_dec) with a restriction:
* `frozen_decoder`: W_dec stays at its random unit-norm initialization (no gradient); W_enc,
  b_enc and b_dec train.
* `soft_frozen_decoder`: W_dec trains, but after every optimizer step each row is renormalized and,
  if its cosine with its random initial row fell below `min_cosine` (0.8), projected back to the
  nearest unit vector on the cone cos = min_cosine around it.
* `frozen_encoder`: W_enc and b_enc stay at initialization (W_enc = W_dec(0)^T, b_enc = 0); the
  decoder and b_dec train.
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import register
from synthsae.sae.topk import TopKConfig, TopKSAE


@dataclasses.dataclass(frozen=True)
class FrozenDecoderConfig(TopKConfig):
    """As `TopKConfig`; the decoder is never trained."""


@dataclasses.dataclass(frozen=True)
class SoftFrozenDecoderConfig(TopKConfig):
    """As `TopKConfig`, plus min_cosine: each decoder row keeps cos >= min_cosine with its start."""

    min_cosine: float = 0.8

    def validate(self) -> None:
        super().validate()
        require(0.0 <= self.min_cosine <= 1.0, f"{type(self).__name__}.min_cosine", self.min_cosine,
                "a cosine bound must lie in [0, 1]", "a float in [0, 1]")


@dataclasses.dataclass(frozen=True)
class FrozenEncoderConfig(TopKConfig):
    """As `TopKConfig`; the encoder (W_enc, b_enc) is never trained."""


@register("frozen_decoder", FrozenDecoderConfig)
class FrozenDecoderSAE(TopKSAE):
    """TopK SAE with a random decoder that is never trained. See module docstring."""

    def __init__(self, config: FrozenDecoderConfig):
        super().__init__(config)
        self.W_dec.requires_grad_(False)


@torch.no_grad()
def project_to_cone_(W: torch.Tensor, W0: torch.Tensor, min_cosine: float) -> None:
    """In place: rows of W (unit) with cos(W_j, W0_j) < min_cosine move to the closest unit vector
    with cosine exactly min_cosine (W0 rows unit). Rows already inside the cone are untouched."""
    cos = (W * W0).sum(dim=1, keepdim=True)
    outside = (cos < min_cosine).squeeze(1)
    if not outside.any():
        return
    ortho = W - cos * W0
    ortho = ortho / ortho.norm(dim=1, keepdim=True).clamp_min(1e-12)
    projected = min_cosine * W0 + (1.0 - min_cosine**2) ** 0.5 * ortho
    W[outside] = projected[outside]


@register("soft_frozen_decoder", SoftFrozenDecoderConfig)
class SoftFrozenDecoderSAE(TopKSAE):
    """TopK SAE whose decoder rows stay within `min_cosine` of their random start (buffer
    `W_dec_init`). See module docstring."""

    config: SoftFrozenDecoderConfig

    def __init__(self, config: SoftFrozenDecoderConfig):
        super().__init__(config)
        self.register_buffer("W_dec_init", self.W_dec.detach().clone())

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        super().after_step(step)
        project_to_cone_(self.W_dec, self.W_dec_init, self.config.min_cosine)
        common.normalize_rows_(self.W_dec)


@register("frozen_encoder", FrozenEncoderConfig)
class FrozenEncoderSAE(TopKSAE):
    """TopK SAE with a random encoder (= initial decoder^T) that is never trained."""

    def __init__(self, config: FrozenEncoderConfig):
        super().__init__(config)
        self.W_enc.requires_grad_(False)
        self.b_enc.requires_grad_(False)
