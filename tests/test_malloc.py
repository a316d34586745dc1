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
