"""Memory a world needs, checked before anything is allocated.

An absurd size (d = 10**9, m = 10**10) would otherwise be attempted until the allocator fails deep
inside torch or the process is killed. `check_world_memory(config)` estimates the peak bytes of
building the world (the geometry's float64 work arrays, the copula factors, the per-feature vectors)
and `check_sample_memory` those of one `World.sample` call, and both refuse with the numbers when
the estimate exceeds the memory available now (MemAvailable on Linux; physical memory elsewhere).

The estimates are upper-bound-ish (within ~2x of measured peaks for the default geometries): they
exist to stop requests that are off by orders of magnitude, not to pack memory tightly.
"""

from __future__ import annotations

import math

# One memory probe and one refusal rule for the whole package (synthsae.memory).
from synthsae.memory import CHECK_ABOVE, available_bytes, gib, require_memory


def world_bytes(config) -> int:
    """Estimated peak bytes of `World(config)` (building its parts, not sampling)."""
    m, d = config.m, config.d
    total = config.dictionary.build_bytes(m, d)
    total += 8 * m * 12  # probabilities, base rates, marginals, magnitude parameters, hierarchy vectors
    if config.correlation is not None:
        total += config.correlation.build_bytes(m)
    return total


def check_world_memory(config) -> None:
    """Refuse (with the numbers) a world that cannot be built in the memory available now."""
    need = world_bytes(config)
    if need < CHECK_ABOVE:
        return
    have = available_bytes() or need
    per_entry = max(1.0, need / max(1, config.m * config.d))
    fit = int(have / per_entry)
    require_memory(need, "world", f"d = {config.d}, m = {config.m}", f"building this world ({config.dictionary.kind} "
                   f"dictionary{', ' + config.correlation.kind + ' correlation' if config.correlation else ''})",
                   f"a world that fits: m * d up to about {fit:.3g} here (e.g. d = {config.d} with m <= "
                   f"{max(1, fit // max(1, config.d))}), or a machine with more memory")


def check_probability_memory(m: int) -> None:
    """Refuse an m so large that the per-feature rate vectors alone would not fit (run by WorldConfig)."""
    require_memory(8 * m * 4, "world.m", m, "storing the per-feature firing rates of this world",
                   "a smaller m (each feature costs tens of bytes before the dictionary is built)")


def sample_bytes(world, n: int) -> int:
    """Estimated peak bytes of `world.sample(n)` in float32 (x, noise, codes; the copula's dense draws)."""
    d, m = world.d, world.m
    nnz = n * max(1.0, world.expected_l0())
    total = 4 * n * d * 3 + int(48 * nnz)
    if world.config.correlation is not None:
        total += 8 * n * m * 3
    return int(total)


def check_sample_memory(world, n: int) -> None:
    # A bound without any tensor work first (nnz <= n m): the usual small batch returns here.
    bound = 12 * n * world.d + 48 * n * world.m + (24 * n * world.m if world.config.correlation is not None else 0)
    if bound < CHECK_ABOVE:
        return
    need = sample_bytes(world, n)
    if need < CHECK_ABOVE:
        return
    require_memory(need, "n", n, f"drawing {n} samples of this world (d = {world.d}, m = {world.m})",
                   f"at most about {max(1, math.floor(n * (available_bytes() or need) / need))} samples per call "
                   "(use world.stream(batch_size) for more)")
