"""Output folders are never overwritten: one rule (`experiments.folders.claim`) for every command; the
whole config (worlds included) is validated before a folder is claimed; a re-gridded sweep keeps its rows."""

import json

import pytest

from synthsae.cli import main
from synthsae.errors import ConfigError
from synthsae.experiments import folders
from synthsae.experiments.run import run_experiment
from synthsae.experiments.sweep import SweepConfig, run_sweep

# a world config that validates as a config but fails when the world is built (2 x 2 matrix, m = 128)
# Valid as a config (128 x 128, unit diagonal, symmetric) but not positive semi-definite, which only
# building the world finds (smallest eigenvalue -62.5): toy worlds have m = 128 features.
BAD_CORRELATION = {"kind": "full", "matrix": [[1.0 if i == j else -0.5 for j in range(128)] for i in range(128)]}


# ---- the rule itself ------------------------------------------------------------------------------
def test_claim_new_same_different_overwrite(tmp_path):
    out = tmp_path / "r"
    folders.claim(out, "experiment", "a", "111")
    assert json.loads((out / folders.MARKER).read_text()) == {"kind": "experiment", "name": "a", "digest": "111"}
    (out / "result.txt").write_text("kept")
    folders.claim(out, "experiment", "a", "111")  # the same experiment: resumes, keeps its files
    assert (out / "result.txt").read_text() == "kept"
    with pytest.raises(ConfigError) as err:
        folders.claim(out, "experiment", "b", "222")
    text = str(err.value)
    assert "different experiment" in text and "'a'" in text and "111" in text
    assert "--out NEW" in text and "--overwrite" in text
    assert (out / "result.txt").read_text() == "kept"
    with pytest.raises(ConfigError, match="the experiment 'a'"):
        folders.claim(out, "sweep", "a", "111")  # same digest, other kind: a sweep never reuses a run's folder
    folders.claim(out, "experiment", "b", "222", overwrite=True)
    assert not (out / "result.txt").exists()
    assert folders.holder(out)["digest"] == "222"


def test_claim_refuses_foreign_folders_even_with_overwrite(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not written by synthsae"):
            folders.claim(foreign, "experiment", "a", "1", overwrite=overwrite)
    assert (foreign / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        folders.claim(tmp_path / "file", "experiment", "a", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    folders.claim(empty, "experiment", "a", "1")  # an empty folder is free


def test_overwrite_never_deletes_the_working_directory(tmp_path, monkeypatch):
    folders.claim(tmp_path / "w", "experiment", "a", "1")
    monkeypatch.chdir(tmp_path / "w")
    with pytest.raises(ConfigError, match="working directory"):
        folders.claim(tmp_path / "w", "experiment", "b", "2", overwrite=True)
    assert (tmp_path / "w" / folders.MARKER).is_file()


# ---- validation comes before the claim ------------------------------------------------------------
def test_a_world_that_fails_when_built_is_rejected_before_the_folder_is_claimed(tmp_path, tiny_config):
    bad = tiny_config(saes=[{"variant": "topk", "m": 32, "k": 4}],
                      world={"preset": "toy", "correlation": BAD_CORRELATION})
    out = tmp_path / "exp"
    with pytest.raises(ValueError, match="correlation"):
        run_experiment(bad, out, progress=False)
    assert not out.exists()
    sweep = SweepConfig(experiment=bad, seeds=(0,), grid=({"sae.k": [2, 4]},))
    with pytest.raises(ValueError, match="correlation"):
        run_sweep(sweep, tmp_path / "sweep", executor="serial", progress=False)
    assert not (tmp_path / "sweep").exists()


def test_print_config_exits_2_on_a_config_whose_world_fails_when_built(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[world]\npreset = "toy"\n[world.correlation]\nkind = "full"\nmatrix = [[1.0, 0.0], [0.0, 1.0]]\n'
                    '[[sae]]\nvariant = "topk"\nk = 4\n')
    assert main(["run", str(path), "--print-config"]) == 2
    assert "correlation" in capsys.readouterr().err
    assert main(["run", "starvation", "--small", "--set", "world=nowhere", "--print-config"]) == 2
    assert main(["run", "starvation", "--small", "--print-config"]) == 0


# ---- commands against each other -----------------------------------------------------------------
@pytest.mark.slow
def test_run_and_sweep_never_overwrite_each_other(tmp_path, tiny_config):
    config = tiny_config(saes=[{"variant": "relu_l1", "m": 32, "l1_coefficient": 3e-3}])
    out = tmp_path / "both"
    run_experiment(config, out, progress=False)
    report = (out / "report.md").read_text()
    sweep = SweepConfig(experiment=config, seeds=(0,), grid=({"sae.l1_coefficient": [1e-3]},))
    with pytest.raises(ValueError, match="the experiment 'tiny'"):
        run_sweep(sweep, out, executor="serial", progress=False)
    assert (out / "report.md").read_text() == report and not (out / "results.csv").exists()

    other = tmp_path / "sweep"
    run_sweep(sweep, other, executor="serial", progress=False)
    with pytest.raises(ValueError, match="the sweep 'tiny'"):
        run_experiment(config, other, progress=False)


@pytest.mark.slow
def test_a_regridded_sweep_keeps_its_earlier_rows_and_a_new_base_is_refused(tmp_path, tiny_config):
    base = tiny_config(saes=[{"variant": "relu_l1", "m": 32, "l1_coefficient": 3e-3}])
    out = tmp_path / "s"
    first = run_sweep(SweepConfig(experiment=base, seeds=(0,), grid=({"sae.l1_coefficient": [1e-3]},)), out,
                      executor="serial", progress=False)
    second = run_sweep(SweepConfig(experiment=base, seeds=(0,), grid=({"train.lr": [1e-2]},)), out,
                       executor="serial", progress=False)
    assert [r["trial"] for r in second.rows] == [first.rows[0]["trial"], second.rows[1]["trial"]]
    assert second.rows[0]["recovery.mcc"] == first.rows[0]["recovery.mcc"]
    assert len((out / "results.csv").read_text().splitlines()) == 3
    # the earlier trial shows the value it used for the newly swept key
    assert second.rows[0]["train.lr"] == 3e-3 and second.rows[1]["sae.l1_coefficient"] == 3e-3
    changed = base.with_overrides({"train.n_samples": 2048})
    with pytest.raises(ValueError, match="different experiment"):
        run_sweep(SweepConfig(experiment=changed, seeds=(0,), grid=({"sae.l1_coefficient": [1e-3]},)), out,
                  executor="serial", progress=False)


@pytest.mark.slow
def test_cli_refuses_another_experiments_folder_and_overwrite_replaces_it(tmp_path, capsys):
    out = tmp_path / "d"
    demo = ["demo", "--out", str(out), "--samples", "1024", "--eval-samples", "1024", "--variants", "topk",
            "--no-plots", "--quiet"]
    assert main(demo) == 0
    capsys.readouterr()
    assert main([*demo[:-2], "--seed", "1", "--no-plots", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different experiment" in err and "--overwrite" in err
    assert main(["world", "toy", "--save", str(out)]) == 2
    assert main(["evaluate", str(out / "saes" / "topk"), "--world", "toy", "--n", "1000", "--out", str(out)]) == 2
    assert main([*demo[:-2], "--seed", "1", "--no-plots", "--quiet", "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    # the same command resumes in its own folder; world --save and evaluate --out claim theirs
    assert main(["world", "toy", "--save", str(tmp_path / "w")]) == 0
    assert main(["world", "toy", "--save", str(tmp_path / "w")]) == 0
    assert main(["world", "toy", "--seed", "3", "--save", str(tmp_path / "w")]) == 2
    ev = ["evaluate", str(out / "saes" / "topk"), "--world", "toy", "--n", "1000", "--out", str(tmp_path / "ev")]
    assert main(ev) == 0 and main(ev) == 0
    assert main([*ev[:-1], str(tmp_path / "w")]) == 2


def test_a_recipe_refuses_a_folder_holding_another_config_before_running_a_cell(tmp_path, capsys):
    out = tmp_path / "r"
    folders.claim(out, "recipe", "starvation", "000000000000")  # starvation with another config
    assert main(["run", "starvation", "--small", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different experiment" in err and "the recipe 'starvation'" in err
    assert not (out / "cells").exists()
