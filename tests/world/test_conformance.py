"""Conformance of every member of every world family (issue 16 item 7, world side).

For each registered geometry, firing law, correlation, magnitude law and profile, and for the noise
config: it round-trips through dict / JSON / TOML, wrong values raise ValueError naming the field,
and a world using it draws the same samples for the same seed (also after save / load). A new member
must be added to MEMBERS below (a test fails until it is).
"""

import dataclasses
import math

import pytest
import torch

from synthsae.world import (CORRELATIONS, FIRING, GEOMETRIES, MAGNITUDES, PROFILES, Block, Coherence, Constant,
                            ConstantMagnitude, ExactlyK, Exponential, FoldedNormal, FoldedNormalMagnitude, Full,
                            Gaussian, Geometric, Given, Linear, LinearLaw, LogNormal, LowRank, Noise, NormalRelu,
                            Orthonormal, Spiked, Subspaces, TightFrame, Uniform, Values, Vector, World, WorldConfig,
                            Zipf)

D, M = 8, 16
_C = tuple(tuple(1.0 if i == j else 0.2 for j in range(M)) for i in range(M))  # 0.8 I + 0.2 J: PSD, unit diagonal

# family -> [(member instance, WorldConfig keyword arguments using it)]
MEMBERS = {
    "geometry": [
        (Gaussian(), {}), (Orthonormal(), {"m": D}), (Orthonormal(identity=True), {"m": D}), (Spiked(rho=0.4), {}),
        (Coherence(target=0.5), {}), (Subspaces(n_groups=2, rank=2), {}), (Subspaces(n_groups=2, rank=3, tied=True), {}),
        (TightFrame(steps=3), {}), (Given(), {}),
    ],
    "firing": [
        (Constant(p=0.2), {}), (Zipf(exponent=1.5), {}), (LinearLaw(), {}), (Geometric(p0=0.4, ratio=0.9), {}),
        (Vector(p=tuple(0.05 * (j % 5) for j in range(M))), {}), (ExactlyK(k=3), {}),
    ],
    "correlation": [(Full(matrix=_C), {}), (Block(size=4, rho=0.3), {}), (LowRank(rank=2, scale=0.3), {})],
    "magnitudes": [
        (ConstantMagnitude(value=2.0), {}), (Uniform(low=0.5, high=1.5), {}), (LogNormal(), {}),
        (FoldedNormalMagnitude(), {}), (NormalRelu(mean=1.0, std=0.5), {}), (Exponential(mean=2.0), {}),
    ],
    "profile": [(Linear(start=2.0, end=1.0), {}), (FoldedNormal(mean=1.0, std=0.3), {}),
                (Values(values=tuple(1.0 + j / M for j in range(M))), {})],
    "noise": [(Noise(std=0.1), {}), (Noise(snr=5.0), {}), (Noise(bias_norm=2.0), {})],
}
REGISTRIES = {"geometry": GEOMETRIES, "firing": FIRING, "correlation": CORRELATIONS, "magnitudes": MAGNITUDES,
              "profile": PROFILES}
CASES = [(family, member, extra) for family, members in MEMBERS.items() for member, extra in members]
IDS = [f"{family}-{type(member).__name__}-{i}" for i, (family, member, _) in enumerate(CASES)]


def world_config(family, member, extra, seed=0):
    kw = {"d": D, "m": M, "seed": seed, **extra}
    if family == "profile":
        kw["magnitudes"] = ConstantMagnitude(value=member)
    else:
        kw[{"geometry": "dictionary"}.get(family, family)] = member
    return WorldConfig(**kw)


def build(family, member, extra, seed=0):
    cfg = world_config(family, member, extra, seed)
    if isinstance(member, Given):  # a file-less 'given' geometry takes its atoms from dictionary=
        atoms = torch.randn(cfg.m, cfg.d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return World(cfg, dictionary=atoms / atoms.norm(dim=1, keepdim=True))
    return World(cfg)


@pytest.mark.parametrize("family", sorted(REGISTRIES))
def test_every_registered_member_is_covered(family):
    covered = {member.kind for member, _ in MEMBERS[family]}
    assert covered == set(REGISTRIES[family]), f"add the new {family} members to MEMBERS"


@pytest.mark.parametrize("family, member, extra", CASES, ids=IDS)
def test_round_trip_dict_json_toml(family, member, extra):
    cls = type(member)
    base = cls.__mro__[1] if cls.family is not None else cls  # parse through the family base: kind picks the class
    assert base.from_dict(member.to_dict()) == member
    assert base.from_json(member.to_json()) == member
    assert base.from_toml(member.to_toml()) == member
    cfg = world_config(family, member, extra)
    assert WorldConfig.from_toml(cfg.to_toml()) == cfg and WorldConfig.from_json(cfg.to_json()) == cfg


def _bad_values(f, value):
    """Values of the wrong type or non-finite for a field whose current value is `value`."""
    if isinstance(value, bool):
        return [1, "true", None]
    if isinstance(value, int):
        return [1.5, True, "3", None]
    if isinstance(value, float):
        return [math.nan, math.inf, "1", True, None] if f.name != "snr" else [math.nan, "1", True]
    if isinstance(value, tuple):
        return ["x", (math.nan,) * len(value) if value and not isinstance(value[0], tuple) else 3]
    return []


@pytest.mark.parametrize("family, member, extra", CASES, ids=IDS)
def test_bad_values_raise_value_error_naming_the_field(family, member, extra):
    tried = 0
    for f in dataclasses.fields(member):
        for bad in _bad_values(f, getattr(member, f.name)):
            tried += 1
            with pytest.raises(ValueError, match=rf"{f.name}"):
                dataclasses.replace(member, **{f.name: bad})
    if dataclasses.fields(member):
        assert tried > 0
    with pytest.raises(ValueError, match="unknown key"):
        type(member).from_dict({**member.to_dict(), "no_such_field": 1})


@pytest.mark.parametrize("family, member, extra", CASES, ids=IDS)
def test_same_seed_same_output(family, member, extra, tmp_path):
    a, b = build(family, member, extra, seed=3), build(family, member, extra, seed=3)
    xa, xb = a.sample(256, seed=11), b.sample(256, seed=11)
    assert torch.equal(xa.x, xb.x) and torch.equal(xa.codes.cols, xb.codes.cols)
    assert bool(torch.isfinite(xa.x).all())
    back = World.load(a.save(tmp_path / "w"))
    assert torch.equal(back.sample(256, seed=11).x, xa.x)
    assert not torch.equal(a.sample(256, seed=12).x, xa.x)
