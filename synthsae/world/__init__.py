"""Ground truth: dictionary geometry, firing, correlation, hierarchy, magnitudes, noise -> `World`."""

from synthsae.world.codes import Batch, SparseCodes
from synthsae.world.correlation import CORRELATIONS, Block, CorrelationRepairWarning, Full, LowRank, nearest_correlation
from synthsae.world.firing import FIRING, Constant, ExactlyK, Geometric, LinearLaw, Vector, Zipf
from synthsae.world.geometry import (GEOMETRIES, Coherence, Gaussian, Given, Orthonormal, Spiked, Subspaces,
                                     TightFrame, coherence)
from synthsae.world.hierarchy import HierarchyConfig
from synthsae.world.magnitudes import (MAGNITUDES, ConstantMagnitude, Exponential, FoldedNormalMagnitude, LogNormal,
                                       NormalRelu, Uniform)
from synthsae.world.noise import Noise
from synthsae.world.presets import PRESETS
from synthsae.world.profiles import PROFILES, FoldedNormal, Linear, Values
from synthsae.world.world import World, WorldConfig

__all__ = [
    "World", "WorldConfig", "Batch", "SparseCodes", "Noise", "HierarchyConfig", "PRESETS",
    "GEOMETRIES", "Gaussian", "Orthonormal", "Coherence", "Spiked", "Subspaces", "Given", "TightFrame", "coherence",
    "FIRING", "Constant", "Zipf", "LinearLaw", "Geometric", "Vector", "ExactlyK",
    "CORRELATIONS", "Full", "Block", "LowRank", "nearest_correlation", "CorrelationRepairWarning",
    "MAGNITUDES", "ConstantMagnitude", "Uniform", "LogNormal", "FoldedNormalMagnitude", "NormalRelu", "Exponential",
    "PROFILES", "Linear", "FoldedNormal", "Values",
]
