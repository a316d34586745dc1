"""Careless-user audit of the world / config / file side (issue 18): bad inputs -> how each is handled.

    PYTHONPATH=<checkout> python benchmarks/audit_world_inputs.py [--verbose]

Each case either must be refused (a ValueError naming `names`) or, where both are acceptable, may be
honoured (`honoured(result)` says whether the result is right). Outcomes:
  good       ValueError whose message names the field / file (one of `names`)
  unclear    ValueError that names none of them
  silent     accepted, and the result is wrong (or accepted where only a refusal is right)
  traceback  any other exception (TypeError, RuntimeError, safetensors errors, MemoryError, ...)
  data loss  a save that leaves a folder whose files do not belong together and loads silently
  ok         honoured correctly (counted with the good outcomes)
The process runs under an 8 GiB address-space limit so absurd sizes fail fast instead of being killed.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import stat
import sys
import tempfile
from pathlib import Path

resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))

import torch  # noqa: E402

from synthsae.sae import make  # noqa: E402
from synthsae.sae.base import SAE  # noqa: E402
from synthsae.world import (Block, Coherence, ConstantMagnitude, ExactlyK, Full, HierarchyConfig, Linear,  # noqa: E402
                            LowRank, Noise, Spiked, Subspaces, Vector, World, WorldConfig, Zipf)
from synthsae.world.magnitudes import LogNormal  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="audit18-"))
CASES = []


def case(name, names, honoured=None, kind="refuse"):
    def deco(fn):
        CASES.append((name, fn, names, honoured, kind))
        return fn
    return deco


def small(**kw):
    return WorldConfig(d=8, m=16, **kw)


def hier():
    return WorldConfig(d=8, m=16, hierarchy=HierarchyConfig(roots=2, branching=2, depth=2))


def state_with(cfg, **changes):
    w = World(cfg)
    st = w.state()
    for key, fn in changes.items():
        st[key.replace("__", ".")] = fn(st[key.replace("__", ".")].clone())
    return World.from_state(cfg, st)


def finite_samples(w):
    b = w.sample(64, seed=1)
    return bool(torch.isfinite(b.x).all())


# ---- constructor types --------------------------------------------------------------------------
case("ExactlyK(k=2.5)", ["k"])(lambda: World(WorldConfig(d=8, m=16, firing=ExactlyK(k=2.5))).sample(4))
case("ExactlyK(k=True)", ["k"])(lambda: ExactlyK(k=True))
case("HierarchyConfig(roots=2.5)", ["roots"])(lambda: World(WorldConfig(d=8, m=64, hierarchy=HierarchyConfig(roots=2.5))))
case("WorldConfig(d=True)", ["d"])(lambda: WorldConfig(d=True, m=4))
case("WorldConfig(m=64.0)", ["m"])(lambda: World(WorldConfig(d=8, m=64.0)))
case("Zipf(exponent=inf)", ["exponent"])(lambda: Zipf(exponent=math.inf))
case("Zipf(exponent='1')", ["exponent"])(lambda: Zipf(exponent="1"))
case("Zipf(max_p=nan)", ["max_p"])(lambda: Zipf(max_p=math.nan))
case("Noise(std='0.1')", ["std"])(lambda: Noise(std="0.1"))
case("Noise(snr=inf)", ["snr"])(lambda: Noise(snr=math.inf))
case("Noise(bias_norm=True)", ["bias_norm"])(lambda: Noise(bias_norm=True))
case("Block(size=2.0)", ["size"])(lambda: World(small(correlation=Block(size=2.0))))
case("Block(rho=nan)", ["rho"])(lambda: World(small(correlation=Block(rho=math.nan))))
case("LowRank(rank='3')", ["rank"])(lambda: LowRank(rank="3"))
case("Spiked(rho=nan)", ["rho"])(lambda: World(small(dictionary=Spiked(rho=math.nan))))
case("Coherence(max_steps=True)", ["max_steps"])(lambda: Coherence(max_steps=True))
case("Subspaces(n_groups=2.5)", ["n_groups"])(lambda: World(small(dictionary=Subspaces(n_groups=2.5, rank=2))))
case("HierarchyConfig(branching=(2, '3'))", ["branching"])(lambda: HierarchyConfig(branching=(2, "3")))
case("HierarchyConfig(mutually_exclusive=nan)", ["mutually_exclusive"])(
    lambda: HierarchyConfig(mutually_exclusive=math.nan))
case("Vector(p=(0.1, '0.2'))", ["p"])(lambda: Vector(p=(0.1, "0.2")))
case("ConstantMagnitude(value='2')", ["value"])(lambda: World(small(magnitudes=ConstantMagnitude(value="2"))))
case("Linear(start=nan) profile", ["start"])(lambda: World(small(magnitudes=ConstantMagnitude(value=Linear(start=math.nan)))))
case("LogNormal(sigma=-1)", ["sigma"])(lambda: World(small(magnitudes=LogNormal(sigma=-1.0))))
case("WorldConfig(seed=1.5)", ["seed"])(lambda: WorldConfig(d=8, m=16, seed=1.5))
case("TopK SAE k=2.5", ["k"])(lambda: make("topk", d=8, m=16, k=2.5))
case("Full(matrix ragged)", ["matrix"])(lambda: World(WorldConfig(d=4, m=2, correlation=Full(matrix=((1.0, 0.0), (0.0,))))))
case("Full(matrix ragged) from_dict", ["matrix"])(
    lambda: WorldConfig.from_dict({"d": 4, "m": 2, "correlation": {"kind": "full", "matrix": [[1.0, 0.0], [0.0]]}}))

case("Given(path=missing file)", ["nope.safetensors"])(
    lambda: World(small(dictionary=__import__("synthsae.world", fromlist=["Given"]).Given(path=str(TMP / "nope.safetensors")))))
case("World(config=dict)", ["WorldConfig"])(lambda: World({"d": 8, "m": 16}))
case("World.from_state(state=list)", ["state"])(lambda: World.from_state(small(), []))
case("World.from_state(bias='x')", ["bias"])(lambda: World.from_state(small(), {**World(small()).state(), "bias": "x"}))
case("World.load(missing folder)", ["config.json"])(lambda: World.load(TMP / "missing"))
case("sample(n=2.5)", ["n"])(lambda: World(small()).sample(2.5))
case("sample(n=True)", ["n"])(lambda: World(small()).sample(True))
case("sample(n=-3)", ["n"])(lambda: World(small()).sample(-3))
case("preset unknown", ["preset", "toyy"])(lambda: World.preset("toyy"))
case("preset override seed='1'", ["seed"])(lambda: World.preset("toy", seed="1"))
case("WorldConfig.from_dict(d='8')", ["d"])(lambda: WorldConfig.from_dict({"d": "8"}))
case("WorldConfig.from_toml(exponent=inf)", ["exponent"])(
    lambda: WorldConfig.from_toml('[firing]\nkind = "zipf"\nexponent = inf\n'))
case("Full 3x3 matrix for m=2", ["matrix"])(
    lambda: World(WorldConfig(d=4, m=2, correlation=Full(matrix=((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0))))))

# ---- memory -------------------------------------------------------------------------------------
case("World d=10**9", ["memory", "GiB", "bytes"])(lambda: World(WorldConfig(d=10**9, m=64)))
case("World m=10**10", ["memory", "GiB", "bytes"])(lambda: World(WorldConfig(d=8, m=10**10)))
case("World m=200000 coherence", ["memory", "GiB", "bytes"])(lambda: World(WorldConfig(d=64, m=200_000, dictionary=Coherence())))
case("World block correlation m=200000", ["memory", "GiB", "bytes"])(
    lambda: World(WorldConfig(d=8, m=200_000, correlation=Block(size=8))))
case("sample(n=10**9)", ["memory", "GiB", "bytes", "n"])(lambda: World(small()).sample(10**9))

# ---- from_state ---------------------------------------------------------------------------------
def _nan_row(t):
    t[3] = math.nan
    return t


def _set(index, value):
    def fn(t):
        t[index] = value
        return t
    return fn


case("from_state NaN dictionary row", ["dictionary"])(lambda: state_with(small(), dictionary=_nan_row))
case("from_state NaN bias", ["bias"])(lambda: state_with(small(), bias=_set(0, math.nan)))
case("from_state NaN mag.value", ["mag"])(lambda: state_with(small(), mag__value=_set(2, math.nan)))
case("from_state inf mag.value", ["mag"])(lambda: state_with(small(), mag__value=_set(2, math.inf)))
case("from_state negative noise_std", ["noise_std"])(lambda: state_with(small(), noise_std=lambda t: torch.tensor(-1.0, dtype=torch.float64)))
case("from_state NaN noise_std", ["noise_std"])(lambda: state_with(small(), noise_std=lambda t: torch.tensor(math.nan, dtype=torch.float64)))
case("from_state parents cycle", ["parents"])(lambda: state_with(hier(), parents=lambda t: (t.__setitem__(0, 2), t)[1]))
case("from_state parents self-loop", ["parents"])(lambda: state_with(hier(), parents=_set(0, 0)))
case("from_state parent out of range", ["parents"])(lambda: state_with(hier(), parents=_set(5, 99)))
case("from_state parent -7", ["parents"])(lambda: state_with(hier(), parents=_set(5, -7)))
case("from_state float parents", ["parents"])(lambda: state_with(hier(), parents=lambda t: t.double()))
case("from_state NaN q", ["q"])(lambda: state_with(small(), q=_set(0, math.nan)))
case("from_state dictionary (m, d+1)", ["dictionary"])(lambda: state_with(small(), dictionary=lambda t: torch.zeros(16, 9)))
case("from_state corr_factor NaN", ["corr_factor"])(
    lambda: state_with(small(correlation=LowRank(rank=2)), corr_factor=_set(0, math.nan)))


# ---- saved worlds ----------------------------------------------------------------------------------
def saved(cfg=None, tag="w"):
    folder = TMP / f"{tag}-{len(os.listdir(TMP))}"
    World(cfg or small(noise=Noise(std=0.1))).save(folder)
    return folder


def edit_config(folder, fn):
    meta = json.loads((folder / "config.json").read_text())
    fn(meta["world"])
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


def noise_edit():
    return World.load(edit_config(saved(), lambda w: w["noise"].__setitem__("std", 0.5)))


case("edit config.json noise.std", ["config.json", "noise"], honoured=lambda w: abs(w.noise_std - 0.5) < 1e-9,
     kind="either")(noise_edit)


def firing_edit():
    return World.load(edit_config(saved(), lambda w: w.__setitem__("firing", {"kind": "constant", "p": 0.2})))


case("edit config.json firing law", ["config.json", "firing"],
     honoured=lambda w: torch.allclose(w.firing_probabilities, torch.full((16,), 0.2, dtype=w.firing_probabilities.dtype)),
     kind="either")(firing_edit)


def seed_edit():
    w = World.load(edit_config(saved(), lambda w: w.__setitem__("seed", 5)))
    return w


case("edit config.json seed", ["config.json", "seed"],
     honoured=lambda w: torch.equal(w.dictionary, World(small(noise=Noise(std=0.1), seed=5)).dictionary), kind="either")(seed_edit)
case("edit config.json m", ["config.json", "m", "dictionary"])(
    lambda: World.load(edit_config(saved(), lambda w: w.__setitem__("m", 17))))
case("edit config.json magnitudes", ["config.json", "magnitudes"],
     honoured=lambda w: float(w.mean_magnitudes.mean()) == 3.0, kind="either")(
    lambda: World.load(edit_config(saved(), lambda w: w.__setitem__("magnitudes", {"kind": "constant", "value": 3.0}))))


def _tensor_file_edit(fn, cfg=None):
    from safetensors.torch import load_file, save_file
    folder = saved(cfg)
    st = load_file(folder / "world.safetensors")
    fn(st)
    save_file(st, folder / "world.safetensors")
    return World.load(folder)


case("saved NaN dictionary row", ["dictionary", "world.safetensors"])(
    lambda: _tensor_file_edit(lambda st: st["dictionary"].__setitem__(1, math.nan)))
case("saved NaN bias", ["bias", "world.safetensors"])(lambda: _tensor_file_edit(lambda st: st["bias"].__setitem__(1, math.nan)))
case("saved negative noise_std", ["noise_std", "world.safetensors"])(
    lambda: _tensor_file_edit(lambda st: st.__setitem__("noise_std", torch.tensor(-0.3, dtype=torch.float64))))
case("saved parents cycle", ["parents", "world.safetensors"])(
    lambda: _tensor_file_edit(lambda st: st["parents"].__setitem__(0, 2), hier()))
case("saved flipped dictionary entry (finite)", ["world.safetensors"], honoured=None)(
    lambda: _tensor_file_edit(lambda st: st["dictionary"].__setitem__((0, 0), -st["dictionary"][0, 0])))


def truncate():
    folder = saved()
    data = (folder / "world.safetensors").read_bytes()
    (folder / "world.safetensors").write_bytes(data[: len(data) // 2])
    return World.load(folder)


case("truncated world.safetensors", ["world.safetensors"])(truncate)


def remove():
    folder = saved()
    (folder / "world.safetensors").unlink()
    return World.load(folder)


case("missing world.safetensors", ["world.safetensors"])(remove)


def truncated_json():
    folder = saved()
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[:40])
    return World.load(folder)


case("truncated config.json", ["config.json"])(truncated_json)


def torn_pair():
    """A kill between the two writes of save(): new tensors, old config (a different world)."""
    folder = saved(small(seed=1))
    other = TMP / "other"
    World(small(seed=2, noise=Noise(std=0.3))).save(other)
    shutil.copy(other / "world.safetensors", folder / "world.safetensors")
    return World.load(folder)


case("torn save: new tensors, old config", ["config.json", "world.safetensors"], kind="dataloss")(torn_pair)


def save_to_file():
    f = TMP / "a-file"
    f.write_text("x")
    return World(small()).save(f)


case("World.save(path of an existing file)", ["a-file"])(save_to_file)


# ---- SAEs ------------------------------------------------------------------------------------------
def sae_variant_edit():
    folder = TMP / "sae-topk"
    make("topk", d=8, m=16, k=2).save(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["kind"] = "relu_l1"
    cfg.pop("k", None), cfg.pop("aux_k", None), cfg.pop("aux_coefficient", None)
    (folder / "config.json").write_text(json.dumps(cfg))
    return SAE.load(folder)


case("SAE topk saved, config.json says relu_l1", ["config.json", "variant", "topk"])(sae_variant_edit)


def sae_nan():
    from safetensors.torch import load_file, save_file
    folder = TMP / "sae-nan"
    make("topk", d=8, m=16, k=2).save(folder)
    st = load_file(folder / "model.safetensors")
    st["W_dec"][0, 0] = math.nan
    save_file(st, folder / "model.safetensors", metadata={"variant": "topk"})
    return SAE.load(folder)


case("SAE NaN weight in model.safetensors", ["W_dec", "model.safetensors"])(sae_nan)


def sae_torn():
    folder = TMP / "sae-torn"
    make("topk", d=8, m=16, k=2, seed=0).save(folder)
    other = TMP / "sae-other"
    make("topk", d=8, m=16, k=4, seed=1).save(other)
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    return SAE.load(folder)


case("torn SAE save: new weights, old config", ["config.json", "model.safetensors"], kind="dataloss")(sae_torn)


# ---- permissions -----------------------------------------------------------------------------------
def perms():
    old = os.umask(0o022)
    try:
        folder = saved()
    finally:
        os.umask(old)
    return folder


case("world.save file mode under umask 022", [],
     honoured=lambda folder: all(stat.S_IMODE(os.stat(p).st_mode) == 0o644 for p in folder.iterdir()), kind="either")(perms)


def run(verbose: bool) -> dict[str, int]:
    counts = dict.fromkeys(["tried", "good", "unclear", "silent", "traceback", "data loss"], 0)
    for name, fn, names, honoured, kind in CASES:
        counts["tried"] += 1
        try:
            result = fn()
        except ValueError as err:
            text = str(err)
            outcome = "good" if (not names or any(n in text for n in names)) else "unclear"
            detail = text
        except Exception as err:  # noqa: BLE001 - the audit classifies everything
            outcome, detail = "traceback", f"{type(err).__name__}: {err}"
        else:
            if kind == "either" and honoured is not None and honoured(result):
                outcome, detail = "good", "honoured"
            elif kind == "either" and honoured is None and isinstance(result, World) and finite_samples(result):
                outcome, detail = "good", "accepted, finite samples"
            elif kind == "dataloss":
                outcome, detail = "data loss", "loaded a mixed pair silently"
            else:
                outcome, detail = "silent", f"accepted: {result!r}"[:200]
        counts[outcome] += 1
        if verbose:
            print(f"{outcome:<10} {name:<45} {detail[:220]}")
    return counts


if __name__ == "__main__":
    counts = run("--verbose" in sys.argv)
    print(json.dumps(counts))
    shutil.rmtree(TMP, ignore_errors=True)
