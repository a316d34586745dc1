"""Hypothesis strategies for small worlds, and world transformations used by theory checks."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from synthsae.errors import require
from synthsae.world import Constant, ExactlyK, Gaussian, Orthonormal, Spiked, Uniform, World, WorldConfig, Zipf


@st.composite
def world_configs(draw, max_d: int = 24, max_m: int = 48) -> WorldConfig:
    """Small valid `WorldConfig`s: random geometry (gaussian / orthonormal / spiked), firing law
    (constant / zipf / exactly-k) and uniform magnitudes, with a drawn seed."""
    d = draw(st.integers(2, max_d))
    geometry = draw(st.sampled_from(["gaussian", "orthonormal", "spiked"]))
    m = draw(st.integers(1, d if geometry == "orthonormal" else max_m))
    dictionary = {"gaussian": Gaussian(), "orthonormal": Orthonormal(),
                  "spiked": Spiked(rho=draw(st.floats(0.0, 0.9)))}[geometry]
    law = draw(st.sampled_from(["constant", "zipf", "exactly_k"]))
    if law == "constant":
        firing = Constant(p=draw(st.floats(0.0, 1.0)))
    elif law == "zipf":
        lo = draw(st.floats(0.0, 0.5))
        firing = Zipf(exponent=draw(st.floats(0.2, 2.0)), max_p=draw(st.floats(lo, 1.0)), min_p=lo)
    else:
        firing = ExactlyK(k=draw(st.integers(1, m)))
    low = draw(st.floats(0.1, 2.0))
    return WorldConfig(d=d, m=m, dictionary=dictionary, firing=firing,
                       magnitudes=Uniform(low=low, high=low + draw(st.floats(0.0, 2.0))),
                       seed=draw(st.integers(0, 2**31 - 1)))


def rotate_group(world, group: int, rotation):
    """A copy of `world` whose subspace group `group` has its basis rotated: the group's atoms D_g
    (r, d) become R D_g for an orthogonal R (r, r). Everything else (config, seed, firing) is kept,
    so the two worlds differ only by the basis chosen inside the group's subspace."""
    require(world.groups is not None and bool((world.groups == group).any()), "group", group,
            "the world has no such subspace group", "a group id in world.groups")
    rows = (world.groups == group).nonzero().flatten()
    R = torch.as_tensor(rotation, dtype=torch.float64)
    eye = torch.eye(len(rows), dtype=torch.float64)
    require(R.shape == (len(rows), len(rows)) and bool(torch.allclose(R @ R.T, eye, atol=1e-9)), "rotation",
            tuple(R.shape), "must be an orthogonal matrix of the group's rank", f"({len(rows)}, {len(rows)}) with R Rᵀ = I")
    D = world.dictionary.double().clone()
    D[rows] = R @ D[rows]
    return World(world.config, dictionary=D.float())


def random_rotation(r: int, seed: int):
    """A Haar-random rotation (r, r) float64 with determinant +1."""
    q, t = torch.linalg.qr(torch.randn(r, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(t))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
