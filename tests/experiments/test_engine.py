"""The experiment engine: recipes as grids of cells that resume after kill -9, run in parallel with the
serial rows, and travel through a multi-node Ray cluster whose workers do not share the driver's folder."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synthsae.experiments import cells as cells_module
from synthsae.experiments.engine import run_cells, run_grid
from synthsae.experiments.recipes import RECIPES

REPO = Path(__file__).resolve().parents[2]
TIMING = ("wall_seconds", "train_seconds", "eval_seconds")


pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(out: Path) -> list[dict]:
    with open(out / "cells.csv") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _verdict(out: Path) -> dict:
    data = json.loads((out / "metrics.json").read_text())
    return {"checks": data["checks"], "metrics": data["metrics"], "held": data["held"]}


def test_every_recipe_is_a_grid_with_unique_cells():
    for name in RECIPES.available():
        recipe = RECIPES.get(name)
        assert recipe.cells is not None and recipe.conclude is not None, name
        grid = recipe.cells(recipe.config_class.small())
        assert len({c.id for c in grid}) == len(grid) >= 2, name


def test_cells_run_after_the_cells_they_need_and_a_failed_input_blocks_them(tmp_path, monkeypatch):
    order = []

    def runner(spec, folder, inputs, device, progress):
        order.append(spec["name"])
        if spec["name"] == "bad":
            raise RuntimeError("planted failure")
        return {"row": {"x": 1.0, "inputs": len(inputs)}}

    monkeypatch.setitem(cells_module.RUNNERS._items, "test", runner)  # a runner for this test only

    def task(name, needs=()):
        return cells_module.Task(name, "test", {"name": name}, str(tmp_path / name), None,
                                 {n: str(tmp_path / n) for n in needs})

    records = run_cells([task("c", ("a", "b")), task("a"), task("b"), task("d", ("bad",)), task("bad")])
    assert order.index("c") > max(order.index("a"), order.index("b")) and "d" not in order
    assert records["c"]["row"] == {"x": 1.0, "inputs": 2}
    assert records["bad"]["status"] == "failed" and "planted failure" in records["bad"]["error"]
    assert records["d"]["status"] == "failed" and "bad" in records["d"]["error"]
    assert not (tmp_path / "d" / cells_module.CELL_FILE).exists()  # not stored: a rerun tries it again
    order.clear()
    run_cells([task("c", ("a", "b")), task("a"), task("b")])
    assert order == []  # finished cells are skipped


def test_a_cell_in_a_scratch_folder_gets_its_inputs_as_bytes_and_returns_its_files(tmp_path, monkeypatch):
    """What the Ray executor does on a worker that does not see the driver's folder."""

    def runner(spec, folder, inputs, device, progress):
        text = (inputs["a"] / "model" / "w.txt").read_text()
        (folder / "checkpoint").mkdir()
        (folder / "checkpoint" / "state.bin").write_bytes(b"resume state")  # stays on the worker
        (folder / "out").mkdir()
        (folder / "out" / "result.txt").write_text(text.upper())
        return {"row": {"n": float(len(text))}, "data": {"nan": float("nan")}}

    monkeypatch.setitem(cells_module.RUNNERS._items, "test", runner)
    (tmp_path / "driver" / "a" / "model").mkdir(parents=True)
    (tmp_path / "driver" / "a" / "model" / "w.txt").write_text("weights")
    (tmp_path / "driver" / "a" / "checkpoint").mkdir()
    (tmp_path / "driver" / "a" / "checkpoint" / "big.bin").write_bytes(b"x")
    task = cells_module.Task("b", "test", {}, str(tmp_path / "driver" / "b"), None, {"a": str(tmp_path / "driver" / "a")})
    packed = {"a": cells_module.pack(tmp_path / "driver" / "a")}
    assert set(packed["a"]) == {"model/w.txt"}  # checkpoints do not travel
    record = cells_module.execute(task, scratch=tmp_path / "worker", input_files=packed)
    assert not (tmp_path / "driver" / "b").exists()  # the worker never wrote into the driver's folder
    assert set(record["files"]) == {"out/result.txt", "cell.json"}
    assert record["row"] == {"n": 7.0} and record["data"] == {"nan": None}  # NaN -> null
    stored = cells_module.store(task, record)
    assert "files" not in stored and cells_module.read_record(task.out_dir) == stored
    assert (tmp_path / "driver" / "b" / "out" / "result.txt").read_text() == "WEIGHTS"


@pytest.mark.slow
def test_local_executor_runs_recipe_cells_in_parallel_with_the_serial_results(tmp_path):
    recipe = RECIPES.get("absorption")
    config = recipe.config_class.from_dict({**recipe.config_class.small().to_dict(), "seeds": [0, 1]})
    serial = run_grid(recipe, config, tmp_path / "serial", executor="serial")
    local = run_grid(recipe, config, tmp_path / "local", executor="local", n_workers=2)
    serial.write(tmp_path / "serial")
    local.write(tmp_path / "local")
    assert _rows(tmp_path / "local") == _rows(tmp_path / "serial") and len(_rows(tmp_path / "serial")) == 4
    assert _verdict(tmp_path / "local") == _verdict(tmp_path / "serial")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "local"])
def test_a_recipe_killed_with_sigkill_finishes_with_the_uninterrupted_results(tmp_path, executor):
    """kill -9 while cells are training, then the same command: only unfinished cells run again, and the
    rows and verdict equal those of an uninterrupted run (and no local worker outlives its driver)."""
    base = [sys.executable, "-m", "synthsae.cli", "run", "starvation", "--small", "--set", "n_samples=38400",
            "--quiet", "--threads", "1"]
    command = base + ["--executor", executor] + (["--workers", "2"] if executor == "local" else [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"  # uninterrupted, serial
    subprocess.run([*base, "--out", str(reference)], env=env, check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # kill once one cell has finished and the next has written a checkpoint but not finished
    while time.time() < deadline and proc.poll() is None:
        done = list(killed.glob("cells/*/cell.json"))
        mid = [p for p in killed.glob("cells/*/sae/checkpoint/checkpoint.safetensors")
               if not (p.parents[2] / "cell.json").exists()]
        if done and mid:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if executor == "local":
        assert workers, "the local executor runs cells in worker processes"
        deadline = time.time() + 30
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "a worker outlived its killed driver"
    finished = {p.parent.name: p.stat().st_mtime_ns for p in killed.glob("cells/*/cell.json")}
    total = len(list(reference.glob("cells/*/cell.json")))
    assert 1 <= len(finished) < total and not (killed / "report.md").exists()

    subprocess.run([*command, "--out", str(killed)], env=env, check=True, capture_output=True, timeout=600)
    assert {n: (killed / "cells" / n / "cell.json").stat().st_mtime_ns for n in finished} == finished  # not rerun
    assert _rows(killed) == _rows(reference)
    assert _verdict(killed) == _verdict(reference)


@pytest.mark.slow
def test_sweep_on_a_multi_node_ray_cluster_returns_the_local_table(tmp_path, tiny_config):
    """Two Ray nodes, each with its own temp dir: the cells run in scratch folders there and come back
    as files; the driver writes the same table (and the trials' files) as the local executor."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from synthsae.experiments.sweep import SweepConfig, run_sweep

    base = tiny_config(saes=[{"variant": "relu_l1", "m": 32}])
    sweep = SweepConfig(experiment=base, seeds=(0,), grid=({"sae.l1_coefficient": [1e-3, 1e-2]},))
    run_sweep(sweep, tmp_path / "local", executor="local", n_workers=2, progress=False)

    node_tmp = [tmp_path / "node0", tmp_path / "node1"]
    for d in node_tmp:
        d.mkdir()
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "env_vars": {**env, "TMPDIR": str(node_tmp[0])}})
    try:
        cluster.add_node(num_cpus=1, env_vars={**env, "TMPDIR": str(node_tmp[1])})
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env})
        try:
            result = run_sweep(sweep, tmp_path / "ray", executor="ray", progress=False)
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()

    def table(out):
        data = json.loads((out / "results.json").read_text())
        return [{k: v for k, v in r.items() if k not in TIMING and not k.startswith("timing.")}
                for r in data["rows"]]

    assert [r["status"] for r in result.rows] == ["ok", "ok"]
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    for r in result.rows:  # the trials' files came back to the driver (checkpoints stay behind)
        trial = tmp_path / "ray" / "trials" / r["trial"]
        assert (trial / "report.md").is_file() and (trial / "saes" / "relu_l1" / "model" / "model.safetensors").is_file()
        assert not (trial / "saes" / "relu_l1" / "checkpoint").exists()
    assert not list(tmp_path.glob("node*/synthsae-cell-*"))  # scratch folders were removed
