"""The recipes shrinkage, amortization, absorption and synthsaebench (their 30-step convergence guard
is tested with the other recipes' in test_verdicts.py): shrinkage's cells train
its declared AEN arms, directional checks report the opposite direction on planted rows, matched L0
is enforced, the global scale fit isolates shrinkage from splitting, `_common.all_of` combines
checks, bad configs are rejected, and synthsaebench passes `sparse_kernels` to its SAEs."""

from __future__ import annotations

import json
import math

import pytest
import torch

import synthsae.experiments.recipes  # noqa: F401  (registers the recipes)
from synthsae.experiments.recipes import _common as C
from synthsae.experiments.recipes.base import RECIPES, CellResult, verdict, verdict_sentence
from synthsae.experiments.recipes._common import all_of
from synthsae.experiments.recipes.shrinkage import global_scale

MINE = ["shrinkage", "amortization", "absorption", "synthsaebench"]


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- AEN arms (that every AEN arm switches on is tested for all recipes in test_recipes.py) ----------
@pytest.mark.parametrize("scale", ["default", "small"])
def test_the_shrinkage_cells_train_one_declared_aen_arm_per_l0(scale):
    recipe = RECIPES.get("shrinkage")
    config = recipe.config_class() if scale == "default" else recipe.config_class.small()
    arms = C.aen_arms_of(recipe, config)
    assert arms and len(arms) == len(config.l0s)
    assert all(n_steps == config.n_steps for _, _, n_steps in arms)
    # the cells train exactly these hyperparameters
    aen_cells = [c for c in recipe.cells(config) if c.params["variant"] == "aen"]
    assert {json.dumps(c.params["hyperparameters"], sort_keys=True) for c in aen_cells} == {
        json.dumps(h, sort_keys=True) for _, h, _ in arms}


def test_amortization_elastic_net_arm_is_declared_not_an_aen_arm():
    # Its adaptive weights stay off on purpose (its loss must be the exact elastic net it is compared with).
    recipe = RECIPES.get("amortization")
    config = recipe.config_class()
    assert C.aen_arms_of(recipe, config) == []
    enet = [h for label, v, h, _ in config.kinds() if v == "aen"]
    assert enet and not C.aen_switches_on(enet[0], config.n_steps)


# ---- planted rows through each recipe's conclude -----------------------------------------------------
CONVERGED = {"converged": True, "collapsed": False, "probe_ev": 0.9, "probe_l0": 4.0, "ev_change": 0.001,
             "recovery_change": 0.001, "steps": 1000}


def _planted(name, config, row_of):
    recipe = RECIPES.get(name)
    results = [CellResult(c, {**CONVERGED, **row_of(c.params)}) for c in recipe.cells(config)]
    return recipe.conclude(config, results)


def _jitter(seed):
    return 0.002 * (seed - 1)  # a small seed-to-seed spread so the 2-SE rule has a standard error


def test_shrinkage_reports_the_opposite_direction_on_a_planted_case():
    config = RECIPES.get("shrinkage").config_class.small().replace(seeds=(0, 1, 2))

    def row(p):
        shrink = {"relu_l1": 0.02, "topk": 0.30, "aen": 0.01}[p["variant"]] + _jitter(p["seed"])
        return {"sparsity.l0": float(p["l0"]), "reconstruction.explained_variance": 0.8 + _jitter(p["seed"]),
                "recovery.shrinkage_median": 0.5, "recovery.mcc": 0.7, "latents.dead_fraction": 0.0,
                "global_scale": 1 / (1 - shrink), "global_shrinkage": shrink}

    result = _planted("shrinkage", config, row)
    by = {c.statement: c for c in result.checks}
    assert by["relu_l1 shrinks feature magnitudes (global scale fit: its reconstructions are too small)"].outcome is True
    topk = by["topk shrinks less than relu_l1"]
    assert topk.outcome is False and topk.finding.startswith("topk shrinks more than relu_l1")
    assert by["aen shrinks less than relu_l1"].outcome is True
    assert by["topk has a better sparsity-fidelity frontier than relu_l1 (higher EV at matched L0)"].outcome is None
    assert result.held == "mixed"
    assert "topk shrinks more than relu_l1" in verdict_sentence(result.held, result.checks)
    # aen trained 30% below its target L0: not matched, so the checks that use it become inconclusive
    off = _planted("shrinkage", config, lambda p: {**row(p), "sparsity.l0": p["l0"] * (0.7 if p["variant"] == "aen" else 1)})
    by_off = {c.statement: c for c in off.checks}
    assert by_off["aen shrinks less than relu_l1"].outcome is None
    assert "L0 not matched" in by_off["aen shrinks less than relu_l1"].evidence
    assert by_off["topk shrinks less than relu_l1"].outcome is False


def test_amortization_reports_the_opposite_direction_on_a_planted_case():
    config = RECIPES.get("amortization").config_class.small().replace(seeds=(0, 1, 2))

    def row(p):
        gap = {"sae": 0.5 - 0.3 * p["rho"], "lista_T2": 0.1, "elastic_net_sae": 0.2}[p["kind"]] + _jitter(p["seed"])
        return {"coherence": p["rho"], "amortization.relative_objective_gap": gap, "amortization.objective_gap": gap,
                "amortization.support_f1": 0.9, "amortization.code_error": 0.1, "amortization.certified_fraction": 1.0,
                "reconstruction.explained_variance": 0.9, "sparsity.l0": 4.0, "recovery.mcc": 0.8}

    result = _planted("amortization", config, row)
    grows, narrows = result.checks
    assert grows.outcome is False and grows.finding.startswith("the gap shrinks as coherence grows")
    assert narrows.outcome is True
    assert result.held == "mixed"


def test_absorption_reports_the_opposite_direction_and_refuses_unmatched_l0():
    config = RECIPES.get("absorption").config_class.small().replace(seeds=(0, 1, 2), ks=(4, 8))

    def row(p, l0_scale=1.0):
        rate = {"matryoshka": 0.30, "batchtopk": 0.10}[p["variant"]] + _jitter(p["seed"])
        l0 = p["k"] * (l0_scale if p["variant"] == "batchtopk" else 1.0)
        return {"absorption.rate": rate, "absorption.full_rate": rate, "absorption.partial_rate": 0.0,
                "absorption.parent_miss_rate": 0.0, "reconstruction.explained_variance": 0.9, "sparsity.l0": l0,
                "recovery.mcc": 0.8, "recovery.rate@0.8": 0.5}

    result = _planted("absorption", config, row)
    every_k, interpolated = result.checks
    assert every_k.outcome is False and "Matryoshka absorbs more than BatchTopK" in every_k.finding
    assert interpolated.outcome is False and interpolated.finding.startswith("Matryoshka absorbs more")
    # BatchTopK at twice the L0 of Matryoshka: not matched, so the per-k comparison is not made
    unmatched = _planted("absorption", config, lambda p: row(p, 2.0))
    assert unmatched.checks[0].outcome is None and "L0 not matched" in unmatched.checks[0].evidence


def test_synthsaebench_orderings_report_the_opposite_and_require_matched_l0():
    config = RECIPES.get("synthsaebench").config_class.small().replace(seeds=(0, 1, 2))
    f1 = {"matryoshka": 0.9, "batchtopk": 0.7, "jumprelu": 0.5, "relu_l1": 0.8, "matching_pursuit": 0.3}

    def row(p, off=None):
        l0 = p["l0"] * (1.5 if p["variant"] == off else 1.0)
        return {"classification.f1_score": f1[p["variant"]] + _jitter(p["seed"]), "recovery.mcc": 0.7,
                "recovery.uniqueness": 0.9, "recovery.firing_f1": 0.5, "reconstruction.explained_variance": 0.8,
                "sparsity.l0": float(l0), "latents.dead_fraction": 0.0, "absorption.rate": 0.1,
                "world_expected_l0": 5.0}

    result = _planted("synthsaebench", config, row)
    by = {c.statement.split(" (published")[0]: c for c in result.checks}
    flipped = by["batchtopk has a higher F1 than relu_l1 at L0 = 5"]
    assert flipped.outcome is False and flipped.finding.startswith("relu_l1 has a higher F1 than batchtopk")
    assert by["matryoshka has a higher F1 than jumprelu at L0 = 5"].outcome is True
    repro = result.checks[-1]
    assert repro.outcome is None and "cannot confirm the published numbers" in repro.evidence
    assert result.held == "mixed"
    assert {s["variant"] for s in result.tables["summary"]} == set(f1)
    assert {s["table"] for s in result.tables["summary"]} == {25, 20}
    # relu_l1 1.5x off its target L0: every check that uses it becomes inconclusive, the others stay
    off = _planted("synthsaebench", config, lambda p: row(p, "relu_l1"))
    by_off = {c.statement.split(" (published")[0]: c for c in off.checks}
    assert by_off["batchtopk has a higher F1 than relu_l1 at L0 = 5"].outcome is None
    assert "L0 not matched" in by_off["batchtopk has a higher F1 than relu_l1 at L0 = 5"].evidence
    assert by_off["matryoshka has a higher F1 than jumprelu at L0 = 5"].outcome is True


def test_synthsaebench_full_scale_needs_samples_width_and_both_tables():
    cls = RECIPES.get("synthsaebench").config_class
    full = cls()
    assert full.full_scale and full.scale_differences() == []
    assert set(full.architectures) == {"batchtopk", "matryoshka", "jumprelu", "relu_l1", "matching_pursuit"}
    assert full.l0s == (25, 20) and len(full.seeds) >= 3
    assert not full.replace(n_samples=50_000_000).full_scale
    assert not full.replace(m_sae=2048, matryoshka_prefixes=(128, 512, 2048)).full_scale
    assert cls.small().matryoshka_prefixes == ()
    assert not cls.small().full_scale
    cells = RECIPES.get("synthsaebench").cells(full)
    coefficient = [c for c in cells if c.params["variant"] in ("relu_l1", "jumprelu")]
    assert coefficient and all(c.params["train"] == {"target_l0": float(c.params["l0"])} for c in coefficient)
    mp = [c for c in cells if c.params["variant"] == "matching_pursuit"]
    assert all(c.params["hyperparameters"]["k"] == c.params["l0"] for c in mp)


def test_shrinkage_trains_coefficient_arms_at_the_topk_arm_l0():
    recipe = RECIPES.get("shrinkage")
    config = recipe.config_class()
    for c in recipe.cells(config):
        if C.has_sparsity_coefficient(c.params["variant"]):
            assert c.params["train"] == {"target_l0": float(c.params["l0"])} and "k" not in c.params["hyperparameters"]
        else:
            assert c.params["train"] == {} and c.params["hyperparameters"]["k"] == c.params["l0"]


# ---- the global scale fit --------------------------------------------------------------------------
class _Planted:
    """A stand-in SAE: encode splits x over `parts` latents; decode sums them, scaled by `scale`, plus b_dec."""

    def __init__(self, scale, parts=1, b_dec=0.0):
        self.scale, self.parts, self.b_dec = scale, parts, b_dec

    def encode(self, x):
        return torch.cat([x / self.parts] * self.parts, dim=1)

    def decode(self, z):
        d = z.shape[1] // self.parts
        return self.scale * sum(z[:, i * d:(i + 1) * d] for i in range(self.parts)) + self.b_dec


def test_global_scale_sees_shrinkage_but_not_splitting_or_a_bias():
    x = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 3.0
    assert math.isclose(global_scale(_Planted(1.0), x), 1.0, rel_tol=1e-9)
    assert math.isclose(global_scale(_Planted(0.8), x), 1.25, rel_tol=1e-9)  # shrunk by 20%
    assert math.isclose(global_scale(_Planted(1.0, parts=4), x), 1.0, rel_tol=1e-9)  # split, not shrunk
    assert math.isclose(global_scale(_Planted(0.8, b_dec=0.7), x, chunk=300), 1.25, rel_tol=1e-9)


def test_all_of_combines_parts_and_keeps_findings():
    from synthsae.experiments.recipes.base import Check

    t, n = Check("s", True, "a"), Check("s", None, "b")
    f = Check("s", False, "c", finding="the other way")
    assert all_of("x", [("k=4", t), ("k=8", t)]).outcome is True
    assert all_of("x", [("k=4", t), ("k=8", n)]).outcome is None
    both = all_of("x", [("k=4", t), ("k=8", f)])
    assert both.outcome is False and both.finding == "k=8: the other way" and "[k=8] c" in both.evidence


@pytest.mark.slow
def test_topk_at_k16_is_not_read_as_shrunk_but_relu_l1_at_the_same_l0_is():
    # rho (median magnitude ratio) reads TopK k = 16 as strongly "shrunk" (splitting); the global scale does not
    from synthsae.metrics import evaluate
    from synthsae.sae import make, train
    from synthsae.world import World

    world = World.preset("toy")
    x = world.sample(8192, seed=12345).x
    found = {}
    for variant, hyper, kw in (("topk", {"k": 16}, {}), ("relu_l1", {}, {"target_l0": 16.0})):
        sae = make(variant, d=world.d, m=128, seed=0, **hyper)
        train(sae, world, n_samples=800 * 256, batch_size=256, lr=1e-3, seed=0, progress=False, **kw)
        sae.eval()
        rho = evaluate(sae, world, n=8192, seed=12345, metrics=("recovery",)).metrics["recovery.shrinkage_median"]
        found[variant] = (1 - 1 / global_scale(sae, x), rho)
    (topk_shrink, topk_rho), (relu_shrink, _) = found["topk"], found["relu_l1"]
    assert topk_rho < 0.5  # rho alone would call this heavy shrinkage
    assert abs(topk_shrink) < 0.03  # the global scale fit finds none
    assert relu_shrink > 0.1  # while relu_l1 at the same L0 is clearly shrunk


@pytest.mark.parametrize("change, word", [
    ({"aen": {"target_l0": [2, 8], "warmup_steps": 5}}, "warmup"),
    ({"topk": {"k": [2, 4]}}, "same L0 grid"),
    ({"topk": {"target_l0": [2, 8]}}, "matched L0"),
    ({"relu_l1": {"l1_coefficient": [0.01, 0.1]}}, "matched L0"),
])
def test_shrinkage_rejects_unmatched_sweeps_and_a_fixed_aen_schedule(change, word):
    small = RECIPES.get("shrinkage").config_class.small()
    with pytest.raises(ValueError, match=word):
        small.replace(sweeps={**small.sweeps, **change})


def test_synthsaebench_rejects_a_table_that_was_not_published():
    small = RECIPES.get("synthsaebench").config_class.small()
    with pytest.raises(ValueError, match="published table"):
        small.replace(tables=(25, 30))
    with pytest.raises(ValueError, match="published table"):
        small.replace(architectures=("batchtopk", "gated"))


def test_synthsaebench_checks_orderings_between_tiers_of_the_published_table():
    from synthsae.experiments.recipes.synthsaebench import PUBLISHED_TABLES, _adjacent_tier_pairs

    f1 = {a: v["f1"] for a, v in PUBLISHED_TABLES[25].items()}
    pairs = _adjacent_tier_pairs(list(f1), f1, 0.02)
    # JumpReLU (0.7317) and BatchTopK (0.7316) tie; Matryoshka is above both, both above l1, l1 above MP
    assert set(pairs) == {("matryoshka", "jumprelu"), ("matryoshka", "batchtopk"), ("jumprelu", "relu_l1"),
                          ("batchtopk", "relu_l1"), ("relu_l1", "matching_pursuit")}


@pytest.mark.parametrize("flag", [False, True])
def test_synthsaebench_passes_sparse_kernels_to_every_sae_it_builds(flag):
    from synthsae.sae import make

    recipe = RECIPES.get("synthsaebench")
    assert recipe.config_class().sparse_kernels is False  # the plain dense path is the default
    config = recipe.config_class.small().replace(sparse_kernels=flag)
    cells = recipe.cells(config)
    assert {c.params["variant"] for c in cells} == set(config.architectures)
    for c in cells:
        assert c.params["hyperparameters"]["sparse_kernels"] is flag, c.id
        sae = make(c.params["variant"], d=config.world_d, m=config.m_sae, seed=0, **c.params["hyperparameters"])
        assert sae.config.sparse_kernels is flag, c.id
    with pytest.raises(ValueError, match="sparse_kernels"):
        config.replace(sparse_kernels=1)
