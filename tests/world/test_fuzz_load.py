"""Fuzzing the world side (issue 18): mutated configs and corrupted saved folders.

Whatever is done to a config dict or to a saved world's files, the outcome must be either a clean
ValueError whose message says what is wrong, or a valid world whose samples are finite: never NaN,
never an exception from inside torch / safetensors / json (a TypeError, RuntimeError, KeyError, ...).
"""

import json
import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from synthsae.testing.worlds import world_configs
from synthsae.world import ExactlyK, HierarchyConfig, LowRank, World, WorldConfig

JUNK = [math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0, 2, 1e30, 10**12, True, False, None, "x", "1", [], {}, [1, 2],
        {"kind": "nope"}]
CLEAN = re.compile(r"is invalid|unknown|Expected|expected|corrupted|does not exist")
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def rich_configs(draw):
    """world_configs, sometimes with a hierarchy or a low-rank copula (not with exactly-k firing)."""
    cfg = draw(world_configs(max_d=12, max_m=24))
    if isinstance(cfg.firing, ExactlyK) or cfg.m < 6:
        return cfg
    extra = draw(st.sampled_from(["none", "hierarchy", "correlation"]))
    if extra == "hierarchy":
        return cfg.replace(hierarchy=HierarchyConfig(roots=2, branching=2, depth=1))
    if extra == "correlation":
        return cfg.replace(correlation=LowRank(rank=2, scale=0.2))
    return cfg


def leaves(obj, path=()):
    """Paths of every leaf (and every sub-dict) of a plain config dict."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield path + (key,)
            yield from leaves(value, path + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield path + (i,)
            yield from leaves(value, path + (i,))


def set_at(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def check_outcome(make):
    """Run `make()`: a clean ValueError, or a world whose samples are finite."""
    try:
        world = make()
    except ValueError as err:
        assert CLEAN.search(str(err)), f"unclear error: {err}"
        return "refused"
    batch = world.sample(64, seed=1)
    assert bool(torch.isfinite(batch.x).all()), "a world was accepted whose samples are not finite"
    assert bool(torch.isfinite(batch.codes.values).all())
    return "accepted"


@FUZZ
@given(cfg=rich_configs(), data=st.data())
def test_mutated_config_dicts(cfg, data):
    plain = cfg.to_dict()
    for _ in range(data.draw(st.integers(1, 2))):
        paths = list(leaves(plain))
        set_at(plain, data.draw(st.sampled_from(paths)), data.draw(st.sampled_from(JUNK)))
    check_outcome(lambda: World(WorldConfig.from_dict(plain)))


@FUZZ
@given(cfg=rich_configs(), data=st.data())
def test_corrupted_saved_worlds(cfg, data, tmp_path_factory):
    folder = World(cfg).save(tmp_path_factory.mktemp("w") / "w")
    tensors_file, config_file = folder / "world.safetensors", folder / "config.json"
    how = data.draw(st.sampled_from(["rewrite", "tensor_value", "tensor_flip", "index", "drop_key", "dtype", "config",
                                     "truncate_tensors", "truncate_config", "remove", "garbage"]))
    if how == "rewrite":  # the same tensors and metadata written again (another header order): still valid
        state = load_file(tensors_file)
        save_file(state, tensors_file, metadata={"world": json.dumps(cfg.to_dict(), sort_keys=True),
                                                 "format_version": "1"})
    elif how in ("tensor_value", "tensor_flip", "index", "drop_key", "dtype"):
        state = load_file(tensors_file)
        keep_meta = data.draw(st.booleans())
        meta = json.loads(config_file.read_text())
        if how == "index" and "parents" in state:
            key = data.draw(st.sampled_from(["parents", "level"]))
            j = data.draw(st.integers(0, cfg.m - 1))
            state[key][j] = data.draw(st.integers(-5, cfg.m + 5))
        elif how == "drop_key":
            state.pop(data.draw(st.sampled_from(sorted(state))))
        elif how == "dtype":
            key = data.draw(st.sampled_from(sorted(state)))
            state[key] = state[key].to(data.draw(st.sampled_from([torch.float16, torch.int32, torch.bool])))
        else:
            floats = sorted(k for k, v in state.items() if v.is_floating_point() and v.numel())
            key = data.draw(st.sampled_from(floats))
            flat = state[key].reshape(-1)
            j = data.draw(st.integers(0, flat.numel() - 1))
            flat[j] = -flat[j] if how == "tensor_flip" else data.draw(st.sampled_from(
                [math.nan, math.inf, -1.0, 0.0, 1e30, 2.0]))
            state[key] = flat.reshape(state[key].shape)
        metadata = {"format_version": "1", "world": json.dumps(cfg.to_dict(), sort_keys=True)} if keep_meta else None
        save_file(state, tensors_file, metadata=metadata)
        if data.draw(st.booleans()):  # an old-format folder: no digest to catch the edit
            meta.pop("tensors_sha256")
            config_file.write_text(json.dumps(meta))
    elif how == "config":
        meta = json.loads(config_file.read_text())
        path = data.draw(st.sampled_from(list(leaves(meta))))
        set_at(meta, path, data.draw(st.sampled_from(JUNK)))
        config_file.write_text(json.dumps(meta))
    elif how in ("truncate_tensors", "truncate_config"):
        target = tensors_file if how == "truncate_tensors" else config_file
        raw = target.read_bytes()
        target.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    elif how == "remove":
        data.draw(st.sampled_from([tensors_file, config_file])).unlink()
    else:
        target = data.draw(st.sampled_from([tensors_file, config_file]))
        target.write_bytes(data.draw(st.binary(min_size=0, max_size=64)))
    outcome = check_outcome(lambda: World.load(folder))
    if how in ("truncate_tensors", "truncate_config", "remove", "garbage"):
        assert outcome == "refused"
    if how == "rewrite":
        assert outcome == "accepted"


def test_the_fuzzers_reach_both_outcomes():
    """Guard against a fuzzer that only ever refuses (or only accepts): count both on fixed draws."""
    seen = set()
    cfg = WorldConfig(d=6, m=12)
    for junk in JUNK:
        plain = cfg.to_dict()
        plain["noise"]["std"] = junk
        seen.add(check_outcome(lambda: World(WorldConfig.from_dict(plain))))
    assert seen == {"refused", "accepted"}


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_junk_in_a_saved_state_tensor_slot(junk, tmp_path):
    """A state dict whose entry is not a tensor at all."""
    world = World(WorldConfig(d=6, m=12))
    state = world.state()
    state["bias"] = junk
    with pytest.raises(ValueError, match="bias"):
        World.from_state(world.config, state)
