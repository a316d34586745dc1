"""Hypothesis strategies for dictionaries (atoms are the rows of D, shape (m, d), unit norm, float64)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from synthsae.errors import require


def coherence(D: torch.Tensor) -> float:
    """max_{i≠j} |⟨d_i, d_j⟩| for unit-norm rows."""
    G = (D @ D.T).abs()
    G.fill_diagonal_(0)
    return float(G.max()) if D.shape[0] > 1 else 0.0


def _unit(D):
    return D / D.norm(dim=1, keepdim=True)


def gaussian_dictionary(m: int, d: int, seed: int) -> torch.Tensor:
    """(m, d) float64 atoms uniform on the unit sphere (in general position with probability 1)."""
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


def coherent_dictionary(m: int, d: int, target: float, seed: int) -> torch.Tensor:
    """(m, d) float64 unit atoms with coherence ≤ `target`, built by the world's `Coherence` geometry
    (random atoms pushed apart). ValueError below the Welch bound or if the target is not reached."""
    from synthsae._rng import generator
    from synthsae.world.geometry.coherent import Coherence

    geometry = Coherence(target=target)
    geometry.check_shape(m, d)
    return _unit(geometry.build(m, d, generator(seed)).dictionary.to(torch.float64))


def _value(draw, v):
    return draw(v) if isinstance(v, st.SearchStrategy) else v


@st.composite
def orthonormal_dictionaries(draw, d=st.integers(2, 16), m=None):
    """(m, d) dictionaries with orthonormal rows (D Dᵀ = I_m); m drawn in [1, d] if None."""
    d = _value(draw, d)
    m = draw(st.integers(1, d)) if m is None else _value(draw, m)
    return orthonormal_dictionary(m, d, draw(st.integers(0, 2**31 - 1)))


@st.composite
def spiked_dictionaries(draw, m=st.integers(8, 64), d=st.integers(4, 32), rho=st.sampled_from([0.3, 0.5, 0.7])):
    """Spiked (m, d) dictionaries d_j = normalize(√(1−ρ) u_j + √ρ v) (the AEN-SAE paper's synthetic data)."""
    return spiked_dictionary(_value(draw, m), _value(draw, d), _value(draw, rho), draw(st.integers(0, 2**31 - 1)))


@st.composite
def coherent_dictionaries(draw, m=st.integers(4, 24), d=st.integers(4, 16), max_coherence=0.3):
    """(m, d) unit dictionaries with coherence ≤ max_coherence, constructed (not rejection-sampled);
    draws whose (m, d) make the target impossible (Welch bound) are rejected."""
    from hypothesis import assume

    from synthsae.world.geometry.coherent import welch_bound

    m, d, mu = _value(draw, m), _value(draw, d), _value(draw, max_coherence)
    assume(welch_bound(m, d) < 0.8 * mu)
    return coherent_dictionary(m, d, mu, draw(st.integers(0, 2**31 - 1)))


def two_atom_dictionary(d: int, cosine: float, seed: int | None = None) -> torch.Tensor:
    """(2, d) float64 unit atoms with ⟨d_0, d_1⟩ = cosine: d_0 = e_0, d_1 = c e_0 + √(1 − c²) e_1, or a
    random rotation of that pair when `seed` is given. Closed forms: σ(D) = √(1 ± c)."""
    require(d >= 2 and -1 <= cosine <= 1, "(d, cosine)", (d, cosine), "two atoms need d >= 2 and |cosine| <= 1",
            "d >= 2, cosine in [-1, 1]")
    Q = torch.eye(2, d, dtype=torch.float64) if seed is None else orthonormal_dictionary(2, d, seed)
    return torch.stack([Q[0], cosine * Q[0] + (1 - cosine * cosine) ** 0.5 * Q[1]])


@st.composite
def two_atom_dictionaries(draw, d=st.integers(2, 8), cosine=st.floats(-0.95, 0.95)):
    """(2, d) unit atoms with a given inner product ⟨d_0, d_1⟩ = cosine, randomly rotated in R^d."""
    return two_atom_dictionary(_value(draw, d), _value(draw, cosine), draw(st.integers(0, 2**31 - 1)))
