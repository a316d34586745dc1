"""synthsae._malloc: glibc keeps freed temporaries for reuse after `tune()`, and respects opt-outs.

Each case runs in a fresh interpreter: malloc settings are process-wide and `tune` acts once.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A small non-negative elastic net solved four times: its temporaries are megabytes. With glibc's
# defaults each later solve faults ~10,000 pages in afresh (measured); after `tune()` (done by
# sparse_code itself) the freed memory is reused (~0-800 faults per solve).
SCRIPT = textwrap.dedent("""
    import json, resource, torch
    from synthsae._malloc import tune
    from synthsae.solvers import sparse_code
    from synthsae.testing.dictionaries import gaussian_dictionary
    from synthsae.testing.problems import sparse_code_matrix
    torch.set_num_threads(1)
    D = gaussian_dictionary(512, 128, 0)
    X = sparse_code_matrix(300, 512, 16, 1.0, 3.0, True, 1) @ D
    faults = []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        sparse_code(X, D, 0.1, 0.1, nonneg=True)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"tuned": tune(), "faults": faults}))
""")


def run(script=SCRIPT, **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SYNTHSAE_MALLOC"}
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_tuned_process_reuses_freed_memory():
    tuned, default = run(), run(SYNTHSAE_MALLOC="default")
    assert tuned["tuned"] and not default["tuned"]
    # after the first solve (which maps the memory once either way)
    assert sum(tuned["faults"][1:]) < sum(default["faults"][1:]) / 4, (tuned, default)


def test_user_settings_win():
    script = "import json; from synthsae._malloc import tune; print(json.dumps({'tuned': tune()}))"
    assert run(script)["tuned"] == GLIBC
    assert not run(script, SYNTHSAE_MALLOC="default")["tuned"]
    assert not run(script, MALLOC_ARENA_MAX="2")["tuned"]


# Training with 64 MiB (batch, m) blocks (d=32, m=2048, batch 8192), inside one outer scope (as if
# it were one longer run; leaving a scope hands the memory back, so the next run's first step
# faults it in again). Measured: 5,000-11,000 faults per step after the first run, against 82,000 without
# the scope (SYNTHSAE_MALLOC=default); a resident size of ~770 MiB inside, ~320 MiB after it.
TRAIN_SCRIPT = textwrap.dedent("""
    import json, resource, torch
    from synthsae._malloc import reuse_freed_memory
    from synthsae.sae import make, train
    from synthsae.world import World
    torch.set_num_threads(1)
    world, sae, B = World.preset("toy"), make("relu_l1", 32, 2048), 8192

    def resident_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20

    with reuse_freed_memory(torch.device("cpu")):
        train(sae, world, B, B, progress=False, init_b_dec=None)  # maps the memory once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        train(sae, world, 3 * B, B, progress=False, init_b_dec=None)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
        kept = resident_mib()
    print(json.dumps({"faults_per_step": faults, "kept": kept, "after": resident_mib()}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_training_reuses_big_blocks_and_returns_them_after():
    tuned, default = run(TRAIN_SCRIPT), run(TRAIN_SCRIPT, SYNTHSAE_MALLOC="default")
    assert tuned["faults_per_step"] < default["faults_per_step"] / 4, (tuned, default)
    assert tuned["kept"] - tuned["after"] >= 64, tuned  # MiB handed back when the scope ends


def test_sparse_code_opens_the_scope_only_for_big_batches(monkeypatch):
    """The scope is entered when the (n, m) float64 temporaries pass the heap ceiling (shrunk here)."""
    import contextlib

    import torch

    from synthsae.solvers import api, sparse_code

    entered = []

    @contextlib.contextmanager
    def spy(device=None):
        entered.append(device)
        yield

    monkeypatch.setattr(api, "reuse_freed_memory", spy)
    monkeypatch.setattr(api, "MMAP_THRESHOLD", 8 * 20 * 16)  # bytes of a (20, 16) float64 block
    D = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    X = torch.randn(21, 8, generator=torch.Generator().manual_seed(1))
    sparse_code(X[:20], D, 0.1)
    assert entered == []
    assert sparse_code(X, D, 0.1).all_converged
    assert entered == [torch.device("cpu")]
