"""run_experiment: the report folder, reuse of finished SAEs, and exact resume after a kill mid-training."""

import importlib
import json

import pytest

from synthsae.experiments.run import HEADLINE, run_experiment
from synthsae.sae.base import SAE
from synthsae.sae.train import TrainHistory

train_module = importlib.import_module("synthsae.sae.train")

pytestmark = pytest.mark.slow


def test_report_folder_has_every_artifact_and_a_rerun_reuses_it(tmp_path, tiny_config, without_timing):
    config = tiny_config(plots=True)
    out = tmp_path / "exp"
    result = run_experiment(config, out, progress=False)
    assert [r["label"] for r in result.rows] == ["topk", "relu_l1"]
    for name in ("config.toml", "config.json", "world.json", "comparison.csv", "metrics.json", "report.md",
                 "comparison.png", "training.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    for label in ("topk", "relu_l1"):
        folder = out / "saes" / label
        for name in ("checkpoint/checkpoint.safetensors", "model/model.safetensors", "history.json",
                     "eval/metrics.json", "eval/features.csv", "eval/recovery_curve.png", "result.json"):
            assert (folder / name).is_file(), f"{label}/{name}"
        sae = SAE.load(folder / "model")
        assert sae.name == label and sae.config.m == 32
    # every embedded image exists, and the comparison table lists both SAEs with the headline columns
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert len(images) >= 4 and all((out / img).is_file() for img in images)
    header = next(line for line in report.splitlines() if line.startswith("| SAE"))
    assert all(title in header for title, _ in HEADLINE)
    assert json.loads((out / "metrics.json").read_text())["saes"][0]["label"] == "topk"
    # the topk SAE really has k = 4 active latents per sample (the table reports measured values)
    assert result.rows[0]["sparsity.l0"] == pytest.approx(4.0)
    assert "topk" in result.table() and "relu_l1" in result.table()
    # every SAE's convergence diagnostic is in the table and in its section, from its own history
    assert "converged" in header and "converged" in result.table().splitlines()[0]
    for r in result.rows:
        history = TrainHistory.load(out / "saes" / r["label"])
        word = "collapsed" if history.convergence["collapsed"] else "yes" if history.convergence["converged"] else "no"
        assert r["converged"] == word
    assert report.count("Convergence: ") == 2 and "held-out samples" in report
    # run metadata: versions, device and the command that reproduces the report
    run = json.loads((out / "metrics.json").read_text())["run"]
    assert run["device"] == "cpu" and run["reproduce"].startswith(f"synthsae run {out / 'config.toml'}")
    assert "## Run" in report and "torch version" in report and "git commit" in report

    stamp = (out / "saes" / "topk" / "result.json").stat().st_mtime_ns
    again = run_experiment(config, out, progress=False)
    assert (out / "saes" / "topk" / "result.json").stat().st_mtime_ns == stamp  # not retrained
    assert without_timing(again.rows) == without_timing(result.rows)

    with pytest.raises(ValueError, match="different experiment"):
        run_experiment(config.with_overrides({"train.lr": 1e-2}), out, progress=False)


def test_killed_run_resumes_exactly(tmp_path, tiny_config, without_timing, monkeypatch):
    config = tiny_config(saes=[{"variant": "relu_l1", "m": 32, "l1_coefficient": 3e-3}])
    reference = run_experiment(config, tmp_path / "reference", progress=False)

    real_train = train_module.train

    def killed_halfway(sae, world, n_samples, batch_size, **kwargs):
        real_train(sae, world, n_samples // 2, batch_size, **kwargs)  # writes its checkpoint at the half
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "killed", progress=False)
    ckpt = tmp_path / "killed" / "saes" / "relu_l1" / "checkpoint" / "checkpoint.safetensors"
    assert ckpt.is_file() and not (tmp_path / "killed" / "saes" / "relu_l1" / "result.json").exists()
    monkeypatch.setattr(train_module, "train", real_train)
    steps = []  # the trainer calls lr_factor once per step (+ once for a partial log window)
    real_factor = train_module.common.lr_factor
    monkeypatch.setattr(train_module.common, "lr_factor", lambda step, *a: steps.append(step) or real_factor(step, *a))
    resumed = run_experiment(config, tmp_path / "killed", progress=False)
    assert min(steps) == 4  # continued from the checkpoint at step 4 of 8, not from scratch
    assert without_timing(resumed.rows) == without_timing(reference.rows)


def test_a_blow_up_names_the_sae(tmp_path, tiny_config):
    config = tiny_config(saes=[{"variant": "topk", "m": 32, "k": 4},
                               {"variant": "relu_l1", "label": "wild", "m": 32, "l1_coefficient": 3e-3}])
    config = config.with_overrides({"train.lr": 1e30})
    with pytest.raises(FloatingPointError, match=r"SAE 'topk' \(topk\): training stopped at step"):
        run_experiment(config, tmp_path / "x", progress=False)
    labelled = tiny_config(saes=[{"variant": "relu_l1", "label": "wild", "m": 32, "l1_coefficient": 3e-3}])
    with pytest.raises(FloatingPointError, match=r"SAE 'wild' \(relu_l1\)"):
        run_experiment(labelled.with_overrides({"train.lr": 1e30}), tmp_path / "y", progress=False)


def test_train_seconds_count_every_segment_of_a_resumed_run(tmp_path, tiny_config, monkeypatch):
    import time

    config = tiny_config(saes=[{"variant": "relu_l1", "m": 32, "l1_coefficient": 3e-3}])
    real_train = train_module.train

    def slow_then_killed(sae, world, n_samples, batch_size, **kwargs):
        time.sleep(1.5)  # a slow first segment, saved by the checkpoint at the half
        real_train(sae, world, n_samples // 2, batch_size, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", slow_then_killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "k", progress=False)
    monkeypatch.setattr(train_module, "train", real_train)
    t0 = time.perf_counter()
    resumed = run_experiment(config, tmp_path / "k", progress=False)
    second_segment = time.perf_counter() - t0
    assert resumed.rows[0]["train_seconds"] >= 1.5
    assert second_segment < 1.5 or resumed.rows[0]["train_seconds"] > second_segment  # not just this segment
