"""Task `stability`: tied low-rank subspace groups (features that fire together inside a rank-r
subspace are not identifiable individually; their subspace is). Do SAEs trained on different
seeds find the same latents, and do they recover the group subspaces?

Metrics: `reappearance`, the mean over latents of the share of other seeds' SAEs holding a latent
with |cos| >= 0.7 (`synthsae.metrics.stability.reappearance`); `ev_stable`, the share of EV carried
by stable latents (reappearing in >= half of the other seeds); `subspace_angle`, the mean over
covered groups of the largest principal angle (degrees) between a group's span and its latents'
span, and `groups_covered` (share of groups with enough latents inside)
(`synthsae.metrics.subspaces.group_subspace_recovery`)."""

from __future__ import annotations

from synthsae.bench.task import BenchTask, Metric, Scale, register_task
from synthsae.bench.tasks import _common as C


@register_task
class Stability(BenchTask):
    name = "stability"
    title = "Stability (tied subspace groups, across seeds)"
    phenomenon = ("Tied rank-r subspace groups plus ordinary features: latents inside a group span are not "
                  "identifiable, so SAEs of different seeds may disagree while covering the same subspace.")
    metrics = (Metric("reappearance", "cross-seed reappearance"), Metric("ev_stable", "EV share on stable latents"),
               Metric("subspace_angle", "subspace angle (°)", higher=False),
               Metric("groups_covered", "groups covered"), C.METRICS["mcc"], C.METRICS["ev"], C.METRICS["l0"])
    headline = "reappearance"
    references = ("ceiling", "random")  # tied groups have no per-feature truth for a probe to read

    def scale(self, tier: str) -> Scale:
        from synthsae.world import WorldConfig
        from synthsae.world.firing import Constant
        from synthsae.world.geometry import Subspaces
        from synthsae.world.magnitudes import Uniform

        if tier == "full":
            world = WorldConfig(d=768, m=16384, dictionary=Subspaces(n_groups=1024, rank=4, tied=True),
                                firing=Constant(p=25 / 16384), magnitudes=Uniform(low=0.5, high=1.5))
            return Scale(world, 4096, 25, 200_000_000, 1024, 3e-4, 100_000)
        groups, d, m = (2, 16, 32) if tier == "micro" else (6, 32, 64)
        world = WorldConfig(d=d, m=m, dictionary=Subspaces(n_groups=groups, rank=3, tied=True),
                            firing=Constant(p=0.06), magnitudes=Uniform(low=0.5, high=1.5))
        if tier == "micro":
            return Scale(world, m, 3, 256 * 12, 256, 3e-3, 1024)
        return C.lite(world, m, 6)

    def measure(self, sae, world, scale, seed):
        from synthsae.metrics.subspaces import group_subspace_recovery

        out = C.standard(C.evaluate(sae, world, scale.eval_n, seed), ("mcc", "ev", "l0"))
        sub, _ = group_subspace_recovery(sae.W_dec.detach().cpu(), world.dictionary.cpu(), world.groups.cpu())
        out["subspace_angle"] = sub["subspaces.max_angle_deg_mean"]
        out["groups_covered"] = sub["subspaces.groups_covered"] / max(sub["subspaces.groups"], 1.0)
        return out

    def across_seeds(self, saes, world, scale):
        from synthsae.metrics.stability import stability

        if len(saes) < 2:
            return None
        res = stability(saes, world, n=min(scale.eval_n, 8192), seed=30_000)
        return [{"reappearance": p["stability.mean_reappearance"], "ev_stable": p["stability.ev_share_stable"]}
                for p in res.per_sae]
