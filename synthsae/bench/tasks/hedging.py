"""Task `hedging` (Chanin et al., arXiv 2505.11756): correlated parent/child features and an SAE
*narrower* than the truth. Without room for every child, the latent matched to a parent hedges:
its decoder row tilts towards the children that co-fire with it.

Metric `child_leak`: for each parent p with matched latent L (Hungarian, true -> SAE), the share
of the unit decoder row w_L's squared norm in the span of p's children directions after the
parent's own direction is projected out: ||P_{C⊥p} w_L||², averaged over parents (0 = a clean
parent latent; larger = more child direction mixed in). `parent_cos`: the mean |cos(w_L, d_p)|.
Chance level: a random unit row puts about (children per parent) / (d - 1) of its norm in that span
(3 / 31 ≈ 0.10 at the lite tier), which is what the `random` reference row shows."""

from __future__ import annotations

import numpy as np
import torch

from synthsae.bench.task import BenchTask, Metric, Scale, register_task
from synthsae.bench.tasks import _common as C


def child_leak(W_dec, world) -> tuple[float, float]:
    D = C.unit_rows(world.dictionary)
    W = C.unit_rows(W_dec)
    latent = C.matched_latents(W_dec, world.dictionary)
    parents = world.parents.cpu().numpy()
    leaks, coss = [], []
    for p in sorted({int(q) for q in parents if q >= 0}):
        if latent[p] < 0:
            continue
        kids = torch.as_tensor(np.flatnonzero(parents == p))
        dp = D[p]
        Ck = D[kids] - (D[kids] @ dp)[:, None] * dp[None, :]  # children with the parent direction removed
        Q, _ = torch.linalg.qr(Ck.T)  # (d, r) orthonormal basis of that span
        w = W[latent[p]]
        leaks.append(float((Q.T @ w).pow(2).sum()))
        coss.append(float((w @ dp).abs()))
    return (float(np.mean(leaks)), float(np.mean(coss))) if leaks else (float("nan"), float("nan"))


@register_task
class Hedging(BenchTask):
    name = "hedging"
    title = "Hedging (correlated parent/child, SAE narrower than the truth)"
    phenomenon = ("Children fire only with their parent (not mutually exclusive), and the SAE has half as many latents "
                  "as the world has features: the parent latent can lower its error by leaning towards its children. "
                  "A random row's leak (chance level, the random reference row) is about children / (d − 1).")
    metrics = (Metric("child_leak", "child leak into parent latent", higher=False),
               Metric("parent_cos", "parent |cos|"), C.METRICS["mcc"], C.METRICS["ev"], C.METRICS["l0"])
    headline = "child_leak"
    references = ("ceiling", "random")  # no per-feature F1 column for a probe to fill

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import LinearLaw, Zipf
        from synthsae.world.geometry import Gaussian
        from synthsae.world.hierarchy import HierarchyConfig
        from synthsae.world.magnitudes import Uniform

        # True L0 about k (expected 21.6 at the full tier, 5.2 at lite), so hedging is not confounded
        # with mixing (the lite world had L0 12.6 for k = 6 until 2026-12-02).
        if tier == "full":
            world = WorldConfig(d=768, m=16384, dictionary=Gaussian(), firing=Zipf(exponent=0.5, max_p=0.4, min_p=5e-4),
                                hierarchy=HierarchyConfig(roots=512, branching=4, depth=2, mutually_exclusive=0.0),
                                magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        roots, d, m = (2, 16, 32) if tier == "micro" else (8, 32, 96)
        law = LinearLaw(max_p=0.3, min_p=0.05) if tier == "micro" else LinearLaw(max_p=0.15, min_p=0.01)
        world = WorldConfig(d=d, m=m, dictionary=Gaussian(), firing=law,
                            hierarchy=HierarchyConfig(roots=roots, branching=3, depth=1, mutually_exclusive=0.0),
                            magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m // 2, 3, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m // 2, 6)

    def measure(self, sae, world, scale, seed):
        out = C.standard(C.evaluate(sae, world, scale.eval_n, seed), ("mcc", "ev", "l0"))
        out["child_leak"], out["parent_cos"] = child_leak(sae.W_dec, world)
        return out
