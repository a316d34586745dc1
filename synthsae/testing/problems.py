"""Hypothesis strategies for sparse codes and sparse-coding problems (atoms are rows of D (m, d))."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from synthsae.testing.dictionaries import dictionaries

PROBLEM_KINDS = ("lasso", "elastic_net", "adaptive_elastic_net")


def sparse_code_matrix(n: int, m: int, k: int, lo: float, hi: float, nonneg: bool, seed: int) -> torch.Tensor:
    """(n, m) float64 codes with exactly k non-zeros per row, magnitudes U[lo, hi] (random signs
    unless nonneg)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.rand(n, m, generator=g).argsort(1)[:, :k]
    val = lo + (hi - lo) * torch.rand(n, k, generator=g, dtype=torch.float64)
    if not nonneg:
        val = val * (torch.randint(0, 2, (n, k), generator=g) * 2 - 1)
    return torch.zeros(n, m, dtype=torch.float64).scatter_(1, idx, val)


@st.composite
def sparse_codes(draw, n=st.integers(1, 4), m=st.integers(4, 32), k=None, magnitudes=(0.5, 2.0), nonneg=False):
    n = draw(n) if isinstance(n, st.SearchStrategy) else n
    m = draw(m) if isinstance(m, st.SearchStrategy) else m
    k = draw(st.integers(0, m)) if k is None else (draw(k) if isinstance(k, st.SearchStrategy) else k)
    return sparse_code_matrix(n, m, min(k, m), *magnitudes, nonneg, draw(st.integers(0, 2**31 - 1)))


@dataclass(frozen=True)
class ProblemInstance:
    """Inputs of `sparse_code` plus the planted codes: `sparse_code(**inst.kwargs())`."""

    X: torch.Tensor
    D: torch.Tensor
    l1: float
    l2: float
    weights: torch.Tensor | None
    nonneg: bool
    kind: str
    z_true: torch.Tensor

    def kwargs(self) -> dict:
        return dict(X=self.X, D=self.D, l1=self.l1, l2=self.l2, weights=self.weights, nonneg=self.nonneg)


@st.composite
def sparse_coding_problems(draw, kind=None, nonneg=None, n=st.integers(1, 4), dicts=None, noise=0.05):
    """A planted problem of the given kind (drawn if None): X = z D + noise, λ1 ∈ [0.02, 0.5]."""
    kind = kind or draw(st.sampled_from(PROBLEM_KINDS))
    nonneg = draw(st.booleans()) if nonneg is None else nonneg
    D = draw(dicts if dicts is not None else dictionaries())
    m, d = D.shape
    n = draw(n) if isinstance(n, st.SearchStrategy) else n
    k = draw(st.integers(1, max(1, d // 3)))
    seed = draw(st.integers(0, 2**31 - 1))
    z = sparse_code_matrix(n, m, k, 0.5, 2.0, nonneg, seed)
    g = torch.Generator().manual_seed(seed + 1)
    X = z @ D + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    l1 = draw(st.floats(0.02, 0.5))
    l2 = 0.0 if kind == "lasso" else draw(st.floats(0.01, 1.0))
    w = None
    if kind == "adaptive_elastic_net":
        w = 1.0 / (z.abs() + draw(st.sampled_from([0.1, 0.5, 1.0])))
        if draw(st.booleans()):
            w = w[0]
    return ProblemInstance(X, D, l1, l2, w, nonneg, kind, z)
