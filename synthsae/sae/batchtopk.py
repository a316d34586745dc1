"""`batchtopk`: the BatchTopK sparse autoencoder.

Source: Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders".

Training forward: a = (x - b_dec) W_enc + b_enc; over the whole batch of n samples keep the
    k*n largest entries of ReLU(a) (so k active latents per sample *on average*), zero the rest;
    x_hat = z W_dec + b_dec.
Inference (`encode`): z = a * 1[a > theta] with one global threshold theta, an EMA
    (beta = `threshold_beta`, started at the first batch's value) of the smallest positive value
    kept by the batch top-k in training.
Loss: mse + aux_coefficient * AuxK (as in `topk`), mse = mean over all elements of (x - x_hat)^2.
Decoder rows are kept at unit norm.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import TrainOutput, register
from synthsae.sae.topk import TopKConfig, TopKSAE


@dataclasses.dataclass(frozen=True)
class BatchTopKConfig(TopKConfig):
    """k: mean active latents per sample. threshold_beta: EMA factor of the inference threshold."""

    threshold_beta: float = 0.999

    def validate(self) -> None:
        super().validate()
        require(0.0 <= self.threshold_beta < 1.0, f"{type(self).__name__}.threshold_beta", self.threshold_beta,
                "an EMA factor must lie in [0, 1)", "a float in [0, 1)")


@register("batchtopk", BatchTopKConfig)
class BatchTopKSAE(TopKSAE):
    """BatchTopK SAE (Bussmann et al. 2024). See module docstring."""

    config: BatchTopKConfig

    def __init__(self, config: BatchTopKConfig):
        super().__init__(config)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.long))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre_acts(self._check_input(x))
        return a * (a > self.threshold.clamp_min(0))

    def batch_select(self, a: torch.Tensor) -> torch.Tensor:
        """Dense codes keeping the k*n largest entries of ReLU(a) over the batch."""
        n, m = a.shape
        flat = F.relu(a).flatten()
        vals, idx = flat.topk(min(self.config.k * n, flat.numel()), sorted=False)
        return torch.zeros_like(flat).scatter(0, idx, vals).view(n, m)

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        a = self.pre_acts(x)
        z = self.batch_select(a)
        x_hat = self.decode(z)
        terms = {"mse": common.mse(x, x_hat)}
        terms["aux"] = self.config.aux_coefficient * common.auxk_loss(
            x - x_hat, a, self.dead_mask(), self.config.resolved_aux_k, self.W_dec, self.decode_topk)
        terms["total"] = terms["mse"] + terms["aux"]
        return TrainOutput(x_hat, z, terms)

    @torch.no_grad()
    def update(self, out: TrainOutput, step: int) -> None:
        super().update(out, step)
        positive = out.codes[out.codes > 0]
        if positive.numel() == 0:
            return
        value = positive.min()
        if int(self.threshold_updates) == 0:
            self.threshold.copy_(value)
        else:
            common.ema_(self.threshold, value, self.config.threshold_beta)
        self.threshold_updates.add_(1)
