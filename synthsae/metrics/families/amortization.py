"""Family "amortization" (opt-in): the SAE's codes against the exact sparse codes of the stated
elastic-net problem, and that exact map's Lipschitz constant (needs `synthsae.solvers`)."""

from __future__ import annotations

import torch

from synthsae.metrics.family import Family, MetricKey, Output, register

AMO, LIP = "Amortization gap", "Lipschitz"


@register
class Amortization(Family):
    name = "amortization"
    order = 80
    default = False
    keys = (
        MetricKey("amortization.objective_gap", "mean P(z_sae) - P(z*) of the elastic-net objective", AMO),
        MetricKey("amortization.relative_objective_gap", "mean (P(z_sae) - P(z*)) / P(z*)", AMO),
        MetricKey("amortization.support_f1", "mean per-sample F1 of supp z_sae against supp z*", AMO),
        MetricKey("amortization.code_error", "pooled sqrt(sum ||z_sae - z*||^2 / sum ||z*||^2)", AMO),
        MetricKey("amortization.certified_fraction", "share of exact codes whose certificate passed", AMO),
        MetricKey("lipschitz.exact_bound", "min(||W_dec||_2 / l2, 1 / (2 sqrt(l2))), bound for the exact map", LIP),
        MetricKey("lipschitz.exact_near_max", "max ||z*(x) - z*(x')|| / ||x - x'|| over nearby pairs", LIP),
        MetricKey("lipschitz.exact_jacobian_max", "max spectral norm of the exact map's active-set Jacobian", LIP),
    )

    @classmethod
    def applicable(cls, world, sae, config) -> tuple[bool, str]:
        try:
            import synthsae.metrics.amortization  # noqa: F401  (needs synthsae.solvers)
        except ImportError as err:
            return False, f"needs synthsae.solvers ({err})"
        if config.amortization_l1 is None:
            return False, "needs the penalties of the exact problem: set amortization_l1 (and amortization_l2)"
        return True, ""

    def finalize(self) -> Output:
        from synthsae.metrics.amortization import amortization_gap, exact_map_lipschitz

        ctx, cfg, sae = self.ctx, self.ctx.config, self.ctx.sae
        out = Output()
        x = ctx.world.sample(cfg.lipschitz_samples, seed=cfg.seed + 3, device=ctx.device, dtype=sae.W_dec.dtype).x
        out.metrics.update(amortization_gap(sae, x, cfg.amortization_l1, cfg.amortization_l2))
        if cfg.amortization_l2 > 0:  # the exact map is Lipschitz only with strong convexity
            with torch.no_grad():
                bias = sae.decode(torch.zeros(1, sae.W_dec.shape[0], dtype=sae.W_dec.dtype, device=ctx.device))[0]
            out.metrics.update(exact_map_lipschitz(sae.W_dec.detach(), x - bias, cfg.amortization_l1,
                                                   cfg.amortization_l2, seed=cfg.seed + 3))
        else:
            out.not_applicable["lipschitz.exact"] = "the exact map's Lipschitz bound needs amortization_l2 > 0"
        return out
