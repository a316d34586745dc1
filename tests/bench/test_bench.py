"""The bench end to end on the micro tier (tiny worlds, a few steps): a registered variant and a
user's SAE file, the reference rows, resume and skip, the folder rule, the report's content, the
conformance errors and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import synthsae
from synthsae.bench import saes as S
from synthsae.bench.runner import plan
from synthsae.errors import ConfigError

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny_sae.py'}:TinySAE"
TASKS = ["recovery", "absorption", "stability", "synthsaebench"]


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "micro"
    board = synthsae.bench(tier="micro", saes=["topk", TINY], seeds=2, out=out, tasks=TASKS)
    return out, board


def test_every_task_sae_reference_and_seed_has_a_row(board_dir):
    out, board = board_dir
    rows = json.loads((out / "results.json").read_text())["rows"]
    for task in TASKS:
        names = {r["sae"] for r in rows if r["task"] == task}
        assert {"topk", "tiny_sae:TinySAE", "ceiling", "random"} <= names, (task, names)
        for sae in ("topk", "tiny_sae:TinySAE"):
            assert sorted(r["seed"] for r in rows if r["task"] == task and r["sae"] == sae) == [0, 1]
    probe = [r for r in rows if r["sae"] == "probe" and r["task"] == "recovery"]
    assert probe and all(0 < r["f1"] <= 1 for r in probe)
    ceiling = [r for r in rows if r["sae"] == "ceiling" and r["task"] == "recovery"]
    assert all(r["mcc"] > 0.999 for r in ceiling)  # the true dictionary matches itself
    # stability's cross-seed metric reached the rows of trained SAEs
    assert all(r["reappearance"] is not None for r in rows if r["task"] == "stability" and r["kind"] == "sae")


def test_user_sae_trained_at_matched_l0(board_dir):
    out, _ = board_dir
    cell = next((out / "cells").glob("recovery__k2__tiny_sae-TinySAE-*__s0"))
    record = json.loads((cell / "cell.json").read_text())
    assert record["status"] == "ok" and record["data"]["matched_by"] == "target_l0"
    assert record["data"]["convergence"]["target_l0"] == 2.0


def test_report_content(board_dir):
    out, board = board_dir
    text = (out / "report.md").read_text()
    for needle in ("## Headline", "Convergence (", "*ceiling*", "*probe*", "*random*", "± ", "converged",
                   "Published SynthSAEBench orderings", "tiny_sae:TinySAE", "figures/recovery-k2.png", "command:", "Matched L0"):
        assert needle in text, needle
    for task in TASKS:
        assert synthsae.bench.TASKS.get(task).title in text
    assert (out / "figures" / "recovery-k2.png").is_file()
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.startswith("task,k,sae,seed,kind")
    assert board.rankings["recovery"][2]["mcc"]  # tiers exist for the headline


def test_rerun_skips_finished_cells_and_resumes_a_lost_one(board_dir, tmp_path):
    out, board = board_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lost = next((copy / "cells").glob("recovery__k2__topk__s1"))
    (lost / "cell.json").unlink()  # as if killed before this cell finished
    stamps = {p: p.stat().st_mtime_ns for p in (copy / "cells").glob("*/cell.json")}
    again = synthsae.bench(tier="micro", saes=["topk", TINY], seeds=2, out=copy, tasks=TASKS)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished cells were not rerun
    assert (lost / "cell.json").is_file()
    key = lambda r: (r["task"], r["sae"], r["seed"])  # noqa: E731
    a = {key(r): r.get("mcc") for r in board.rows}
    b = {key(r): r.get("mcc") for r in again.rows}
    assert a == b  # the resumed cell gives the same numbers (same seed, same data)


def test_another_experiments_folder_is_refused(board_dir):
    out, _ = board_dir
    with pytest.raises(ValueError, match="different experiment"):
        synthsae.bench(tier="micro", saes=["topk"], seeds=2, out=out, tasks=["recovery"])


@pytest.mark.parametrize("cls, message", [
    ("NoSparsity", "cannot be compared at matched L0"),
    ("NoEncode", "does not implement encode"),
    ("NotAnSAE", "not a subclass of synthsae.sae.SAE"),
    ("Missing", "defines no 'Missing'"),
])
def test_conformance_errors_name_what_is_missing(cls, message):
    with pytest.raises(ConfigError, match=message):
        S.resolve(f"{DATA / 'tiny_sae.py'}:{cls}")


def test_spec_errors():
    with pytest.raises(ConfigError, match="Did you mean 'topk'"):
        S.resolve("topkk")
    with pytest.raises(ConfigError, match="does not exist"):
        S.resolve("no/such/file.py:X")
    with pytest.raises(ConfigError, match="importing module"):
        S.resolve("no_such_package.module:X")


def test_module_spec_and_matching_rule():
    spec = S.resolve("synthsae.sae.topk:TopKSAE")  # a module:Class spec of a registered class
    assert spec.how == "k"
    sae, kwargs = spec.build(8, 16, 3, 0)
    assert sae.config.k == 3 and kwargs == {}
    relu = S.resolve("relu_l1")
    sae, kwargs = relu.build(8, 16, 3, 0)
    assert relu.how == "target_l0" and kwargs == {"target_l0": 3.0}


def test_plan_has_reference_rows_and_user_file_hash():
    specs = [S.resolve("topk"), S.resolve(TINY)]
    cells = plan("micro", specs, [0, 1, 2], ["recovery"])
    ids = [c["id"] for c in cells]
    assert len(ids) == len(set(ids)) == 2 * 3 + 3 * 3
    assert any(i.startswith("recovery__k2__tiny_sae-TinySAE-") for i in ids)


def test_cli_bench_bad_sae_exits_2(tmp_path, capsys):
    from synthsae.cli import main

    assert main(["bench", "--tier", "micro", "--sae", "nonexistent_variant", "--out", str(tmp_path / "o")]) == 2
    assert "unknown SAE variant" in capsys.readouterr().err


def test_cli_bench_from_toml(tmp_path, capsys):
    from synthsae.cli import main

    cfg = tmp_path / "bench.toml"
    out = tmp_path / "o"
    cfg.write_text(f'[bench]\ntier = "micro"\nsaes = ["topk", "{TINY}"]\nseeds = 2\ntasks = ["recovery"]\n'
                   f'out = "{out}"\n')
    assert main(["bench", "--config", str(cfg), "--quiet"]) == 0
    assert "Report:" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "tiny_sae:TinySAE" in text and "*probe*" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('[bench]\nsae = ["topk"]\n')
    assert main(["bench", "--config", str(bad)]) == 2
    assert "unknown key(s) ['sae']" in capsys.readouterr().err
