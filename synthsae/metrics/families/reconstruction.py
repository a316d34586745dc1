"""Family "reconstruction" (always computed): explained variance, MSE, L0, dead and rare latents."""

from __future__ import annotations

import numpy as np
import torch

from synthsae.metrics.family import EvalBatch, Family, MetricKey, Output, register
from synthsae.metrics.reconstruction import ReconstructionAccumulator, latent_usage

REC, SPA, LAT = "Reconstruction", "Sparsity", "Latents"


@register
class Reconstruction(Family):
    name = "reconstruction"
    order = 10
    core = True
    keys = (
        MetricKey("reconstruction.explained_variance", "1 - E||x - x_hat||^2 / total variance (SAEBench form)", REC,
                  headline="EV", plotted=True),
        MetricKey("reconstruction.mse", "E||x - x_hat||^2 / d, mean squared error per element", REC),
        MetricKey("reconstruction.sq_error", "E||x - x_hat||^2, squared error per sample", REC),
        MetricKey("reconstruction.total_variance", "E||x||^2 - ||E x||^2, summed over dimensions", REC),
        MetricKey("reconstruction.norm_ratio", "E[||x_hat|| / ||x||] over samples with ||x|| > 1e-6", REC),
        MetricKey("sparsity.l0", "mean number of firing latents per sample", SPA, headline="L0", plotted=True),
        MetricKey("sparsity.true_l0", "mean number of active true features per sample", SPA),
        MetricKey("latents.dead_count", "latents that never fire in the n samples", LAT),
        MetricKey("latents.dead_fraction", "share of latents that never fire in the n samples", LAT,
                  headline="dead", plotted=True),
        MetricKey("latents.rare_count", "live latents firing on fewer than rare_threshold of samples", LAT),
        MetricKey("latents.rare_fraction", "share of latents that are live but rare", LAT),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self.recon = ReconstructionAccumulator()
        self.l0_sae = self.l0_true = 0.0
        self.fires = torch.zeros(ctx.m_sae, dtype=torch.float64)

    def add(self, batch: EvalBatch) -> None:
        self.recon.add(batch.x, batch.x_hat)
        self.l0_sae += batch.rows.numel()
        self.l0_true += batch.true_rows.numel()
        self.fires += torch.bincount(batch.cols, minlength=self.ctx.m_sae).double()

    def finalize(self) -> Output:
        cfg = self.ctx.config
        out = Output(metrics=self.recon.compute())
        out.metrics["sparsity.l0"] = self.l0_sae / cfg.n
        out.metrics["sparsity.true_l0"] = self.l0_true / cfg.n
        usage = latent_usage(self.fires, cfg.n, cfg.rare_threshold)
        if cfg.rare_threshold * cfg.n < 1:
            usage["latents.rare_count"] = usage["latents.rare_fraction"] = float("nan")
            out.not_applicable["latents.rare"] = (
                f"n = {cfg.n} samples cannot resolve a firing rate below rare_threshold = {cfg.rare_threshold:g}; "
                f"use n >= {int(np.ceil(1 / cfg.rare_threshold))}")
        out.metrics.update(usage)
        return out
