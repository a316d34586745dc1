"""Family "subspaces": principal angles between each true subspace group and the latents inside it."""

from __future__ import annotations

import math

import torch

from synthsae.metrics.family import Family, MetricKey, Output, register
from synthsae.metrics.subspaces import group_subspace_recovery

SUB = "Subspace groups"


@register
class Subspaces(Family):
    name = "subspaces"
    order = 40
    keys = (
        MetricKey("subspaces.groups", "number of true subspace groups", SUB),
        MetricKey("subspaces.groups_covered", "groups with at least rank(group) latents inside them", SUB),
        MetricKey("subspaces.max_angle_deg_mean", "mean over covered groups of the largest principal angle (deg)", SUB),
    )

    @classmethod
    def applicable(cls, world, sae, config) -> tuple[bool, str]:
        groups = getattr(world, "groups", None)
        if groups is None or not bool((torch.as_tensor(groups) >= 0).any()):
            return False, "the world has no subspace groups (world.groups is None or all -1)"
        return True, ""

    def finalize(self) -> Output:
        ctx = self.ctx
        metrics, table = group_subspace_recovery(ctx.W.cpu(), ctx.D.cpu(), ctx.world.groups,
                                                 ctx.config.subspace_proj_threshold)
        out = Output(metrics=metrics, tables={"subspace_groups": table})
        if math.isnan(metrics["subspaces.max_angle_deg_mean"]):
            out.not_applicable["subspaces.max_angle"] = (
                "no group is covered: no group has rank(group) latents with ||P_g w|| / ||w|| >= "
                f"subspace_proj_threshold = {ctx.config.subspace_proj_threshold:g}")
        return out
