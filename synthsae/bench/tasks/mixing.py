"""Task `mixing` (Chanin et al., arXiv 2508.16560, "sparse but wrong"): the world's true L0 is
well above the SAE's k. Forced to explain x with too few latents, an SAE learns decoder rows
that mix several true features.

Metric `mixing`: for each true feature, 1 - cos²(w_L, d_f) of the latent L Hungarian-matched to
it (the share of the unit decoder row's squared norm *off* its own feature), averaged over
features (0 = pure rows). `k_over_true_l0` states how far below the truth k is. The lite tier
runs two k (a third and two thirds of the true L0), so the report shows mixing as k goes down."""

from __future__ import annotations


from synthsae.bench.task import BenchTask, Metric, Scale, register_task
from synthsae.bench.tasks import _common as C


def mixing(W_dec, world) -> float:
    D, W = C.unit_rows(world.dictionary), C.unit_rows(W_dec)
    latent = C.matched_latents(W_dec, world.dictionary)
    ok = latent >= 0
    cos = (D[ok] * W[latent[ok]]).sum(1)
    return float((1 - cos.pow(2)).mean()) if ok.any() else float("nan")


@register_task
class Mixing(BenchTask):
    name = "mixing"
    title = "Mixing (true L0 above k)"
    phenomenon = ("Independent features with a true L0 about three times the SAEs' k: each decoder row may mix "
                  "several true features to reconstruct with fewer active latents.")
    metrics = (Metric("mixing", "mixing (1 − cos²)", higher=False), C.METRICS["mcc"], C.METRICS["firing_f1"],
               C.METRICS["ev"], Metric("k_over_true_l0", "k / true L0", higher=None), C.METRICS["l0"])
    headline = "mixing"

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import Constant
        from synthsae.world.geometry import Gaussian
        from synthsae.world.magnitudes import Uniform

        if tier == "full":
            world = WorldConfig(d=768, m=16384, dictionary=Gaussian(), firing=Constant(p=75 / 16384),
                                magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        d, m, p = (16, 32, 0.25) if tier == "micro" else (32, 64, 0.19)
        world = WorldConfig(d=d, m=m, dictionary=Gaussian(), firing=Constant(p=p), magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m, 3, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m, 4, extra_k=(8,),
                     note="True L0 ≈ 12.2: k = 4 and k = 8 are a third and two thirds of it.")

    def measure(self, sae, world, scale, seed):
        out = C.standard(C.evaluate(sae, world, scale.eval_n, seed), ("mcc", "firing_f1", "ev", "l0"))
        out["mixing"] = mixing(sae.W_dec, world)
        out["k_over_true_l0"] = scale.k / float(world.expected_l0())
        return out
