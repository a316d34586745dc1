"""Family "absorption": full and partial absorption of parents by children (worlds with `parents`)."""

from __future__ import annotations

import torch

from synthsae.metrics.absorption import AbsorptionAccumulator
from synthsae.metrics.family import EvalBatch, Family, MetricKey, Output, register

ABS = "Absorption (hierarchy)"
ALWAYS_COUNTED = ("absorption.pairs", "absorption.pairs_evaluated")  # counts stay meaningful without events


@register
class Absorption(Family):
    name = "absorption"
    order = 30
    keys = (
        MetricKey("absorption.full_rate", "mean over pairs of P(parent latent silent, child latent fires | event)",
                  ABS),
        MetricKey("absorption.partial_rate", "mean over pairs of P(parent latent fires weakened | event)", ABS),
        MetricKey("absorption.rate", "full_rate + partial_rate", ABS, headline="absorption", plotted=True),
        MetricKey("absorption.parent_miss_rate", "mean over pairs of P(parent latent silent | event)", ABS),
        MetricKey("absorption.pairs", "parent-child pairs with both features matched", ABS),
        MetricKey("absorption.pairs_evaluated", "pairs with at least one event in the n samples", ABS),
        MetricKey("absorption.pairs_carrying_parent", "evaluated pairs whose child latent carries the parent direction",
                  ABS),
    )
    nan_if_not_applicable = ("absorption.full_rate", "absorption.partial_rate", "absorption.rate")

    @classmethod
    def applicable(cls, world, sae, config) -> tuple[bool, str]:
        parents = getattr(world, "parents", None)
        if parents is None or not bool((torch.as_tensor(parents) >= 0).any()):
            return False, "the world has no hierarchy (world.parents is None or has no parent-child pair)"
        return True, ""

    def __init__(self, ctx):
        super().__init__(ctx)
        cfg = ctx.config
        self.acc = AbsorptionAccumulator(torch.as_tensor(ctx.world.parents).cpu(), ctx.sigma, ctx.W.cpu(), ctx.D.cpu(),
                                         ctx.sign, cfg.absorption_cos_threshold, cfg.partial_ratio)

    def add(self, batch: EvalBatch) -> None:
        self.acc.add(batch.true_rows, batch.true_cols, batch.true_vals, batch.rows, batch.cols, batch.vals)

    def finalize(self) -> Output:
        metrics, table, notes = self.acc.compute()
        out = Output(tables={"absorption_pairs": table}, notes=notes)
        if metrics["absorption.pairs_evaluated"] == 0:
            out.not_applicable["absorption"] = (f"no parent-child pair had an event (child and parent both active) in "
                                                f"n = {self.ctx.config.n} samples; increase n")
            metrics = {k: (v if k in ALWAYS_COUNTED else float("nan")) for k, v in metrics.items()}
        out.metrics = metrics
        return out
