"""World.load / World.from_state verify what they load; saves are consistent folders (issue 18)."""

import json
import math
import os
import shutil
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from synthsae.world import Block, HierarchyConfig, LowRank, Noise, Uniform, World, WorldConfig
from synthsae.world.memory import sample_bytes, world_bytes


def small(**kw):
    return WorldConfig(d=8, m=16, **kw)


def hier(**kw):
    return WorldConfig(d=8, m=16, hierarchy=HierarchyConfig(roots=2, branching=2, depth=2), **kw)


def broken(cfg, key, change):
    state = World(cfg).state()
    state[key] = change(state[key].clone())
    return cfg, state


def at(index, value):
    def change(t):
        t[index] = value
        return t
    return change


@pytest.mark.parametrize("cfg, key, change, match", [
    (small(), "dictionary", at(3, math.nan), r"\['dictionary'\] = 'nan at index \[3, 0\]'.*finite"),
    (small(), "dictionary", at(3, 0.5), r"\['dictionary'\] = 'row 3 with norm .*unit norm"),
    (small(), "bias", at(0, math.nan), r"\['bias'\].*finite"),
    (small(), "mag.value", at(2, math.inf), r"\['mag.value'\].*finite"),
    (small(), "mag.value", at(2, 0.0), r"\['mag.value'\].*values > 0"),
    (small(magnitudes=Uniform()), "mag.high", at(2, 0.5), r"\['mag.high'\].*below low"),
    (small(), "noise_std", lambda t: torch.tensor(-1.0, dtype=torch.float64), r"\['noise_std'\] = -1.0.*non-negative"),
    (small(), "noise_std", lambda t: torch.tensor(math.nan, dtype=torch.float64), r"\['noise_std'\] = 'nan'"),
    (small(noise=Noise(std=0.1)), "noise_std", lambda t: torch.tensor(0.5, dtype=torch.float64),
     r"\['noise_std'\] = 0.5.*noise.std = 0.1"),
    (small(), "q", at(0, 0.9), r"\['q'\].*firing law"),
    (small(), "q", at(0, -0.1), r"\['q'\].*\[0, 1\]"),
    (small(), "marginal", lambda t: t.float().to(torch.int64), r"\['marginal'\].*floating"),
    (hier(), "parents", at(0, 2), r"\['parents'\] = 'feature 0 is on or below a cycle'"),
    (hier(), "parents", at(0, 0), r"\['parents'\] = 'feature 0 is its own parent'"),
    (hier(), "parents", at(5, 99), r"\['parents'\] = 'parent 99 of feature 5'.*\[-1, 15\]"),
    (hier(), "parents", at(5, -7), r"\['parents'\] = 'parent -7 of feature 5'"),
    (hier(), "parents", lambda t: t.double(), r"\['parents'\].*integer"),
    (hier(), "level", at(5, 7), r"\['level'\] = 'level 7 of feature 5'"),
    (hier(), "exclusive", lambda t: t.long(), r"\['exclusive'\].*bool"),
    (small(correlation=LowRank(rank=2)), "corr_factor", at((0, 0), math.nan), r"\['corr_factor'\].*finite"),
    (small(correlation=LowRank(rank=2)), "corr_factor", at((0, 0), 0.9), r"\['corr_factor'\].*unit diagonal"),
    (small(correlation=Block(size=4)), "corr_diag", at(0, -0.5), r"\['corr_diag'\].*>= 0"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_from_state_refuses_invalid_parts(cfg, key, change, match):
    cfg, state = broken(cfg, key, change)
    with pytest.raises(ValueError, match=match):
        World.from_state(cfg, state)


def test_a_nan_row_does_not_slip_through_the_unit_norm_check():
    """|norm - 1| > tol is False for NaN: the check must be written so that NaN fails it."""
    from synthsae.world.verify import _check_dictionary

    D = torch.eye(4)
    D[1] = math.nan
    with pytest.raises(ValueError, match="row 1 with norm nan"):
        _check_dictionary(D, "D")


def test_a_deep_chain_is_a_forest_and_a_long_cycle_is_not():
    from synthsae.world.verify import check_forest

    m = 1000
    parents = torch.arange(-1, m - 1)  # 0 <- 1 <- 2 <- ... a chain of depth m - 1
    check_forest(parents, torch.arange(m), lambda k: k)
    parents[0] = m - 1  # close the chain into one long cycle
    with pytest.raises(ValueError, match="cycle"):
        check_forest(parents, torch.arange(m), lambda k: k)


# ---- saved folders ----------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    return World(hier(noise=Noise(std=0.1), seed=3)).save(tmp_path / "w")


def edit(folder, change):
    meta = json.loads((folder / "config.json").read_text())
    change(meta["world"])
    (folder / "config.json").write_text(json.dumps(meta))


def test_round_trip_still_exact(folder):
    original = World(hier(noise=Noise(std=0.1), seed=3))
    back = World.load(folder)
    assert back.config == original.config
    assert torch.equal(back.sample(200, seed=1).x, original.sample(200, seed=1).x)


@pytest.mark.parametrize("change, field", [
    (lambda w: w["noise"].update(std=0.5), "world.noise.std"),
    (lambda w: w.update(firing={"kind": "constant", "p": 0.2}), "world.firing.kind"),
    (lambda w: w.update(seed=4), "world.seed"),
    (lambda w: w["hierarchy"].update(mutually_exclusive=0.5), "world.hierarchy.mutually_exclusive"),
    (lambda w: w.update(m=17), "world.m"),
])
def test_an_edited_config_json_is_refused_naming_file_and_field(folder, change, field):
    edit(folder, change)
    with pytest.raises(ValueError, match=rf"config.json: {field} = .* were built with {field} = "):
        World.load(folder)


def test_an_equivalent_rewrite_of_config_json_is_accepted(folder):
    edit(folder, lambda w: w["noise"].update(std=1e-1))  # same value, other spelling
    text = (folder / "config.json").read_text().replace('"std": 0.1', '"std": 0.10000')
    (folder / "config.json").write_text(text)
    World.load(folder)


def test_tensors_from_another_save_are_refused(folder, tmp_path):
    World(hier(noise=Noise(std=0.1), seed=3)).save(tmp_path / "same")
    (folder / "world.safetensors").write_bytes((tmp_path / "same" / "world.safetensors").read_bytes())
    World.load(folder)  # the same world saved twice: identical bytes, accepted
    state = load_file(folder / "world.safetensors")
    state["dictionary"][0] = -state["dictionary"][0]  # still unit norm, still finite: only the digest tells
    save_file(state, folder / "world.safetensors", metadata={"format_version": "1"})
    with pytest.raises(ValueError, match=r"tensors_sha256 = .*world.safetensors has digest"):
        World.load(folder)


def test_a_torn_save_is_refused(folder, tmp_path):
    """A kill between the two writes of save(): the new world's tensors beside the old config.json."""
    World(hier(noise=Noise(std=0.2), seed=3)).save(tmp_path / "new")
    shutil.copy(tmp_path / "new" / "world.safetensors", folder / "world.safetensors")
    with pytest.raises(ValueError, match=r"config.json: world.noise.std = 0.1 .*built with world.noise.std = 0.2"):
        World.load(folder)


def test_old_saves_without_digest_or_metadata_still_load_and_are_checked(folder):
    meta = json.loads((folder / "config.json").read_text())
    del meta["tensors_sha256"]
    (folder / "config.json").write_text(json.dumps(meta))
    state = load_file(folder / "world.safetensors")
    save_file(state, folder / "world.safetensors", metadata={"format_version": "1"})
    World.load(folder)
    edit(folder, lambda w: w["noise"].update(std=0.5))  # without metadata the cheap cross-checks still apply
    with pytest.raises(ValueError, match=r"world.safetensors\['noise_std'\] = 0.1.*noise.std = 0.5"):
        World.load(folder)


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "world.safetensors").write_bytes((f / "world.safetensors").read_bytes()[:100]), "truncated"),
    (lambda f: (f / "world.safetensors").unlink(), "world.safetensors does not exist"),
    (lambda f: (f / "config.json").write_text("{"), "config.json is not valid JSON"),
    (lambda f: (f / "config.json").write_text("[]"), "config.json = \\[\\] is invalid"),
])
def test_damaged_files_are_named(folder, damage, match):
    damage(folder)
    with pytest.raises(ValueError, match=match):
        World.load(folder)


def test_save_onto_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"f is a file"):
        World(small()).save(tmp_path / "f")


def test_saved_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        World(small()).save(tmp_path / "a")
        os.umask(0o077)
        World(small()).save(tmp_path / "b")
    finally:
        os.umask(old)
    for name in ("config.json", "world.safetensors"):
        assert stat.S_IMODE(os.stat(tmp_path / "a" / name).st_mode) == 0o644
        assert stat.S_IMODE(os.stat(tmp_path / "b" / name).st_mode) == 0o600


def test_overwriting_keeps_an_existing_files_mode(tmp_path):
    from synthsae.io import atomic_write_text

    path = atomic_write_text(tmp_path / "x.txt", "a")
    os.chmod(path, 0o640)
    atomic_write_text(path, "b")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and path.read_text() == "b"


# ---- memory guard --------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: World(WorldConfig(d=10**9, m=64)), r"world = 'd = 1000000000, m = 64' is invalid: .* GiB"),
    (lambda: WorldConfig(d=8, m=10**12), r"world.m = 1000000000000 is invalid: .* GiB"),
    (lambda: World(WorldConfig(d=8, m=10**6, correlation=Block(size=2))), r"block correlation\) needs about"),
    (lambda: World(small()).sample(10**11), r"n = 100000000000 is invalid: .*at most about"),
])
def test_absurd_sizes_are_refused_before_allocating(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_memory_estimates_cover_what_is_allocated():
    cfg = WorldConfig(d=64, m=512)
    assert world_bytes(cfg) >= 4 * 64 * 512 + 8 * 64 * 512  # at least the float64 build and the float32 copy
    world = World(cfg)
    assert sample_bytes(world, 1000) >= 4 * 1000 * 64  # at least x itself
