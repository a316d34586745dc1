"""Tests of the recipes `aen_spiked` and `composition` (issue 17, item 8): each runs on the engine and
writes a report with a verdict; a 30-step SAE makes every check inconclusive (convergence guard);
AEN's arm switches its adaptive weights on; planted per-seed numbers drive each check to held and
to the opposite direction; the support F1 and the exact-code reference behave as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthsae.experiments.engine import run_recipe
from synthsae.experiments.recipes import RECIPES
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes import aen_spiked as A
from synthsae.experiments.recipes import composition as P
from synthsae.experiments.recipes.base import HELD, INCONCLUSIVE, NOT_HELD, VERDICTS, CellResult
from synthsae.metrics import LinearSAE
from synthsae.metrics.steering import steering_fidelity
from synthsae.world import World, WorldConfig
from synthsae.world.firing import Constant, ExactlyK
from synthsae.world.geometry import Orthonormal
from synthsae.world.hierarchy import HierarchyConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(name):
    """The recipe's small() config cut to 30 training steps (and fewer cells for aen_spiked)."""
    cfg = RECIPES.get(name).config_class.small()
    if name == "aen_spiked":
        return cfg.replace(n_samples=30 * cfg.batch_size, rhos=(0.5,))
    return cfg.replace(n_samples=30 * cfg.batch_size)


# ---- end to end on the engine; the guard on 30-step SAEs ------------------------------------------
@pytest.mark.parametrize("name", ["aen_spiked", "composition"])
def test_recipe_runs_on_the_engine_and_30_step_saes_make_every_check_inconclusive(name, tmp_path):
    cfg = _tiny(name)
    result, report = run_recipe(RECIPES.get(name), cfg, tmp_path, "cpu")
    text = report.read_text()
    assert "## Verdict" in text and "## Run" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["verdict"] in VERDICTS
    main = [c for c in result.checks if not c.sub_claim]
    assert main, "a verdict must come from stated checks"
    # 30 steps cannot converge: every check names the unusable SAEs and suggests a budget
    assert all(c.outcome is None for c in result.checks)
    assert all("not usable" in c.evidence and "Suggested budget" in c.evidence for c in result.checks)
    assert result.held == INCONCLUSIVE
    assert "Inconclusive at this scale" in text
    trained = [c.id for c in RECIPES.get(name).cells(cfg) if not c.id.startswith("exact-")]
    assert sorted(r["sae"] for r in result.tables["convergence"]) == sorted(trained)


# ---- AEN conformance ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["default", "small"])
def test_aen_arm_switches_its_adaptive_weights_on(scale):
    cfg = A.AENSpikedConfig() if scale == "default" else A.AENSpikedConfig.small()
    arms = C.aen_arms_of(RECIPES.get("aen_spiked"), cfg)
    assert len(arms) == len(cfg.rhos)
    for label, hyper, n_steps in arms:
        assert C.aen_switches_on(hyper, n_steps), f"{label} never switches on in {n_steps} steps"
    # the bug of issue 17: the AEN default warmup (10,000 steps) would not switch on in this run
    assert not C.aen_switches_on({"warmup_steps": 10_000, "ramp_steps": 2_000}, cfg.n_steps)


# ---- planted per-seed numbers: held, and the opposite direction -------------------------------------
def _ok_row(**values):
    return {"converged": True, "collapsed": False, "probe_ev": 0.9, "probe_l0": 4.0, "ev_change": 0.001,
            "recovery_change": 0.001, "steps": 1000, **values}


def _aen_results(cfg, aen, relu, topk, converged=True):
    out = []
    for cell in A._cells(cfg):
        p = cell.params
        base = {"aen": aen, "relu_l1": relu, "topk": topk}[p["variant"]]
        row = _ok_row(**{k: v[cfg.seeds.index(p["seed"])] for k, v in base.items()},
                      explained_variance=0.9, l0=4.0, mcc=0.9, lipschitz_max=3.0, lipschitz_near_max=2.0,
                      dead_window_fraction=0.0)
        if not converged:
            row["converged"] = False
        out.append(CellResult(cell, row))
    return out


def test_aen_spiked_reports_the_opposite_direction_on_a_planted_case():
    cfg = A.AENSpikedConfig.small().replace(seeds=(0, 1, 2), rhos=(0.3,))
    aen = {"never_fired_fraction": [0.10, 0.12, 0.11], "support_f1": [0.80, 0.82, 0.81],
           "lipschitz_median": [1.0, 1.1, 1.05]}
    relu = {"never_fired_fraction": [0.0, 0.01, 0.0], "support_f1": [0.60, 0.61, 0.62],
            "lipschitz_median": [2.0, 2.1, 2.05]}
    topk = {"never_fired_fraction": [0.0, 0.0, 0.0], "support_f1": [0.9, 0.91, 0.92], "lipschitz_median": [3, 3, 3]}
    result = A._conclude(cfg, _aen_results(cfg, aen, relu, topk))
    main = {c.statement.split(" in ")[-1]: c for c in result.checks if not c.sub_claim}
    assert main["median local Lipschitz constant of the encoder"].outcome is True
    assert main["per-sample support F1 through the matching"].outcome is True
    starve = main["share of latents never firing on fresh samples"]
    assert starve.outcome is False and starve.finding.startswith("AEN increases starvation")
    assert result.held == "mixed"
    assert "AEN increases starvation" in result.markdown()
    assert result.tables["where"] == [{"rho": 0.3, "Lipschitz": HELD, "support recovery": HELD, "starvation": NOT_HELD}]
    sub = [c for c in result.checks if c.sub_claim]
    assert sub[0].outcome is False and "worse than TopK" in sub[0].finding
    # the same numbers from SAEs that did not converge: nothing is decided
    guarded = A._conclude(cfg, _aen_results(cfg, aen, relu, topk, converged=False))
    assert all(c.outcome is None for c in guarded.checks) and guarded.held == INCONCLUSIVE


def _composition_results(cfg, excess):
    """Rows with exact-code leakage 0.1 and SAE leakage 0.1 + excess(depth, seed)."""
    out = []
    for cell in P._cells(cfg):
        p = cell.params
        if p["variant"] == "exact":
            row = {"k": 3, "on_target": 1.0, "off_target": 0.0, "leakage": 0.1}
        else:
            row = _ok_row(k=3, on_target=0.8, off_target=0.3, leakage=0.1 + excess(p["depth"], p["seed"]),
                          explained_variance=0.9, l0=3.0, mcc=0.9)
        out.append(CellResult(cell, row))
    return out


@pytest.mark.parametrize("shape, trend, curvature", [
    (lambda d, s: 0.05 * d * d + 0.001 * s, True, True),              # convex rise: the claim
    (lambda d, s: 0.3 - 0.05 * d + 0.002 * s * d, False, None),         # falls linearly: opposite trend
    (lambda d, s: 0.4 * np.sqrt(d) + 0.001 * s * d, True, False),       # concave rise: opposite curvature
])
def test_composition_trend_and_curvature_checks_can_each_conclude_either_way(shape, trend, curvature):
    cfg = P.CompositionConfig.small().replace(seeds=(0, 1, 2), variants=("topk",), depths=(1, 2, 3, 4))
    result = P._conclude(cfg, _composition_results(cfg, shape))
    leak, slope, curv = result.checks
    assert leak.outcome is True  # every planted SAE leaks more than the exact code (excess > 0 at every depth)
    assert slope.outcome is trend and curv.outcome is curvature
    if trend is False:
        assert "falls with depth" in slope.finding and "falls with depth" in result.markdown()
    if curvature is False:
        assert "concave" in curv.finding


def test_composition_leakage_check_reports_the_opposite():
    cfg = P.CompositionConfig.small().replace(seeds=(0, 1, 2), variants=("relu_l1",))
    result = P._conclude(cfg, _composition_results(cfg, lambda d, s: -0.05 - 0.001 * s))  # leaks less than exact
    leak = result.checks[0]
    assert leak.outcome is False and "leaks less than the exact code" in leak.finding


# ---- the measurements themselves --------------------------------------------------------------------
def _orthonormal_world(hierarchy=None, firing=None):
    return World(WorldConfig(d=16, m=16, dictionary=Orthonormal(), firing=firing or Constant(p=0.3),
                             hierarchy=hierarchy))


def test_support_f1_is_one_for_the_true_code_map_in_any_latent_order_and_zero_for_a_silent_sae():
    world = _orthonormal_world(firing=ExactlyK(k=3))  # every sample has a true support
    D = world.dictionary
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    exact = LinearSAE(W_enc=D[perm].T, W_dec=D[perm], threshold=1e-4)
    assert A.support_f1(exact, world, 256, seed=1) == pytest.approx(1.0)
    silent = LinearSAE(W_enc=D.T, W_dec=D, b_enc=-100 * torch.ones(16))
    assert A.support_f1(silent, world, 256, seed=1) == 0.0
    # firing every latent: precision 3/16, recall 1 -> F1 = 2 * 3 / (16 + 3)
    loud = LinearSAE(W_enc=torch.zeros(16, 16), W_dec=D, b_enc=torch.ones(16))
    assert A.support_f1(loud, world, 256, seed=1) == pytest.approx(6 / 19)


def test_exact_code_map_on_an_orthonormal_dictionary_does_not_leak():
    world = _orthonormal_world(HierarchyConfig(roots=2, branching=2, depth=2))
    ref = P.ExactCodeMap(world.dictionary, l1=0.01)
    ident = np.arange(world.m)
    metrics, _ = steering_fidelity(ref, world, ident, np.ones(world.m), n_features=8, n_samples=16, seed=0)
    assert metrics["steering.off_target"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["steering.leakage"] == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < metrics["steering.on_target"] <= 1.0 + 1e-6
    mask = P.forest_mask(world)
    assert mask[:14].all() and not mask[14:].any()  # 2 trees of 7 nodes, then free features


def test_fit_coefficients_recover_a_planted_quadratic():
    depths = [1, 2, 3, 4]
    slope, c2 = P.fit_coefficients(depths, [0.5 * d * d - d + 2 for d in depths])
    assert c2 == pytest.approx(0.5) and slope == pytest.approx(1.5)


@pytest.mark.parametrize("config_class, changes, word", [
    (A.AENSpikedConfig, {"variants": ["topk"]}, "aen"),
    (A.AENSpikedConfig, {"rhos": [1.0]}, "rho"),
    (A.AENSpikedConfig, {"seeds": [0]}, "seeds"),
    (A.AENSpikedConfig, {"k_active": 200}, "k_active"),
    (P.CompositionConfig, {"depths": [1, 2]}, "depths"),
    (P.CompositionConfig, {"forest_features": 1000}, "forest"),
    (P.CompositionConfig, {"variants": ["aen"]}, "variants"),
])
def test_bad_config_values_raise_a_clear_value_error(config_class, changes, word):
    with pytest.raises(ValueError, match=word):
        config_class.from_dict({**config_class.small().to_dict(), **changes})
