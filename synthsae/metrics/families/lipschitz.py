"""Family "lipschitz": empirical lower bounds on the Lipschitz constant of the SAE's coding map."""

from __future__ import annotations

import math

from synthsae.metrics.family import Family, MetricKey, Output, register
from synthsae.metrics.lipschitz import encoder_lipschitz

LIP = "Lipschitz"


@register
class Lipschitz(Family):
    name = "lipschitz"
    order = 70
    timed = True
    keys = (
        MetricKey("lipschitz.encoder_pairs_max", "max ||c(x) - c(x')|| / ||x - x'|| over random sample pairs", LIP),
        MetricKey("lipschitz.encoder_near_max", "the same ratio for x and x + 0.01 rms(x) u (u random unit)", LIP),
        MetricKey("lipschitz.encoder_jacobian_max", "max over samples of the spectral norm of dc/dx (power iteration)",
                  LIP),
        MetricKey("lipschitz.encoder_jacobian_median", "median over samples of that spectral norm", LIP),
    )

    def finalize(self) -> Output:
        ctx, cfg = self.ctx, self.ctx.config
        xs = ctx.world.sample(cfg.lipschitz_samples, seed=cfg.seed + 2, device=ctx.device, dtype=ctx.W.dtype).x
        out = Output(metrics=encoder_lipschitz(ctx.sae, xs, power_iters=cfg.lipschitz_power_iters, seed=cfg.seed + 2))
        if math.isnan(out.metrics["lipschitz.encoder_jacobian_max"]):
            out.not_applicable["lipschitz.encoder_jacobian"] = ("sae.encode has no autograd graph; only pair ratios "
                                                                "were measured")
        return out
