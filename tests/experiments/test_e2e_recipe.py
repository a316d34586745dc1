"""The `e2e_finetune` recipe as a grid on the experiment engine: it runs (serial and local executors)
and writes a report with a verdict; a rerun reuses finished cells and a lost cell is redone with the
same numbers; an undertrained base SAE makes its checks inconclusive; the checks against their
criteria hold, fail (saying what was found instead) or stay inconclusive as documented, from planted
rows.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from synthsae.experiments.cells import Task, execute, pack
from synthsae.experiments.engine import run_recipe
from synthsae.experiments.recipes import RECIPES
from synthsae.experiments.recipes.base import VERDICTS, Cell, CellResult
from synthsae.experiments.recipes._common import threshold_check
from synthsae.experiments.recipes.e2e_finetune import ARMS, KEYS, E2EConfig, _cells, _conclude

RECIPE = RECIPES.get("e2e_finetune")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    result, report = run_recipe(RECIPE, E2EConfig.small(), out)
    return out, result, report


def _records(out):
    return {p.parent.name: p.read_bytes() for p in sorted((out / "cells").glob("*/cell.json"))}


def _rows(records):
    return {k: json.loads(v)["row"] for k, v in records.items()}


# ---- the grid ----------------------------------------------------------------------------------
def test_the_grid_is_a_base_cell_per_seed_and_two_finetunes_that_need_it():
    assert RECIPE.cells is not None and RECIPE.conclude is not None  # a grid on the engine, not one function
    cfg = E2EConfig()
    assert len(cfg.seeds) >= 3 and len(E2EConfig.small().seeds) >= 2
    cells = {c.id: c for c in _cells(cfg)}
    assert len(cells) == 3 * len(cfg.seeds)
    for s in cfg.seeds:
        assert cells[f"base-seed{s}"].needs == ()
        for arm in ARMS[1:]:
            assert cells[f"{arm}-seed{s}"].needs == (f"base-seed{s}",)
    assert cells["mse_continued-seed0"].params["kl_coefficient"] == 0.0
    assert cells["kl_finetuned-seed0"].params["kl_coefficient"] == cfg.kl_coefficient


@pytest.mark.parametrize("changes, word", [({"seeds": (0, 0)}, "seeds"), ({"seeds": ()}, "seeds"),
                                           ({"seeds": (-1,)}, "seeds"), ({"world": "nowhere"}, "world")])
def test_bad_seeds_and_worlds_are_rejected(changes, word):
    with pytest.raises(ValueError, match=word):
        E2EConfig.from_dict({**E2EConfig.small().to_dict(), **changes})


# ---- on the engine -------------------------------------------------------------------------------
def test_small_runs_on_the_engine_and_writes_a_report_with_a_verdict(small_run):
    out, result, report = small_run
    assert report == out / "report.md" and result.held in VERDICTS
    text = report.read_text()
    assert "## Verdict" in text and "## Run" in text and "### convergence" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["verdict"] == result.held
    assert set(_records(out)) == {c.id for c in _cells(E2EConfig.small())}
    assert all(json.loads(v)["status"] == "ok" for v in _records(out).values())
    for arm in ARMS:  # mean over seeds, with its interval
        assert math.isfinite(result.metrics[f"{arm}.downstream.kl"])
        assert math.isfinite(result.metrics[f"{arm}.downstream.kl.ci95"])
    # the KL arm is trained against the readout it is evaluated with: it beats the control on KL
    assert result.metrics["kl_finetuned.downstream.kl"] < result.metrics["mse_continued.downstream.kl"]
    assert (out / "finetune_kl.png").is_file() and (out / "downstream_kl.png").is_file()


def test_a_rerun_reuses_finished_cells_and_redoes_a_lost_one_identically(small_run, tmp_path):
    out, first, _ = small_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    before = _records(copy)
    again, _ = run_recipe(RECIPE, E2EConfig.small(), copy)
    assert _records(copy) == before, "finished cells are not run again"
    assert again.metrics == first.metrics and again.held == first.held
    # a fine-tune cell lost (as if killed before it finished): only it runs again, to the same numbers
    shutil.rmtree(copy / "cells" / "kl_finetuned-seed1")
    again, _ = run_recipe(RECIPE, E2EConfig.small(), copy)
    assert _records(copy).keys() == before.keys()
    assert _rows(_records(copy)) == _rows(before)
    assert again.metrics == first.metrics and again.held == first.held
    # killed after its last checkpoint, before its record: it resumes from the checkpoint (with the KL trace)
    assert (copy / "cells" / "kl_finetuned-seed0" / "finetune" / "checkpoint").is_dir()
    (copy / "cells" / "kl_finetuned-seed0" / "cell.json").unlink()
    again, _ = run_recipe(RECIPE, E2EConfig.small(), copy)
    assert _rows(_records(copy)) == _rows(before)
    assert json.loads(_records(copy)["kl_finetuned-seed0"])["data"] == json.loads(before["kl_finetuned-seed0"])["data"]
    assert again.metrics == first.metrics and again.held == first.held


def test_a_30_step_base_sae_makes_every_check_inconclusive(tmp_path):
    cfg = E2EConfig.small().replace(n_samples=30 * 256)
    result, _ = run_recipe(RECIPE, cfg, tmp_path / "run")
    assert result.held == "inconclusive"
    assert result.checks and all(c.outcome is None for c in result.checks)
    for c in result.checks:
        assert "base-seed0" in c.evidence and ("not converged" in c.evidence or "collapsed" in c.evidence)
        assert "n_samples" in c.evidence  # a budget is suggested


@pytest.mark.slow
def test_the_local_executor_gives_the_serial_rows(small_run, tmp_path):
    out, first, _ = small_run
    result, _ = run_recipe(RECIPE, E2EConfig.small(), tmp_path / "run", executor="local", n_workers=2)
    assert _rows(_records(tmp_path / "run")) == _rows(_records(out))
    assert result.metrics == first.metrics and result.held == first.held


def test_a_finetune_cell_runs_in_a_scratch_folder_as_on_a_ray_worker(small_run, tmp_path):
    """A Ray worker does not see the driver's folder: the base cell's files travel as bytes."""
    out, _, _ = small_run
    cfg = E2EConfig.small()
    cell = next(c for c in _cells(cfg) if c.id == "kl_finetuned-seed0")
    base = out / "cells" / "base-seed0"
    task = Task(cell.id, "recipe", {"recipe": RECIPE.name, "config": cfg.to_dict(), "cell": cell.to_dict()},
                str(tmp_path / "driver" / cell.id), None, {"base-seed0": str(base)})
    record = execute(task, scratch=tmp_path / "worker", input_files={"base-seed0": pack(base)})
    assert not (tmp_path / "driver").exists()
    reference = json.loads(_records(out)[cell.id])
    assert record["status"] == "ok" and record["row"] == reference["row"] and record["data"] == reference["data"]
    assert not any("checkpoint" in f for f in record["files"])  # resume state stays on the worker


# ---- the checks, from planted rows ---------------------------------------------------------------
def _planted(kl: dict[str, list[float]], ev: dict[str, list[float]], converged: bool = True) -> list[CellResult]:
    cfg = E2EConfig()
    out = []
    for cell in _cells(cfg):
        arm, i = cell.params["arm"], cfg.seeds.index(cell.params["seed"])
        row = {k: 0.5 for k in KEYS}
        row.update({"downstream.kl": kl[arm][i], "reconstruction.explained_variance": ev[arm][i]})
        if arm == "base":
            row.update({"converged": converged, "collapsed": False, "probe_ev": ev[arm][i], "probe_l0": 12.0,
                        "ev_change": 0.001 if converged else 0.2, "recovery_change": 0.001, "steps": 1000})
        out.append(CellResult(cell, row, {"kl_trace": [1.0, 0.9, 0.8]} if arm == "kl_finetuned" else None))
    return out


BASE = {"base": [1.0, 1.1, 0.9], "mse_continued": [0.95, 1.05, 0.85]}
EV = {"base": [0.80, 0.81, 0.79], "mse_continued": [0.82, 0.83, 0.81]}


def test_a_clear_kl_gain_at_a_small_ev_cost_held():
    result = _conclude(E2EConfig(), _planted({**BASE, "kl_finetuned": [0.5, 0.56, 0.44]},
                                             {**EV, "kl_finetuned": [0.815, 0.824, 0.806]}))
    assert [c.outcome for c in result.checks] == [True, True] and result.held == "held"
    assert result.metrics["kl_finetuned.kl_below_control_share"] == pytest.approx(1 - 0.5 / 0.95, abs=0.01)


def test_no_kl_gain_and_a_large_ev_cost_did_not_hold_and_say_what_was_found():
    result = _conclude(E2EConfig(), _planted({**BASE, "kl_finetuned": [1.0, 1.12, 0.88]},
                                             {**EV, "kl_finetuned": [0.70, 0.72, 0.71]}))
    assert [c.outcome for c in result.checks] == [False, False] and result.held == "did not hold"
    assert "raises the downstream KL" in result.checks[0].finding
    assert "costs more than 0.02" in result.checks[1].finding


def test_a_gain_within_noise_of_the_criterion_is_inconclusive():
    result = _conclude(E2EConfig(), _planted({**BASE, "kl_finetuned": [0.95 * 0.8, 1.05 * 0.99, 0.85 * 0.92]},
                                             {**EV, "kl_finetuned": [0.815, 0.824, 0.806]}))
    assert result.checks[0].outcome is None and result.held == "inconclusive"


def test_an_unconverged_base_sae_withdraws_a_decisive_outcome():
    result = _conclude(E2EConfig(), _planted({**BASE, "kl_finetuned": [0.5, 0.56, 0.44]},
                                             {**EV, "kl_finetuned": [0.815, 0.824, 0.806]}, converged=False))
    assert all(c.outcome is None for c in result.checks) and result.held == "inconclusive"
    assert all("would have been: held" in c.evidence for c in result.checks)


def test_threshold_check_needs_two_seeds_and_reports_the_opposite_side():
    assert threshold_check("s", [0.5], 0.1, expect=1, quantity="q", opposite="o").outcome is None
    low = threshold_check("s", [0.01, 0.02, 0.015], 0.1, expect=1, quantity="q", opposite="below it")
    assert low.outcome is False and low.finding.startswith("below it")
    assert threshold_check("s", [0.01, 0.02, 0.015], 0.1, expect=-1, quantity="q", opposite="o").outcome is True
