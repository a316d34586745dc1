"""Sweeps: every executor gives the same table, finished trials are skipped on resume (also after a
kill), a failing trial is recorded and does not stop the others."""

import importlib
import json

import pytest

from synthsae.errors import ConfigError
from synthsae.experiments.executors import EXECUTORS
from synthsae.experiments.sweep import SweepConfig, run_sweep

pytestmark = pytest.mark.slow
cells_module = importlib.import_module("synthsae.experiments.cells")


@pytest.fixture
def sweep_config(tiny_config):
    """3 trials: relu_l1 at two l1 coefficients, one of them at lr = 1e30 (diverges at step 1: fails)."""
    base = tiny_config(saes=[{"variant": "relu_l1", "m": 32}])
    return SweepConfig(experiment=base, seeds=(0,), grid=(
        {"sae.l1_coefficient": [1e-3, 1e-2]},
        {"sae.l1_coefficient": [1e-3], "train.lr": [1e30]},
    ))


def _table(out):
    data = json.loads((out / "results.json").read_text())
    return [{k: v for k, v in row.items() if k not in ("wall_seconds", "train_seconds", "eval_seconds")
             and not k.startswith("timing.")} for row in data["rows"]]


def test_local_and_serial_executors_agree_failures_are_recorded_and_resume_skips(tmp_path, sweep_config,
                                                                                  monkeypatch):
    serial = run_sweep(sweep_config, tmp_path / "serial", executor="serial", progress=False)
    local = run_sweep(sweep_config, tmp_path / "local", executor="local", n_workers=2, progress=False)
    table = _table(tmp_path / "serial")
    assert _table(tmp_path / "local") == table
    assert [r["status"] for r in table] == ["ok", "ok", "failed"]
    assert "FloatingPointError" in table[2]["error"] and "not finite" in table[2]["error"]
    assert table[0]["recovery.mcc"] is not None and table[0]["recovery.mcc"] != table[1]["recovery.mcc"]
    assert [r["train.lr"] for r in table] == [3e-3, 3e-3, 1e30]  # unswept in a grid: the value used
    assert len(serial.failed) == len(local.failed) == 1
    csv = (tmp_path / "local" / "results.csv").read_text().splitlines()
    assert csv[0].startswith("trial,sae.l1_coefficient,train.lr,seed,status,error,wall_seconds") and len(csv) == 4
    report = (tmp_path / "local" / "report.md").read_text()
    assert "Failed trials" in report and "plots/recovery_mcc_vs_sae_l1_coefficient.png" in report
    assert (tmp_path / "local" / "plots" / "recovery_mcc_vs_sae_l1_coefficient.png").is_file()

    # resume: finished trials (ok or failed) are skipped -- here the executor must not run anything
    calls = []
    monkeypatch.setattr(cells_module, "execute", lambda *a, **k: calls.append(a))
    run_sweep(sweep_config, tmp_path / "serial", executor="serial", progress=False)
    assert calls == [] and _table(tmp_path / "serial") == table


def test_a_killed_sweep_resumes_where_it_stopped(tmp_path, sweep_config, monkeypatch):
    real = cells_module.execute
    ran = []

    def killed_after_one(task, **kw):
        if ran:
            raise KeyboardInterrupt  # Ctrl-C during the second trial
        ran.append(task.out_dir)
        return real(task, **kw)

    monkeypatch.setattr(cells_module, "execute", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_config, tmp_path / "s", executor="serial", progress=False)
    assert len(ran) == 1 and not (tmp_path / "s" / "results.csv").exists()

    rerun = []
    monkeypatch.setattr(cells_module, "execute", lambda t, **kw: rerun.append(t.out_dir) or real(t, **kw))
    result = run_sweep(sweep_config, tmp_path / "s", executor="serial", progress=False)
    assert ran[0] not in rerun and len(rerun) == 2  # the finished trial was skipped
    assert [r["status"] for r in result.rows] == ["ok", "ok", "failed"]
    # --retry-failed reruns only the failed trial
    again = []
    monkeypatch.setattr(cells_module, "execute", lambda t, **kw: again.append(t.out_dir) or real(t, **kw))
    run_sweep(sweep_config, tmp_path / "s", executor="serial", retry_failed=True, progress=False)
    assert len(again) == 1 and again[0].endswith(result.rows[2]["trial"])


def test_unknown_executor_and_options_fail_before_any_work(tmp_path, sweep_config):
    with pytest.raises(ConfigError, match="Did you mean 'local'"):
        run_sweep(sweep_config, tmp_path / "x", executor="locall", progress=False)
    with pytest.raises(ConfigError, match="n_workers = 0"):
        run_sweep(sweep_config, tmp_path / "x", executor="local", n_workers=0, progress=False)
    assert not (tmp_path / "x").exists()
    assert set(EXECUTORS.available()) == {"local", "ray", "serial"}


def test_ray_executor_gives_the_local_table(tmp_path, sweep_config):
    pytest.importorskip("ray")
    run_sweep(sweep_config, tmp_path / "local", executor="local", n_workers=2, progress=False)
    run_sweep(sweep_config, tmp_path / "ray", executor="ray", n_workers=2, progress=False)
    assert _table(tmp_path / "ray") == _table(tmp_path / "local")


def test_missing_ray_gives_install_instructions(tmp_path, sweep_config, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'synthsae\[ray\]'"):
        run_sweep(sweep_config, tmp_path / "r", executor="ray", progress=False)
