"""Family "steering": push samples along matched true features and see which latents move."""

from __future__ import annotations

import numpy as np

from synthsae.metrics.family import Family, MetricKey, Output, register
from synthsae.metrics.steering import steering_fidelity

STEER = "Steering"


@register
class Steering(Family):
    name = "steering"
    order = 60
    timed = True
    keys = (
        MetricKey("steering.on_target", "mean signed move of the matched latent per unit push (1 ideal)", STEER),
        MetricKey("steering.off_target", "mean norm of the other latents' move per unit push (0 ideal)", STEER),
        MetricKey("steering.leakage", "mean off / (|on| + off) (0 ideal)", STEER),
        MetricKey("steering.features", "number of matched true features pushed", STEER),
    )

    def finalize(self) -> Output:
        ctx, cfg = self.ctx, self.ctx.config
        if not bool((np.asarray(ctx.sigma) >= 0).any()):  # only without any matched pair
            return Output(metrics={k.name: float("nan") for k in self.keys},
                          not_applicable={"steering": "no true feature is matched to a latent"})
        metrics, table = steering_fidelity(ctx.sae, ctx.world, ctx.sigma, ctx.sign, cfg.steering_features,
                                           cfg.steering_samples, seed=cfg.seed + 1, device=ctx.device)
        return Output(metrics=metrics, tables={"steering": table})
