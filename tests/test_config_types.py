"""Config constructors check their fields' declared types (issue 18): Python is as strict as TOML."""

import dataclasses
import math

import numpy as np
import pytest

from synthsae.config import Config
from synthsae.experiments.config import TrainSettings
from synthsae.sae.topk import TopKConfig
from synthsae.world import (Block, Coherence, ConstantMagnitude, ExactlyK, Full, HierarchyConfig, Linear, LowRank,
                            Noise, Spiked, Subspaces, Values, Vector, WorldConfig, Zipf)


@pytest.mark.parametrize("make, field", [
    (lambda: ExactlyK(k=2.5), "ExactlyK.k"),
    (lambda: ExactlyK(k=True), "ExactlyK.k"),
    (lambda: ExactlyK(k="3"), "ExactlyK.k"),
    (lambda: HierarchyConfig(roots=2.5), "HierarchyConfig.roots"),
    (lambda: HierarchyConfig(branching=2.5), "HierarchyConfig.branching"),
    (lambda: HierarchyConfig(branching=(2, "3")), "HierarchyConfig.branching[1]"),
    (lambda: HierarchyConfig(branching=(2, 3, 4)), "HierarchyConfig.branching"),
    (lambda: HierarchyConfig(compensate="exactt"), "HierarchyConfig.compensate"),
    (lambda: WorldConfig(d=True), "WorldConfig.d"),
    (lambda: WorldConfig(m=64.0), "WorldConfig.m"),
    (lambda: WorldConfig(seed=None), "WorldConfig.seed"),
    (lambda: WorldConfig(dictionary="gaussian"), "WorldConfig.dictionary"),
    (lambda: WorldConfig(firing=Noise()), "WorldConfig.firing"),
    (lambda: Zipf(exponent=math.inf), "Zipf.exponent"),
    (lambda: Zipf(exponent=math.nan), "Zipf.exponent"),
    (lambda: Zipf(exponent="1"), "Zipf.exponent"),
    (lambda: Zipf(max_p=True), "Zipf.max_p"),
    (lambda: Noise(std="0.1"), "Noise.std"),
    (lambda: Noise(snr=-math.inf), "Noise.snr"),
    (lambda: Block(size=2.0), "Block.size"),
    (lambda: LowRank(scale=math.inf), "LowRank.scale"),
    (lambda: Spiked(rho=math.nan), "Spiked.rho"),
    (lambda: Coherence(max_steps=True), "Coherence.max_steps"),
    (lambda: Subspaces(tied=1), "Subspaces.tied"),
    (lambda: Vector(p=(0.1, "0.2")), "Vector.p[1]"),
    (lambda: Vector(p=0.1), "Vector.p"),
    (lambda: Values(values=(1.0, math.nan)), "Values.values[1]"),
    (lambda: Full(matrix=((1.0, 0.0), (0.0, math.inf))), "Full.matrix[1][1]"),
    (lambda: ConstantMagnitude(value="2"), "ConstantMagnitude.value"),
    (lambda: ConstantMagnitude(value=Linear(start=math.nan)), "Linear.start"),
    (lambda: TopKConfig(d=8, m=16, k=2.5), "TopKConfig.k"),
    (lambda: TopKConfig(d=8, m=16, aux_k=True), "TopKConfig.aux_k"),
    (lambda: TrainSettings(n_samples=True), "train.n_samples"),
    (lambda: TrainSettings(lr="1e-3"), "train.lr"),
    (lambda: TrainSettings(betas=(0.9,)), "train.betas"),
])
def test_wrong_types_are_refused_naming_the_field(make, field):
    with pytest.raises(ValueError, match=r"is invalid: .*Expected: ") as err:
        make()
    assert str(err.value).startswith(f"{field} = "), str(err.value)


def test_messages_say_what_was_given_and_what_is_expected():
    with pytest.raises(ValueError) as err:
        ExactlyK(k=2.5)
    assert str(err.value) == ("ExactlyK.k = 2.5 is invalid: a float where an integer is needed. "
                              "Expected: an int (not a bool, float or str).")
    with pytest.raises(ValueError, match=r"must be finite.*Expected: a finite float"):
        Zipf(exponent=math.inf)


def test_right_types_pass_and_are_normalized():
    assert Zipf(exponent=2).exponent == 2  # an int is a valid float
    assert type(ExactlyK(k=np.int64(3)).k) is int  # numpy scalars become builtins (JSON-serializable)
    assert type(Zipf(exponent=np.float32(1.5)).exponent) is float
    assert Vector(p=[0.1, 0.2]).p == (0.1, 0.2)  # a list is stored as a tuple (hashable, as from_dict gives)
    assert HierarchyConfig(branching=[2, 3]).branching == (2, 3)
    assert HierarchyConfig(compensate=True).compensate == "exact"
    assert Noise(snr=None).snr is None
    assert WorldConfig(correlation=None, hierarchy=None).to_dict()["correlation"] is None
    assert ConstantMagnitude(value=Linear(start=2.0, end=1.0)).value == Linear(start=2.0, end=1.0)


def test_replace_is_checked_too():
    with pytest.raises(ValueError, match="WorldConfig.d"):
        WorldConfig().replace(d=3.0)


def test_numpy_bool_is_not_an_int():
    with pytest.raises(ValueError, match="ExactlyK.k"):
        ExactlyK(k=np.bool_(True))


def test_a_field_may_declare_that_it_allows_non_finite_values():
    @dataclasses.dataclass(frozen=True)
    class Bounds(Config):
        low: float = 0.0
        high: float = dataclasses.field(default=math.inf, metadata={"nonfinite": True})

    assert Bounds(high=math.inf).high == math.inf
    with pytest.raises(ValueError, match="Bounds.low"):
        Bounds(low=-math.inf)


def test_every_registered_world_config_checks_types():
    """Each family member refuses a str for each of its number fields (the check is in the base class)."""
    from synthsae.world import CORRELATIONS, FIRING, GEOMETRIES, MAGNITUDES, PROFILES

    tried = 0
    for registry in (GEOMETRIES, FIRING, CORRELATIONS, MAGNITUDES, PROFILES):
        for name in registry:
            cls = registry.get(name)
            for f in dataclasses.fields(cls):
                if f.type in ("int", "float", "Param"):
                    tried += 1
                    with pytest.raises(ValueError, match=rf"\.{f.name} = 'x' is invalid"):
                        cls(**{f.name: "x"})
    assert tried >= 20


def test_from_dict_and_toml_name_the_key_path():
    with pytest.raises(ValueError, match=r"^WorldConfig.firing.exponent = inf is invalid: .*finite"):
        WorldConfig.from_toml('[firing]\nkind = "zipf"\nexponent = inf\n')
    with pytest.raises(ValueError, match=r"^world.hierarchy.branching = \[2, 'x'\] is invalid"):
        WorldConfig.from_dict({"hierarchy": {"branching": [2, "x"]}}, path="world")
    with pytest.raises(ValueError, match=r"matrix\[1\] = 'a row of 1 values' is invalid"):  # ragged
        WorldConfig.from_dict({"d": 4, "m": 2, "correlation": {"kind": "full", "matrix": [[1.0, 0.0], [0.0]]}})
