"""Task `amortization`: a coherent dictionary (max |cos| between atoms 0.5), where a one-layer
encoder cannot compute the optimal sparse code. The gap of the SAE's codes to certified exact
codes on the SAE's *own* decoder (`synthsae.metrics.amortization.amortization_gap`):

    P(z) = ½‖x − b − z W_dec‖² + λ Σ z_j, z >= 0,   λ = `LAMBDA` (solver convention)

`rel_gap`: mean (P(z_sae) − P(z*)) / P(z*); `support_f1`: per-sample F1 of supp z_sae against
supp z*; `code_error`: the pooled relative error sqrt(Σ‖z_sae − z*‖² / Σ‖z*‖²) over the samples.
One λ for every SAE, so SAEs are compared against the
same kind of optimum; with TopK-like SAEs, whose own objective has no ℓ1 term, part of the gap is
the objectives' difference, not the encoder's error (stated, not corrected)."""

from __future__ import annotations


from synthsae.bench.task import BenchTask, Metric, Scale, register_task
from synthsae.bench.tasks import _common as C

LAMBDA = 0.05
EXACT_N = 1024


@register_task
class Amortization(BenchTask):
    name = "amortization"
    title = "Amortization (coherent dictionary)"
    phenomenon = ("A dictionary with mutual coherence 0.5: the exact sparse code of x is a non-trivial optimization "
                  "that a single encoder layer can only approximate.")
    metrics = (Metric("rel_gap", "relative objective gap", higher=False),
               Metric("support_f1", "support F1 vs exact"), Metric("code_error", "code error", higher=False),
               C.METRICS["mcc"], C.METRICS["ev"], C.METRICS["l0"])
    headline = "rel_gap"
    references = ("ceiling", "random")  # no per-feature F1 column for a probe to fill

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import Zipf
        from synthsae.world.geometry import Coherence
        from synthsae.world.magnitudes import Uniform

        if tier == "full":
            world = WorldConfig(d=768, m=4096, dictionary=Coherence(target=0.5), firing=Zipf(exponent=1.0, max_p=0.1,
                                min_p=1e-3), magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        d, m = (16, 32) if tier == "micro" else (32, 96)
        world = WorldConfig(d=d, m=m, dictionary=Coherence(target=0.5 if tier != "micro" else 0.6),
                            firing=Zipf(exponent=1.0, max_p=0.25, min_p=0.02), magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m, 2, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m, 4)

    def measure(self, sae, world, scale, seed):
        from synthsae.metrics.amortization import amortization_gap

        out = C.standard(C.evaluate(sae, world, scale.eval_n, seed), ("mcc", "ev", "l0"))
        x = world.sample(min(EXACT_N, scale.eval_n), seed=40_000 + seed).x
        gap = amortization_gap(sae, x, LAMBDA)
        out["rel_gap"] = gap["amortization.relative_objective_gap"]
        out["support_f1"] = gap["amortization.support_f1"]
        out["code_error"] = gap["amortization.code_error"]
        return out
