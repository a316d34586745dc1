"""Hypothesis strategies for dictionaries (atoms are the rows of D, shape (m, d), unit norm, float64)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st


def coherence(D: torch.Tensor) -> float:
    """max_{i≠j} |⟨d_i, d_j⟩| for unit-norm rows."""
    G = (D @ D.T).abs()
    G.fill_diagonal_(0)
    return float(G.max()) if D.shape[0] > 1 else 0.0


def _unit(D):
    return D / D.norm(dim=1, keepdim=True)


def gaussian_dictionary(m: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return _unit(torch.randn(m, d, generator=g, dtype=torch.float64))


def spiked_dictionary(m: int, d: int, rho: float, seed: int) -> torch.Tensor:
    """d_j = normalize(√(1−ρ) u_j + √ρ v), one shared direction v (coherence grows with ρ)."""
    g = torch.Generator().manual_seed(seed)
    U = _unit(torch.randn(m, d, generator=g, dtype=torch.float64))
    v = _unit(torch.randn(1, d, generator=g, dtype=torch.float64))
    return _unit((1 - rho) ** 0.5 * U + rho ** 0.5 * v)


def orthonormal_dictionary(m: int, d: int, seed: int) -> torch.Tensor:
    """m ≤ d orthonormal rows."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, m, generator=g, dtype=torch.float64))
    return Q.T.contiguous()


@st.composite
def dictionaries(draw, d=st.integers(4, 16), ratio=st.sampled_from([1, 2, 4]), kind=None,
                 max_coherence: float | None = None):
    """A unit-norm dictionary (m, d): kind in {"gaussian", "spiked", "orthonormal"} (drawn if None);
    `max_coherence` rejects draws above that coherence."""
    d = draw(d) if isinstance(d, st.SearchStrategy) else d
    kind = kind or draw(st.sampled_from(["gaussian", "spiked", "orthonormal"]))
    seed = draw(st.integers(0, 2**31 - 1))
    if kind == "orthonormal":
        return orthonormal_dictionary(d, d, seed)
    m = d * (draw(ratio) if isinstance(ratio, st.SearchStrategy) else ratio)
    if kind == "spiked":
        D = spiked_dictionary(m, d, draw(st.sampled_from([0.1, 0.3, 0.5])), seed)
    else:
        D = gaussian_dictionary(m, d, seed)
    if max_coherence is not None:
        from hypothesis import assume
        assume(coherence(D) <= max_coherence)
    return D
