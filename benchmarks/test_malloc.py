"""The opt-in `synthsae.reuse_freed_memory()` (synthsae._malloc): what it sets, and that it pays.

Lives with the benchmarks, not in the unit suite (`python -m pytest` does not collect it):
    python -m pytest benchmarks/test_malloc.py            # add -m "not slow" for the fast checks
The measuring cases run in fresh interpreters: malloc settings are process-wide.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from synthsae import _malloc

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
# `fake_libc` (records the calls instead of making them): a fixture of the repository's conftest.py


def test_the_scope_sets_on_entry_and_restores_on_exit(fake_libc):
    """Outermost scope: no separate maps and a 1 GiB trim threshold; nested scopes change nothing;
    leaving: glibc's defaults again and the kept memory trimmed."""
    with _malloc.reuse_freed_memory() as applied:
        assert applied
        assert fake_libc.calls == [("mallopt", _malloc.M_MMAP_MAX, 0),
                                   ("mallopt", _malloc.M_TRIM_THRESHOLD, _malloc.SCOPE_TRIM_THRESHOLD)]
        with _malloc.reuse_freed_memory("cpu"):
            pass
        assert len(fake_libc.calls) == 2
    assert fake_libc.calls[2:] == [("mallopt", _malloc.M_MMAP_MAX, _malloc.DEFAULT_MMAP_MAX),
                                   ("mallopt", _malloc.M_TRIM_THRESHOLD, _malloc.DEFAULT_TRIM_THRESHOLD),
                                   ("malloc_trim", 0)]


def test_the_scope_restores_after_an_error_and_works_as_a_decorator(fake_libc):
    @_malloc.reuse_freed_memory()
    def boom():
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        boom()
    assert [c[0] for c in fake_libc.calls] == ["mallopt", "mallopt", "mallopt", "mallopt", "malloc_trim"]


def test_nothing_changes_for_a_gpu_device(fake_libc):
    with _malloc.reuse_freed_memory(torch.device("cuda", 0)) as applied:
        assert not applied
    assert fake_libc.calls == []


def run(script: str, **env_changes) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_user_malloc_settings_win():
    script = ("import json, synthsae\n"
              "with synthsae.reuse_freed_memory() as applied: print(json.dumps({'applied': applied}))")
    assert run(script)["applied"]
    assert not run(script, MALLOC_ARENA_MAX="2")["applied"]


# A small non-negative elastic net solved four times: its temporaries are megabytes, and glibc's
# defaults fault ~10,000 pages in afresh per solve (measured); inside the scope freed memory is reused.
SOLVE_SCRIPT = textwrap.dedent("""
    import contextlib, json, resource, torch
    import synthsae
    from synthsae.solvers import sparse_code
    from synthsae.testing.dictionaries import gaussian_dictionary
    from synthsae.testing.problems import sparse_code_matrix
    torch.set_num_threads(1)
    D = gaussian_dictionary(512, 128, 0)
    X = sparse_code_matrix(300, 512, 16, 1.0, 3.0, True, 1) @ D
    faults = []
    with synthsae.reuse_freed_memory() if SCOPE else contextlib.nullcontext():
        for _ in range(4):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            sparse_code(X, D, 0.1, 0.1, nonneg=True)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"faults": faults}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_solves_inside_the_scope_reuse_freed_memory():
    on, off = run("SCOPE = True\n" + SOLVE_SCRIPT), run("SCOPE = False\n" + SOLVE_SCRIPT)
    # after the first solve (which maps the memory once either way)
    assert sum(on["faults"][1:]) < sum(off["faults"][1:]) / 4, (on, off)


# Training with 64 MiB (batch, m) blocks (d=32, m=2048, batch 8192) inside one scope (as if it were
# one longer run). Measured: 5,000-11,000 faults per step after the first run, against 82,000
# without the scope; a resident size of ~770 MiB inside, ~320 MiB after it.
TRAIN_SCRIPT = textwrap.dedent("""
    import contextlib, json, resource, torch
    import synthsae
    from synthsae.sae import make, train
    from synthsae.world import World
    torch.set_num_threads(1)
    world, sae, B = World.preset("toy"), make("relu_l1", 32, 2048), 8192

    def resident_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20

    with synthsae.reuse_freed_memory() if SCOPE else contextlib.nullcontext():
        train(sae, world, B, B, progress=False, init_b_dec=None)  # maps the memory once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        train(sae, world, 3 * B, B, progress=False, init_b_dec=None)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
        kept = resident_mib()
    print(json.dumps({"faults_per_step": faults, "kept": kept, "after": resident_mib()}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the settings apply to glibc only")
def test_training_inside_the_scope_reuses_big_blocks_and_returns_them_after():
    on, off = run("SCOPE = True\n" + TRAIN_SCRIPT), run("SCOPE = False\n" + TRAIN_SCRIPT)
    assert on["faults_per_step"] < off["faults_per_step"] / 4, (on, off)
    assert on["kept"] - on["after"] >= 64, on  # MiB handed back when the scope ends
