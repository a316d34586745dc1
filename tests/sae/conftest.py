"""Fixtures for the SAE tests: small worlds with the `World` sampling contract.

`toy_world` is `World.preset("toy")` when `synthsae.world` provides it, otherwise a stand-in.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from synthsae._rng import generator


class StandInWorld:
    """A fixed dictionary D (m, d) with unit rows (atoms are rows); each sample fires exactly k
    features chosen uniformly, with magnitudes U[1, 2]; x = z D + noise * N(0, I)."""

    def __init__(self, d: int = 16, m: int = 32, k: int = 3, seed: int = 0, dictionary=None, noise: float = 0.0):
        if dictionary is None:
            D = torch.randn(m, d, generator=generator(seed), dtype=torch.float32)
            dictionary = D / D.norm(dim=1, keepdim=True)
        self.dictionary = dictionary.to(torch.float32)
        self.m, self.d = self.dictionary.shape
        self.k, self.noise = k, noise
        self.calls = 0

    def sample(self, n, seed=0, device=None, dtype=torch.float32):
        self.calls += 1
        g = generator(seed)
        idx = torch.rand(n, self.m, generator=g).argsort(dim=1)[:, : self.k]
        mags = 1.0 + torch.rand(n, self.k, generator=g)
        z = torch.zeros(n, self.m).scatter(1, idx, mags)
        x = z @ self.dictionary
        if self.noise:
            x = x + self.noise * torch.randn(n, self.d, generator=g)
        device = torch.device("cpu" if device is None else device)
        return SimpleNamespace(x=x.to(device=device, dtype=dtype), codes=z)


@pytest.fixture
def small_world():
    return StandInWorld(d=16, m=32, k=3, seed=0, noise=0.01)


@pytest.fixture
def make_world():
    return StandInWorld
