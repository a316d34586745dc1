"""Hypothesis strategies for small worlds."""

from __future__ import annotations

from hypothesis import strategies as st

from synthsae.world import Constant, ExactlyK, Gaussian, Orthonormal, Spiked, Uniform, WorldConfig, Zipf


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
