"""Our SAELens-compatible keys equal SAELens's own functions (runs only where sae-lens is installed)."""

import pytest
import torch

from synthsae.metrics import LinearSAE, evaluate
from synthsae.testing.metrics import ExplicitWorld

sl_evals = pytest.importorskip("sae_lens.synthetic.evals")
sl_core = pytest.importorskip("sae_lens.evals")


def test_mcc_uniqueness_ev_and_classification_match_saelens():
    g = torch.Generator().manual_seed(0)
    D = torch.randn(40, 24, generator=g)
    D = D / D.norm(dim=1, keepdim=True)
    world = ExplicitWorld(D, [0.1] * 40, magnitudes=(0.5, 1.5), noise=0.05)
    W = D[torch.randperm(40, generator=g)][:30] + 0.3 * torch.randn(30, 24, generator=g)
    sae = LinearSAE(W.T, W, b_enc=torch.full((30,), -0.2))
    r = evaluate(sae, world, n=4000, batch_size=4000, metrics=["reconstruction"])
    batch = next(world.stream(4000, seed=0))  # the same samples evaluate drew
    z = sae.encode(batch.x)
    ev = sl_core.ExplainedVarianceCalculator()
    ev.add_batch(sae.decode(z), batch.x)
    cm = sl_evals.compute_classification_metrics(z, batch.codes.to_dense(), sae.W_dec, D)
    assert r["recovery.mcc"] == pytest.approx(sl_evals.mean_correlation_coefficient(sae.W_dec, D), rel=1e-6)
    assert r["recovery.uniqueness"] == sl_evals.feature_uniqueness(sae.W_dec, D)
    assert r["reconstruction.explained_variance"] == pytest.approx(ev.compute(), rel=1e-5)
    assert r["classification.precision"] == pytest.approx(cm.precision, rel=1e-6)
    assert r["classification.recall"] == pytest.approx(cm.recall, rel=1e-6)
    assert r["classification.f1_score"] == pytest.approx(cm.f1_score, rel=1e-6)


def _world_and_saes():
    """A world built from a SAELens config (hierarchy, correlation, magnitudes, bias) and two SAELens SAEs
    (standard and topk) whose decoders are noisy copies of 48 of the 64 true atoms."""
    import warnings

    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    from synthsae.interop import SAELensCompatibilityWarning, world_from_saelens

    cfg = {"num_features": 64, "hidden_dim": 24, "seed": 2, "bias": 0.5,
           "firing_probability": {"generator_name": "zipfian", "exponent": 0.7, "max_prob": 0.3, "min_prob": 0.01},
           "hierarchy": {"total_root_nodes": 4, "branching_factor": 3, "max_depth": 1,
                         "mutually_exclusive_portion": 0.5},
           "correlation": {"rank": 3, "correlation_scale": 0.2, "seed": None},
           "std_firing_magnitudes": 0.2,
           "mean_firing_magnitudes": {"generator_name": "linear", "start": 2.0, "end": 1.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAELensCompatibilityWarning)
        world = world_from_saelens(cfg)
    g = torch.Generator().manual_seed(0)
    W = world.dictionary[torch.randperm(64, generator=g)[:48]] + 0.2 * torch.randn(48, 24, generator=g)
    W = W / W.norm(dim=1, keepdim=True)
    saes = [StandardSAE(StandardSAEConfig(d_in=24, d_sae=48)), TopKSAE(TopKSAEConfig(d_in=24, d_sae=48, k=6))]
    with torch.no_grad():
        for sae in saes:
            sae.W_dec.copy_(W)
            sae.W_enc.copy_(W.T)
            sae.b_dec.copy_(world.bias)
            sae.b_enc.fill_(-0.4)
    return world, saes


class _Replay:
    """Hands SAELens's evaluator the very samples synthsae.evaluate draws: `sample` gives the true codes,
    calling it gives x (so both libraries encode identical inputs)."""

    def __init__(self, world, n):
        self.batch = next(world.stream(n, seed=0))
        self.feature_vectors = world.dictionary

    def sample(self, n):
        return self.batch.codes.to_dense().float()

    def __call__(self, codes):
        return self.batch.x


@pytest.mark.parametrize("which", [0, 1], ids=["standard", "topk"])
def test_eval_sae_on_synthetic_data_agrees_with_evaluate(which):
    """Same SAE, same samples: MCC, uniqueness, L0, dead latents, explained variance, shrinkage and the
    latent-as-classifier precision / recall / F1 (SAELens reports their means over latents; so do we)."""
    world, saes = _world_and_saes()
    sae, n = saes[which], 3000
    replay = _Replay(world, n)
    ref = sl_evals.eval_sae_on_synthetic_data(sae, replay, replay, num_samples=n, batch_size=n)
    r = evaluate(sae, world, n=n, batch_size=n, metrics=["reconstruction"])
    assert r["recovery.mcc"] == pytest.approx(ref.mcc, rel=1e-6)
    assert r["recovery.uniqueness"] == pytest.approx(ref.uniqueness, rel=1e-12)
    assert r["sparsity.l0"] == pytest.approx(ref.sae_l0, rel=1e-12)
    assert r["sparsity.true_l0"] == pytest.approx(ref.true_l0, rel=1e-12)
    assert r["latents.dead_count"] == ref.dead_latents
    assert r["reconstruction.explained_variance"] == pytest.approx(ref.explained_variance, rel=1e-5)
    assert r["reconstruction.norm_ratio"] == pytest.approx(ref.shrinkage, rel=1e-5)
    assert r["classification.precision"] == pytest.approx(ref.classification.precision, rel=1e-6)
    assert r["classification.recall"] == pytest.approx(ref.classification.recall, rel=1e-6)
    assert r["classification.f1_score"] == pytest.approx(ref.classification.f1_score, rel=1e-6)
    assert 0 < ref.sae_l0 < 48 and 0 < ref.classification.f1_score < 1  # a non-trivial case
    # the same SAE loaded into synthsae (synthsae.interop) evaluates the same up to float round-off
    from synthsae.interop import load_saelens_sae

    ours = evaluate(load_saelens_sae(sae), world, n=n, batch_size=n, metrics=["reconstruction"])
    for key in ("recovery.mcc", "recovery.uniqueness", "sparsity.l0", "classification.f1_score",
                "reconstruction.explained_variance"):
        assert ours[key] == pytest.approx(r[key], rel=1e-4), key
