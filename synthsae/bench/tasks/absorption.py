"""Task `absorption`: a hierarchy whose children are mutually exclusive -- does the SAE's parent
latent stop firing when a child fires (the child latent "absorbs" the parent direction)?

Metrics: `absorption.rate` and `absorption.parent_miss_rate` of `synthsae.evaluate` (definitions
in docs/metrics.md), and the *absorption gap* proposed in SAELens issue #729, computed here: for
each parent -> child edge, with L the latent Hungarian-matched to the parent,

    gap = P(L fires | parent on, child off) - P(L fires | parent on, child on)

averaged over edges with at least `MIN_EVENTS` samples on each side (0 = no absorption; 1 = the
parent latent is silenced whenever the child is on)."""

from __future__ import annotations

import numpy as np

from synthsae.bench.task import BenchTask, Metric, Scale, register_task
from synthsae.bench.tasks import _common as C

MIN_EVENTS = 5


def absorption_gap(sae, world, n: int, seed: int) -> float:
    batch = world.sample(n, seed=20_000 + seed)
    truth = batch.codes.to_dense().cpu() != 0
    fires = C.dense_codes(sae, batch.x) != 0
    latent = C.matched_latents(sae.W_dec, world.dictionary)
    parents = world.parents.cpu().numpy()
    gaps = []
    for child, parent in enumerate(parents):
        if parent < 0 or latent[parent] < 0:
            continue
        on = truth[:, parent]
        with_child, without = on & truth[:, child], on & ~truth[:, child]
        if int(with_child.sum()) < MIN_EVENTS or int(without.sum()) < MIN_EVENTS:
            continue
        L = fires[:, latent[parent]]
        gaps.append(float(L[without].float().mean() - L[with_child].float().mean()))
    return float(np.mean(gaps)) if gaps else float("nan")


@register_task
class Absorption(BenchTask):
    name = "absorption"
    title = "Absorption (hierarchy, mutually exclusive children)"
    phenomenon = ("Trees of features where a child fires only with its parent and siblings exclude each other: an "
                  "SAE can lower its L0 by folding the parent's direction into each child latent (absorption).")
    metrics = (Metric("absorption_gap", "absorption gap", higher=False),
               Metric("absorption_rate", "absorption rate", higher=False),
               Metric("parent_miss", "parent-miss rate", higher=False),
               C.METRICS["f1"], C.METRICS["mcc"], C.METRICS["ev"], C.METRICS["l0"])
    headline = "absorption_gap"

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import LinearLaw, Zipf
        from synthsae.world.geometry import Gaussian
        from synthsae.world.hierarchy import HierarchyConfig
        from synthsae.world.magnitudes import Uniform

        # True L0 about k (expected 24.3 at the full tier, 5.7 at lite): with a true L0 several times k
        # every SAE is "sparse but wrong" first (the mixing task), which hides absorption -- the lite
        # world had L0 13 for k = 6 until 2026-12-02, and every SAE's absorption gap was <= 0.
        if tier == "full":
            world = WorldConfig(d=768, m=16384, dictionary=Gaussian(), firing=Zipf(exponent=0.6, max_p=0.4, min_p=5e-4),
                                hierarchy=HierarchyConfig(roots=128, branching=4, depth=3, mutually_exclusive=1.0,
                                                          compensate="first_order"),
                                magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        roots, d, m = (2, 16, 32) if tier == "micro" else (6, 32, 96)
        law = LinearLaw(max_p=0.3, min_p=0.05) if tier == "micro" else LinearLaw(max_p=0.15, min_p=0.01)
        world = WorldConfig(d=d, m=m, dictionary=Gaussian(), firing=law,
                            hierarchy=HierarchyConfig(roots=roots, branching=3, depth=1, mutually_exclusive=1.0),
                            magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m, 3, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m, 6)

    def measure(self, sae, world, scale, seed):
        raw = C.evaluate(sae, world, scale.eval_n, seed, families=("reconstruction", "recovery", "absorption"))
        out = C.standard(raw, ("f1", "mcc", "ev", "l0"))
        out["absorption_rate"] = raw.get("absorption.rate", float("nan"))
        out["parent_miss"] = raw.get("absorption.parent_miss_rate", float("nan"))
        out["absorption_gap"] = absorption_gap(sae, world, scale.eval_n, seed)
        return out
