"""Family "downstream": KL of a fixed synthetic readout of the true features, x versus x_hat."""

from __future__ import annotations

import math

from synthsae.metrics.downstream import DownstreamAccumulator, DownstreamReadout
from synthsae.metrics.family import EvalBatch, Family, MetricKey, Output, register

DOWN = "Downstream"


@register
class Downstream(Family):
    name = "downstream"
    order = 50
    keys = (
        MetricKey("downstream.kl", "E KL(readout(x) || readout(x_hat))", DOWN),
        MetricKey("downstream.kl_zero_ablation", "E KL(readout(x) || readout(0))", DOWN),
        MetricKey("downstream.score", "1 - kl / kl_zero_ablation (1 = faithful, 0 = as bad as ablation)", DOWN),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        cfg = ctx.config
        self.acc = DownstreamAccumulator(DownstreamReadout(ctx.world, cfg.downstream_classes, cfg.seed, ctx.device))

    def add(self, batch: EvalBatch) -> None:
        self.acc.add(batch.x, batch.x_hat)

    def finalize(self) -> Output:
        out = Output(metrics=self.acc.compute())
        if math.isnan(out.metrics["downstream.score"]):
            out.not_applicable["downstream.score"] = "the zero-ablation KL is 0: the readout never moves on these samples"
        return out
