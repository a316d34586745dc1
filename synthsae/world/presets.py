"""Named worlds. Each preset is a function of a few options returning a `WorldConfig`;
`World.preset(name, **overrides)` also accepts any `WorldConfig` field as an override."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

from synthsae.errors import ConfigError, unknown_name
from synthsae.registry import Registry
from synthsae.world.correlation import LowRank
from synthsae.world.firing import Constant, ExactlyK, LinearLaw, Zipf
from synthsae.world.geometry import Gaussian, Spiked, Subspaces, TightFrame
from synthsae.world.hierarchy import HierarchyConfig
from synthsae.world.magnitudes import NormalRelu, Uniform
from synthsae.world.profiles import FoldedNormal, Linear
from synthsae.world.world import WorldConfig

PRESETS: Registry[Callable[..., WorldConfig]] = Registry("world preset")


@PRESETS.register("toy")
def toy() -> WorldConfig:
    """Small and fast, for tests and notebooks: 128 random atoms in 32 dims, Zipfian firing (L0 ~ 4)."""
    return WorldConfig(d=32, m=128, dictionary=Gaussian(), firing=Zipf(exponent=1.0, max_p=0.25, min_p=0.01),
                       magnitudes=Uniform(low=0.5, high=1.5))


@PRESETS.register("aen-spiked")
def aen_spiked(rho: float = 0.5) -> WorldConfig:
    """The adaptive elastic-net SAE paper's setup (arXiv 2605.05341): spiked atoms with shared-direction
    weight rho, d = 256, m = 1024, exactly 16 active features, magnitudes U[1, 3]."""
    return WorldConfig(d=256, m=1024, dictionary=Spiked(rho=rho), firing=ExactlyK(k=16),
                       magnitudes=Uniform(low=1.0, high=3.0))


@PRESETS.register("hierarchy")
def hierarchy() -> WorldConfig:
    """For absorption studies: 16 trees (branching 3, depth 2: 208 features) plus 48 free features in
    64 dims; half the parents have mutually exclusive children."""
    return WorldConfig(d=64, m=256, dictionary=Gaussian(), firing=LinearLaw(max_p=0.3, min_p=0.05),
                       hierarchy=HierarchyConfig(roots=16, branching=3, depth=2, mutually_exclusive=0.5),
                       magnitudes=Uniform(low=0.5, high=1.5))


@PRESETS.register("subspaces")
def subspaces() -> WorldConfig:
    """For seed-stability studies: 16 tied rank-4 subspace groups (64 features) plus 64 ordinary
    features in 64 dims. Group features are non-identifiable; their subspaces are."""
    return WorldConfig(d=64, m=128, dictionary=Subspaces(n_groups=16, rank=4, tied=True),
                       firing=Constant(p=0.04), magnitudes=Uniform(low=0.5, high=1.5))


@PRESETS.register("synthsaebench-16k")
def synthsaebench_16k() -> WorldConfig:
    """As close as public information allows to SAELens's SynthSAEBench-16k (arXiv 2602.14687 and the
    SAELens docs' configuration table, v1; we found no public description of what v2 changes):
    16,384 features in 768 dims; Zipfian firing (exponent 0.5, p_max 0.4, p_min 5e-4); hierarchy of
    128 roots, branching 4, depth 3, all children mutually exclusive, SAELens's first-order
    compensation; low-rank copula correlation (rank 25, scale 0.1); magnitudes max(0, N(mean, std))
    with means linear from 5.0 (frequent) to 4.0 (rare) and per-feature stds |N(0.5, 0.5)|;
    orthogonalized dictionary (a unit-norm tight frame: the minimizer of the loss SAELens's
    orthogonalization descends).

    Compensation and expected L0 (the evidence for `compensate="first_order"`). The published world
    has an average L0 of about 34. On this forest "none" gives an expected L0 of 13.5 and
    "first_order" (SAELens's `compensate_probabilities=True`) 34.5, with no clipping needed (largest
    base probability 0.92); "exact" (every marginal equal to its Zipf rate, L0 = sum p = 59.1) is
    unreachable: the mutually exclusive children of feature 12 would need a total conditional rate
    of 1.009 >= 1, so it raises. Only the first-order correction matches the published figure; the
    34.5 is checked against sae-lens in tests/interop/test_saelens_world.py. To
    reproduce a SAELens model draw for draw-law (same dictionary, forest and factor), build it from
    SAELens's config with `synthsae.interop.world_from_saelens` instead."""
    return WorldConfig(
        d=768, m=16384, dictionary=TightFrame(steps=10),
        firing=Zipf(exponent=0.5, max_p=0.4, min_p=5e-4),
        correlation=LowRank(rank=25, scale=0.1),
        hierarchy=HierarchyConfig(roots=128, branching=4, depth=3, mutually_exclusive=1.0,
                                  compensate="first_order"),
        magnitudes=NormalRelu(mean=Linear(start=5.0, end=4.0), std=FoldedNormal(mean=0.5, std=0.5)),
    )


def preset_config(name: str, **overrides) -> WorldConfig:
    """The config of preset `name` with `overrides` (preset options first, then WorldConfig fields)."""
    if name not in PRESETS:
        unknown_name("world preset", name, PRESETS.available())
    build = PRESETS.get(name)
    options = set(inspect.signature(build).parameters)
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    unknown = set(overrides) - options - fields
    if unknown:
        raise ConfigError(f"World.preset({name!r}): unknown override(s) {sorted(unknown)}. "
                         f"Preset options: {sorted(options) or 'none'}; WorldConfig fields: {sorted(fields)}.")
    config = build(**{k: v for k, v in overrides.items() if k in options})
    rest = {k: v for k, v in overrides.items() if k not in options}
    return config.replace(**rest) if rest else config
