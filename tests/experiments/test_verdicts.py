"""The verdict framework of the recipes (issue 17): four verdict values and their combination rule,
sub-claims kept out of the verdict, directional checks that can conclude the opposite direction,
the convergence guard, matched L0, the AEN schedule, the world from a path, run metadata and
error-bar plots."""

from __future__ import annotations

import json
import math

import pytest
import torch

from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import (HELD, INCONCLUSIVE, MIXED, NOT_HELD, Check, RecipeResult, verdict,
                                               verdict_sentence, verdict_word)
from synthsae.sae import make, train
from synthsae.world import World


pytestmark = pytest.mark.usefixtures("one_thread")


T, F, N = (Check("s", o, "e") for o in (True, False, None))


# ---- verdict values ----------------------------------------------------------------------------
@pytest.mark.parametrize("checks, expected", [
    ([T, T], HELD),
    ([F, F], NOT_HELD),
    ([F, N], NOT_HELD),
    ([T, F], MIXED),
    ([T, F, N], MIXED),
    ([T, N], INCONCLUSIVE),
    ([N, N], INCONCLUSIVE),
    ([], INCONCLUSIVE),
])
def test_verdict_rule(checks, expected):
    assert verdict(checks) == expected


def test_sub_claims_do_not_sink_the_verdict():
    sub_fail = Check("pooling helps", False, "e", sub_claim=True)
    assert verdict([T, sub_fail]) == HELD
    assert verdict([sub_fail]) == INCONCLUSIVE


def test_verdict_sentences_are_grammatical_and_carry_the_finding():
    assert verdict_sentence(INCONCLUSIVE) != "**The claim inconclusive at this scale.**"
    assert "Inconclusive" in verdict_sentence(None)
    found = Check("AEN reduces starvation", False, "e", finding="AEN increases starvation: 0.1 vs 0")
    text = verdict_sentence(verdict([found]), [found])
    assert text.startswith("**The claim did not hold.**") and "AEN increases starvation: 0.1 vs 0" in text
    assert verdict_word(True) == HELD and verdict_word("mixed") == MIXED
    with pytest.raises(ValueError, match="verdict"):
        verdict_word("sort of")


def test_report_separates_sub_claims_and_shows_metadata(tmp_path):
    from synthsae.experiments.recipes.sanity_baselines import SanityConfig

    checks = [Check("main part", True, "numbers"), Check("side part", False, "more numbers", sub_claim=True)]
    result = RecipeResult("sanity_baselines", SanityConfig.small(), "claim", "measured", verdict(checks),
                          checks=checks, metadata={"device": "cpu"})
    result.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "**The claim held.**" in text
    assert text.index("main part") < text.index("### Sub-claims") < text.index("side part")
    assert "## Run" in text and "| device | cpu |" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["verdict"] == HELD and saved["run"] == {"device": "cpu"}
    assert (tmp_path / "recipe.toml").read_text().startswith('recipe = "sanity_baselines"')


# ---- directional checks ----------------------------------------------------------------------------
def _aen_check(aen, relu, noise="inconclusive"):
    return C.directional_check("AEN reduces dead latents", aen, relu, expect=-1, names=("aen", "relu_l1"),
                               quantity="dead fraction", opposite="AEN increases starvation", noise=noise)


def test_directional_check_reports_the_opposite_direction_on_a_planted_case():
    c = _aen_check([0.025, 0.15, 0.09], [0.0, 0.001, 0.0])  # planted: AEN clearly *more* dead
    assert c.outcome is False
    assert c.finding.startswith("AEN increases starvation")
    assert "aen" in c.evidence and "relu_l1" in c.evidence and "SE" in c.evidence
    assert "AEN increases starvation" in verdict_sentence(verdict([c]), [c])


def test_directional_check_holds_in_the_claimed_direction_and_is_inconclusive_within_noise():
    assert _aen_check([0.01, 0.02, 0.015], [0.3, 0.32, 0.31]).outcome is True
    noisy = ([0.1, 0.3, 0.2], [0.15, 0.25, 0.22])
    assert _aen_check(*noisy).outcome is None
    assert _aen_check(*noisy, noise="did not hold").outcome is False
    assert _aen_check([0.1], [0.3]).outcome is None  # one seed: no interval, no call
    assert _aen_check([float("nan")], [0.3]).outcome is None


# ---- convergence guard -------------------------------------------------------------------------------
def test_a_30_step_sae_is_flagged_and_its_checks_become_inconclusive():
    world = World.preset("toy")
    sae = make("relu_l1", d=world.d, m=64, l1_coefficient=0.3, seed=0)
    history = train(sae, world, n_samples=30 * 64, batch_size=64, seed=0, progress=False)
    row = C.convergence_row(history)
    assert set(row) == set(C.CONVERGENCE_KEYS) and row["steps"] == 30 and math.isfinite(row["probe_l0"])
    problem = C.convergence_problem(row)
    assert problem is not None and ("not converged" in problem or "collapsed" in problem)
    checks = [Check("relu part", True, "x", uses=("relu",)), Check("topk part", False, "y", uses=("topk",)),
              Check("all", False, "z", finding="the opposite")]
    guarded = C.guard_convergence(checks, {"relu_l1 seed0": problem, "topk seed0": None}, n_samples=1920)
    assert [c.outcome for c in guarded] == [None, False, None]
    assert "relu_l1 seed0" in guarded[0].evidence and "would have been: held" in guarded[0].evidence
    assert "n_samples = 7680" in guarded[0].evidence
    assert guarded[2].finding == "" and "would have found: the opposite" in guarded[2].evidence
    assert verdict(guarded) == NOT_HELD  # the converged SAE's check still decides


def test_convergence_problem_names_collapse_and_missing_diagnostics():
    assert "collapsed" in C.convergence_problem({"converged": False, "collapsed": True, "probe_ev": -0.03})
    assert C.convergence_problem({}) == "no convergence diagnostic recorded"
    assert C.convergence_problem({"converged": True, "collapsed": False}) is None


# ---- matched L0, AEN schedule ----------------------------------------------------------------------------
def test_matched_l0_targets_coefficient_variants_only():
    assert C.matched_l0("relu_l1", 8) == {"target_l0": 8.0}
    assert C.matched_l0("jumprelu", 8) == {"target_l0": 8.0}
    assert C.matched_l0("topk", 8) == {}
    text = C.matched_l0_text(8, {"relu_l1": [7.9, 8.2, 8.0], "topk": [8.0, 8.0, 8.0]})
    assert "target_l0 = 8" in text and "relu_l1 8.03" in text


@pytest.mark.parametrize("n_steps", [30, 1953, 100_000])
def test_aen_arm_switches_on_at_any_run_length(n_steps):
    hyper = C.aen_arm(n_steps, l1_coefficient=0.1)
    assert C.aen_switches_on(hyper, n_steps)
    assert not C.aen_switches_on({"l1_coefficient": 0.1}, 1953)  # the AEN default warmup of 10,000 steps


# ---- the world from a path ---------------------------------------------------------------------------------
def test_world_from_a_preset_a_toml_and_a_saved_folder(tmp_path):
    from synthsae.experiments.recipes.sanity_baselines import SanityConfig
    from synthsae.world.presets import preset_config

    config = preset_config("toy", seed=3)
    (tmp_path / "w.toml").write_text(config.to_toml())
    World(config).save(tmp_path / "saved")
    assert C.world_config("toy", seed=3) == config
    assert C.world_config(str(tmp_path / "w.toml")) == config
    assert C.world_config(str(tmp_path / "saved")) == config
    SanityConfig.small().replace(world=str(tmp_path / "w.toml"))  # accepted
    with pytest.raises(ValueError, match="neither a world preset nor an existing path"):
        SanityConfig.small().replace(world=str(tmp_path / "missing.toml"))


def test_line_figure_draws_error_bars_and_log_ticks():
    fig = C.line_figure({"a": ([1, 10, 100], [0.1, 0.2, 0.3], [0.01, float("nan"), 0.02])}, "x", "y", "t",
                        logx=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.containers  # errorbar containers
    labels = [t.get_text() for t in ax.xaxis.get_majorticklabels()]
    assert any(lab in ("10", "100") for lab in labels)


# ---- every recipe with the convergence guard, end to end at 30 steps ------------------------------------
GUARDED = ["starvation", "sanity_baselines", "stability", "shrinkage", "amortization", "absorption", "synthsaebench"]
COUNTS_UNCONVERGED = {"starvation", "sanity_baselines", "stability"}  # report metrics["unconverged_saes"]
POOLED = {"stability"}  # trains pooled SAEs beside the per-seed ones


@pytest.mark.slow
@pytest.mark.parametrize("name", GUARDED)
def test_a_30_step_run_is_inconclusive_names_its_saes_and_writes_its_report(name, tmp_path):
    from synthsae.experiments.recipes import RECIPES

    recipe = RECIPES.get(name)
    small = recipe.config_class.small()
    config = small.replace(n_samples=30 * small.batch_size)
    assert len(config.seeds) >= 2 and len(recipe.config_class().seeds) >= 3
    result = recipe.run(config, tmp_path, torch.device("cpu"), False)
    assert result.checks
    for check in result.checks:
        assert check.outcome is None, check
        assert "not usable" in check.evidence and "Suggested budget" in check.evidence, check.evidence
        assert "seed" in check.evidence.split("not usable", 1)[1]  # names the SAEs
    assert result.held == INCONCLUSIVE == verdict(result.checks)
    if name in COUNTS_UNCONVERGED:
        assert result.metrics["unconverged_saes"] > 0
    assert "convergence" in result.tables and all("probe_l0" in r for r in result.tables["convergence"])
    if name not in POOLED:
        assert len(result.tables["convergence"]) % len(config.seeds) == 0  # one row per SAE, every seed
    assert {"wall time (this invocation)", "git commit", "torch version", "device", "reproduce"} <= set(result.metadata)
    result.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "**Inconclusive at this scale: the checks could not judge the claim.**" in text
    assert "± " in text and "95% CI" in text  # numbers come with their interval over seeds
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["verdict"] == "inconclusive"


def _planted(cells, row_of):
    from synthsae.experiments.recipes.base import CellResult

    ok = {"converged": True, "collapsed": False, "probe_ev": 0.9, "probe_l0": 4.0, "ev_change": 0.001,
          "recovery_change": 0.001, "steps": 1000}
    return [CellResult(c, {**ok, **row_of(c.params)[0]}, row_of(c.params)[1]) for c in cells]


def test_starvation_reports_that_aen_increases_starvation_on_a_planted_case():
    from synthsae.experiments.recipes.starvation import StarvationConfig, _cell_list, _conclude

    cfg = StarvationConfig.small().replace(seeds=(0, 1, 2))

    def row_of(p):
        base = {"aen": 0.10, "relu_l1": 0.0, "topk": 0.0}[p["variant"]] if p["arm"] == "matched" else 0.2
        dead = base + 0.01 * p["seed"]
        n_dead = int(round(dead * p["m"]))
        idx = list(range(p["seed"] * 7, p["seed"] * 7 + n_dead))
        return ({"dead_fraction": n_dead / p["m"], "dead_window_fraction": 0.0, "l0": 4.0, "explained_variance": 0.9,
                 "mcc": 0.8}, {"dead": [i % p["m"] for i in idx]})

    result = _conclude(cfg, _planted(_cell_list(cfg), row_of))
    aen = next(c for c in result.checks if c.statement.startswith("AEN") and not c.sub_claim)
    assert aen.outcome is False and aen.finding.startswith("AEN increases starvation")
    assert "AEN increases starvation" in verdict_sentence(result.held, result.checks)
    band = next(c for c in result.checks if c.statement.startswith("l1 death rates") and not c.sub_claim)
    assert band.outcome is True
    assert result.held == MIXED  # death rates held, AEN's claimed reduction did not
    assert "did not change" in result.sections[0][1]


def test_sanity_baselines_separates_mixed_from_did_not_hold():
    from synthsae.experiments.recipes.sanity_baselines import SanityConfig, _cells, _conclude

    cfg = SanityConfig.small().replace(seeds=(0, 1, 2))

    def world(recovery):
        def row_of(p):
            ev = {"topk": 0.8, "frozen_decoder": 0.78, "soft_frozen_decoder": 0.79, "frozen_encoder": 0.77}[p["variant"]]
            ev += 0.002 * p["seed"]
            return ({"reconstruction.explained_variance": ev, "recovery.rate@0.8": recovery, "recovery.rate@0.9":
                     recovery + 0.001 * p["seed"], "recovery.mcc": 0.5, "sparsity.l0": 4.0,
                     "latents.dead_fraction": 0.0, "world_m": 128}, None)
        return row_of

    low = _conclude(cfg, _planted(_cells(cfg), world(0.05)))
    assert low.held == "held"
    high = _conclude(cfg, _planted(_cells(cfg), world(0.75)))  # baselines match, but recovery is high: mixed
    assert high.held == MIXED
