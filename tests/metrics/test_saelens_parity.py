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
