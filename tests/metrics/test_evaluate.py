import json
import math

import numpy as np
import pytest
import torch

from synthsae.metrics import EvalConfig, LinearSAE, evaluate, explained_variance
from synthsae.testing.metrics import ExplicitWorld

FAST = dict(n=3000, batch_size=1024, lipschitz_power_iters=5, lipschitz_samples=32, steering_samples=32)


def test_oracle_sae_scores_perfectly(flat_world):
    r = evaluate(LinearSAE.from_dictionary(flat_world.dictionary), flat_world, **FAST)
    m = r.metrics
    for key in ("recovery.mcc", "recovery.rate@0.9", "recovery.rate@0.99", "recovery.uniqueness",
                "recovery.firing_f1", "recovery.firing_precision", "recovery.firing_recall", "recovery.shrinkage_median",
                "classification.f1_score", "downstream.score", "steering.on_target"):
        assert m[key] == pytest.approx(1.0, abs=1e-5), key
    assert m["reconstruction.explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert m["downstream.kl"] == pytest.approx(0.0, abs=1e-9)
    assert m["steering.leakage"] == pytest.approx(0.0, abs=1e-5)
    assert m["sparsity.l0"] == pytest.approx(m["sparsity.true_l0"])
    assert m["latents.dead_count"] == 0 and m["recovery.splitting_rate"] == 0
    # orthonormal oracle: the coding map is the projection x -> x D^T, Lipschitz constant exactly 1
    assert m["lipschitz.encoder_jacobian_max"] == pytest.approx(1.0, abs=1e-4)
    assert m["lipschitz.encoder_pairs_max"] <= 1.0 + 1e-5
    assert "absorption" in r.not_applicable and math.isnan(m["absorption.full_rate"])


def test_explained_variance_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 7, generator=g, dtype=torch.float64) + 3.0
    xh = x + 0.3 * torch.randn(500, 7, generator=g, dtype=torch.float64)
    want = 1 - ((x - xh) ** 2).sum(1).mean() / ((x ** 2).sum(1).mean() - (x.mean(0) ** 2).sum())
    assert explained_variance(x, xh) == pytest.approx(float(want), rel=1e-12)


def _metrics_without_timing(r):
    return {k: v for k, v in r.metrics.items() if not k.startswith("timing.")}


def test_report_invariant_to_latent_permutation_and_decoder_scaling(tree_world):
    g = torch.Generator().manual_seed(3)
    D = tree_world.dictionary
    noisy = D + 0.2 * torch.randn(D.shape, generator=g)
    base = LinearSAE(noisy.T, noisy, b_enc=torch.full((12,), -0.1))
    perm = torch.randperm(12, generator=g)
    s = 0.2 + 3 * torch.rand(12, generator=g)
    # permute latents; scale decoder rows by s and encoder columns by 1/s (same reconstruction)
    other = LinearSAE(noisy.T[:, perm] / s, noisy[perm] * s[:, None], b_enc=torch.full((12,), -0.1) / s)
    a = _metrics_without_timing(evaluate(base, tree_world, **FAST, steering_features=64))
    b = _metrics_without_timing(evaluate(other, tree_world, **FAST, steering_features=64))
    assert a.keys() == b.keys()
    for k in a:
        if math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k


def absorbing_sae(world, strength: float):
    """Parent latents are suppressed by `strength` * child activity, children's decoders carry
    `strength` of their parent's direction: exact reconstruction on unit magnitudes.
    strength = 1: full absorption; strength in (0, 1): the parent fires at 1 - strength (partial)."""
    D = world.dictionary
    W_enc, W_dec = D.T.clone(), D.clone()
    for c, p in enumerate(world.parents.tolist()):
        if p >= 0:
            W_enc[:, p] -= strength * D[c]
            W_dec[c] = D[c] + strength * D[p]
    return LinearSAE(W_enc, W_dec, threshold=1e-3)


def test_planted_full_absorption_scores_one_and_clean_scores_zero(tree_world):
    r = evaluate(absorbing_sae(tree_world, 1.0), tree_world, **FAST)
    assert r["absorption.full_rate"] == pytest.approx(1.0)
    assert r["absorption.partial_rate"] == 0.0
    assert r["absorption.pairs_evaluated"] == 3
    assert r["reconstruction.explained_variance"] == pytest.approx(1.0, abs=1e-5)
    clean = evaluate(LinearSAE.from_dictionary(tree_world.dictionary), tree_world, **FAST)
    assert clean["absorption.full_rate"] == 0.0 and clean["absorption.rate"] == 0.0
    assert clean["absorption.parent_miss_rate"] == 0.0


def test_planted_partial_absorption(tree_world):
    r = evaluate(absorbing_sae(tree_world, 0.8), tree_world, **FAST)
    assert r["absorption.partial_rate"] == pytest.approx(1.0)
    assert r["absorption.full_rate"] == 0.0
    table = r.tables["absorption_pairs"]
    assert np.all(table["child_latent_cos_parent"] > 0.5)


def test_parent_silence_without_the_parent_direction_is_not_absorption(tree_world):
    # the parent latent is suppressed when a child fires, but children's decoders stay clean
    D = tree_world.dictionary
    W_enc = D.T.clone()
    for c, p in enumerate(tree_world.parents.tolist()):
        if p >= 0:
            W_enc[:, p] -= D[c]
    r = evaluate(LinearSAE(W_enc, D, threshold=1e-3), tree_world, **FAST)
    assert r["absorption.parent_miss_rate"] == pytest.approx(1.0)
    assert r["absorption.full_rate"] == 0.0


def test_subspace_group_recovery_in_evaluate():
    D = torch.eye(8)
    groups = [0, 0, 1, 1, -1, -1, -1, -1]
    world = ExplicitWorld(D, [0.3] * 8, groups=groups)
    H = torch.tensor([[1.0, 1.0], [1.0, -1.0]]) / 2 ** 0.5
    W = D.clone()
    W[0:2] = H @ D[0:2]
    W[2:4] = H @ D[2:4]
    r = evaluate(LinearSAE(W.T, W, threshold=1e-3), world, **FAST)
    assert r["subspaces.groups_covered"] == 2
    assert r["subspaces.max_angle_deg_mean"] == pytest.approx(0.0, abs=1e-4)
    assert r["recovery.rate@0.8"] == pytest.approx(0.5)  # rotated group members sit at cos 1/sqrt(2)


def test_bad_inputs(flat_world):
    good = LinearSAE.from_dictionary(flat_world.dictionary)
    with pytest.raises(ValueError, match="d = 32"):
        evaluate(LinearSAE.from_dictionary(torch.eye(16)), flat_world, **FAST)
    nan = LinearSAE.from_dictionary(flat_world.dictionary)
    with torch.no_grad():
        nan.W_enc[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        evaluate(nan, flat_world, **FAST)
    with pytest.raises(ValueError, match="at least two samples"):
        evaluate(good, flat_world, n=1)
    with pytest.raises(ValueError, match="metric family"):
        evaluate(good, flat_world, metrics=["absorbtion"])
    with pytest.raises(ValueError, match="W_dec"):
        evaluate(object(), flat_world)


def test_absorption_without_events_is_not_applicable_not_zero():
    # the child can never fire, so no parent-child event exists in any sample
    world = ExplicitWorld(torch.eye(4), [0.5, 0.0, 0.5, 0.5], parents=[-1, 0, -1, -1])
    r = evaluate(LinearSAE.from_dictionary(world.dictionary), world, n=500, metrics=["absorption"])
    assert r["absorption.pairs_evaluated"] == 0
    assert "increase n" in r.not_applicable["absorption"]
    assert math.isnan(r["absorption.full_rate"]) and math.isnan(r["absorption.rate"])


def test_raw_weights_are_accepted(flat_world):
    D = flat_world.dictionary
    r = evaluate({"W_enc": D.T, "W_dec": D}, flat_world, **FAST, metrics=["reconstruction"])
    assert r["recovery.mcc"] == pytest.approx(1.0, abs=1e-6)


def test_report_save_and_table(tmp_path, tree_world):
    r = evaluate(absorbing_sae(tree_world, 1.0), tree_world, **FAST)
    out = r.save(tmp_path / "rep")
    data = json.loads((out / "metrics.json").read_text())
    assert data["metrics"]["absorption.full_rate"] == pytest.approx(1.0)
    assert data["metrics"]["latents.rare_count"] is None and "latents.rare" in data["not_applicable"]
    header = (out / "features.csv").read_text().splitlines()[0].split(",")
    assert {"feature", "latent", "cos", "firing_f1", "magnitude_ratio"} <= set(header)
    assert len((out / "features.csv").read_text().splitlines()) == 13
    for png in ("cosine_heatmap", "recovery_curve", "firing_vs_recovery", "absorption_matrix"):
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    text = r.table()
    assert "Absorption" in text and "full_rate" in text


def test_config_round_trip():
    cfg = EvalConfig(n=123, metrics=("reconstruction", "absorption"))
    assert EvalConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError):
        EvalConfig(rare_threshold=2.0)
