"""Task `recovery`: an independent Zipf world (no hierarchy, no correlation) -- can the SAE find the
planted features at all? F1 in both conventions, MCC, uniqueness, EV, dead latents, shrinkage."""

from __future__ import annotations

from synthsae.bench.task import BenchTask, Scale, register_task
from synthsae.bench.tasks import _common as C


@register_task
class Recovery(BenchTask):
    name = "recovery"
    title = "Recovery (independent Zipf world)"
    phenomenon = ("Independent features with Zipfian firing rates: the plain feature-recovery problem. F1 is reported "
                  "in the SAELens per-latent convention and ours (per-feature firing F1); shrinkage ρ is the median "
                  "code/true magnitude ratio on matched pairs (1 = no shrinkage).")
    metrics = tuple(C.METRICS[k] for k in ("f1", "firing_f1", "mcc", "uniqueness", "ev", "dead", "shrinkage", "l0"))
    headline = "mcc"

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import Zipf
        from synthsae.world.geometry import Gaussian
        from synthsae.world.magnitudes import Uniform

        if tier == "full":
            # exponent 0.7: expected true L0 24.2 for k = 25 (0.5 gave 59, a mixing task)
            world = WorldConfig(d=768, m=16384, dictionary=Gaussian(), firing=Zipf(exponent=0.7, max_p=0.4, min_p=5e-4),
                                magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        d, m = (16, 32) if tier == "micro" else (32, 96)
        world = WorldConfig(d=d, m=m, dictionary=Gaussian(), firing=Zipf(exponent=1.0, max_p=0.25, min_p=0.02),
                            magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m, 2, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m, 4)

    def measure(self, sae, world, scale, seed):
        return C.standard(C.evaluate(sae, world, scale.eval_n, seed))
