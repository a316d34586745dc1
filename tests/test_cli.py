"""The `synthsae` command line end to end on tiny sizes: demo, run (config and recipe), sweep,
evaluate, world, recipes, and user errors (exit 2, `synthsae: error: ...`, no traceback)."""

import dataclasses
import json
from pathlib import Path

import pytest

from synthsae.cli import main
from synthsae.config import Config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_TRAIN = ["--set", "train.n_samples=2048", "--set", "train.batch_size=512", "--set", "train.lr_decay_steps=0",
              "--set", "eval.n=1024", "--set", "plots=false", "--quiet"]


@pytest.mark.slow
def test_demo_small_prints_the_comparison_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--samples", "2048", "--eval-samples", "1024", "--variants", "topk,aen",
               "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "World: m = 128 features in d = 32" in text
    header = next(line for line in text.splitlines() if line.startswith("SAE"))
    for column in ("EV", "L0", "MCC", "recovered@0.9", "dead", "shrinkage", "absorption"):
        assert column in header
    assert any(line.startswith("topk ") for line in text.splitlines())
    assert (out / "report.md").is_file() and (out / "comparison.png").is_file()
    assert (out / "saes" / "aen" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_run_config_then_evaluate_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(CONFIGS / "topk_vs_relu.toml"), "--out", str(out), "--set", "sae[0].m=32",
                 "--set", "sae[1].m=32", *TINY_TRAIN]) == 0
    text = capsys.readouterr().out
    assert "topk" in text and "relu_l1" in text and "report.md" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["n_samples"] == 2048 and saved["sae"][0]["m"] == 32
    assert main(["evaluate", str(out / "saes" / "topk"), "--world", str(out), "--n", "1000"]) == 0
    assert "synthsae evaluation: SAE with 32 latents" in capsys.readouterr().out
    assert main(["evaluate", str(out / "saes" / "topk"), "--world", "toy", "--n", "1000",
                 "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "metrics.json").is_file()


@dataclasses.dataclass(frozen=True)
class FakeRecipeConfig(Config):
    size: int = 1000

    @classmethod
    def small(cls):
        return cls(size=3)


def test_run_recipe_with_small_and_set(tmp_path, capsys, monkeypatch):
    from synthsae.experiments.recipes import RECIPES, RecipeResult, register_recipe

    seen = []

    def run(config, out_dir, device, progress):
        seen.append((config, out_dir, device.type, progress))
        return RecipeResult(recipe="fake", config=config, claim="Fake claim (test).", measured="size", held=True,
                            metrics={"size": float(config.size)})

    monkeypatch.setattr(RECIPES, "_items", dict(RECIPES._items))  # registration is undone after the test
    register_recipe("fake", FakeRecipeConfig, "a fake recipe for the CLI test")(run)
    assert main(["run", "fake", "--small", "--set", "size=5", "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert seen == [(FakeRecipeConfig(size=5), tmp_path / "f", "cpu", False)]
    assert "verdict: held" in capsys.readouterr().out
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["metrics"]["size"] == 5.0
    assert main(["recipes"]) == 0 and "fake" in capsys.readouterr().out
    (tmp_path / "r.toml").write_text('recipe = "fake"\nsize = 7\n')
    assert main(["run", str(tmp_path / "r.toml"), "--out", str(tmp_path / "g")]) == 0
    assert seen[-1][0] == FakeRecipeConfig(size=7)
    assert main(["run", "fake", "--small", "--print-config"]) == 0
    assert 'recipe = "fake"' in capsys.readouterr().out


@pytest.mark.slow
def test_sweep_from_the_example_config(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", str(CONFIGS / "sweep_l1.toml"), "--out", str(out), "--executor", "serial",
            "--set", "sae.m=16", "--set", "sweep.seeds=[0]",
            "--set", 'sweep.grid={"sae.variant" = ["relu_l1", "aen"], "sae.l1_coefficient" = [1e-3]}', *TINY_TRAIN]
    assert main(args) == 0
    assert "2 trials: 2 ok, 0 failed" in capsys.readouterr().out
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("trial,sae.variant,sae.l1_coefficient,seed,status")
    assert main(args) == 0  # resume: nothing left to do, same table
    assert (out / "results.csv").read_text().splitlines() == rows


def test_world_save_and_bad_seed(tmp_path, capsys):
    assert main(["world", "hierarchy", "--save", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "world.safetensors").is_file()
    assert main(["world", "toy", "--seed", "-1"]) == 2
    assert "world.seed" in capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", [
    (["run", "nosuchrecipe"], "unknown recipe 'nosuchrecipe'"),
    (["run", "missing.toml"], "missing.toml does not exist"),
    (["run", str(CONFIGS / "topk_vs_relu.toml"), "--set", "train.lrr=1"], "unknown key 'lrr'. Did you mean 'lr'"),
    (["run", str(CONFIGS / "topk_vs_relu.toml"), "--set", "sae.k=3"], "sae[i].X"),
    (["run", str(CONFIGS / "topk_vs_relu.toml"), "--set", "oops"], "expected key=value"),
    (["run", str(CONFIGS / "topk_vs_relu.toml"), "--device", "cuda:7"], "CUDA is not available"),
    (["run", str(CONFIGS / "sweep_l1.toml")], "synthsae sweep"),
    (["sweep", str(CONFIGS / "topk_vs_relu.toml")], "needs a [sweep] table"),
    (["sweep", str(CONFIGS / "sweep_l1.toml"), "--set", "sae.l1_coefficient=-1"], "l1_coefficient = -1"),
    (["sweep", str(CONFIGS / "sweep_l1.toml"), "--address", "auto"], "--address is an option of the ray executor"),
    (["demo", "--variants", "topk,nope"], "--variants = 'nope' is invalid"),
    (["demo", "--samples", "10"], "--samples = 10 is invalid"),
    (["evaluate", "nowhere", "--world", "toy"], "nowhere holds no saved SAE"),
    (["demo", "--threads", "0"], "--threads 0 is invalid"),
])
def test_user_errors_exit_2_without_traceback(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthsae: error: ") and expected in err and "Traceback" not in err


def test_help_has_examples(capsys):
    for command in ([], ["demo"], ["run"], ["sweep"], ["evaluate"]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--help"])
        assert exit_.value.code == 0
        assert "example" in capsys.readouterr().out


def test_threads_option_sets_torch_threads(monkeypatch, capsys):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert main(["run", "nosuchrecipe", "--threads", "3"]) == 2  # threads are set before the work starts
    assert calls == [3]
