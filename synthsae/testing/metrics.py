"""A minimal world built from explicit arrays, for testing metrics on cases with known answers.

`ExplicitWorld` follows the World contract that `synthsae.metrics.evaluate` reads (d, m,
dictionary, parents, groups, firing_probabilities, mean_magnitudes, sample, stream) with the
simplest firing model: independent Bernoulli firing, and a child fires only when its parent does
(its probability is then conditional on the parent). Magnitudes are uniform on [low, high].
Dictionary D is (m, d), rows are atoms; a sample is x = z D (+ Gaussian noise of std `noise`).
"""

from __future__ import annotations

import dataclasses

import torch

from synthsae._rng import generator
from synthsae.errors import require
from synthsae.world.codes import SparseCodes


# The codes of an explicit world follow the World contract exactly (sorted by row, then column).
ExplicitCodes = SparseCodes


@dataclasses.dataclass
class ExplicitBatch:
    x: torch.Tensor
    codes: ExplicitCodes


class ExplicitWorld:
    """A world from an explicit dictionary (m, d) (rows = atoms) and per-feature firing probabilities.

    parents: optional (m,) parent index or -1 (a child fires only if its parent fires; parents
    must come before their children in index order). groups: optional (m,) group ids, reported
    as is. magnitudes: (low, high) of the uniform magnitude law.
    """

    def __init__(self, dictionary, firing_probabilities, parents=None, groups=None, magnitudes=(1.0, 1.0),
                 noise: float = 0.0):
        D = torch.as_tensor(dictionary, dtype=torch.float32)
        self.dictionary = D
        self.m, self.d = D.shape
        p = torch.as_tensor(firing_probabilities, dtype=torch.float64)
        require(p.shape == (self.m,) and bool(((p >= 0) & (p <= 1)).all()), "firing_probabilities", tuple(p.shape),
                "one probability in [0, 1] per feature", f"shape ({self.m},)")
        self.parents = None if parents is None else torch.as_tensor(parents, dtype=torch.long)
        if self.parents is not None:
            idx = torch.arange(self.m)
            ok = (self.parents < idx).all()
            require(bool(ok), "parents", self.parents.tolist()[:10], "a parent must precede its child", "parents[j] < j or -1")
        self.groups = None if groups is None else torch.as_tensor(groups, dtype=torch.long)
        self._p = p
        self.low, self.high = magnitudes
        self.noise = noise
        marg = p.clone()
        if self.parents is not None:
            for j in range(self.m):
                if self.parents[j] >= 0:
                    marg[j] = p[j] * marg[self.parents[j]]
        self.firing_probabilities = marg.float()
        self.mean_magnitudes = torch.full((self.m,), (self.low + self.high) / 2)

    def sample(self, n: int, seed=0, device=None, dtype=torch.float32) -> ExplicitBatch:
        g = generator(seed)
        on = torch.rand(n, self.m, generator=g, dtype=torch.float64) < self._p
        if self.parents is not None:
            for j in range(self.m):
                if self.parents[j] >= 0:
                    on[:, j] &= on[:, self.parents[j]]
        mags = self.low + (self.high - self.low) * torch.rand(n, self.m, generator=g)
        z = torch.where(on, mags, torch.zeros(()))
        x = z @ self.dictionary
        if self.noise:
            x = x + self.noise * torch.randn(n, self.d, generator=g)
        r, c = torch.nonzero(on, as_tuple=True)
        codes = ExplicitCodes(r.to(device), c.to(device), z[r, c].to(device=device, dtype=dtype), n, self.m)
        return ExplicitBatch(x.to(device=device, dtype=dtype), codes)

    def stream(self, batch_size: int, seed=0, device=None, dtype=torch.float32):
        g = generator(seed)
        while True:
            s = int(torch.randint(0, 2**62, (1,), generator=g))
            yield self.sample(batch_size, seed=s, device=device, dtype=dtype)
