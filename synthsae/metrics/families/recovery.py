"""Family "recovery" (always computed): matching-based recovery of the true dictionary, firing
precision / recall per true feature, shrinkage, and the SAELens per-latent classification."""

from __future__ import annotations

import numpy as np
import torch

from synthsae.metrics import recovery as rec
from synthsae.metrics.absorption import splitting
from synthsae.metrics.family import EvalBatch, Family, MetricKey, Output, register
from synthsae.metrics.matching import normalize_rows

REC, CLS = "Recovery of the true dictionary", "Per-latent classification (SAELens)"


@register
class Recovery(Family):
    name = "recovery"
    order = 20
    core = True
    keys = (
        MetricKey("recovery.mcc", "mean |cos| over the Hungarian pairs of true features and latents", REC,
                  headline="MCC", plotted=True),
        MetricKey("recovery.mmcs_true_to_sae", "mean over true features of their best |cos| with any latent", REC),
        MetricKey("recovery.mmcs_sae_to_true", "mean over latents of their best |cos| with any true feature", REC),
        MetricKey("recovery.mmcs_sae_to_true_alive", "mmcs_sae_to_true over the latents that fired", REC),
        MetricKey("recovery.rate@t", "share of true features whose matched latent has |cos| >= t", REC,
                  headline="recovered@0.9", plotted=True, pattern=r"recovery\.rate@[0-9.e+-]+",
                  example="recovery.rate@0.9"),
        MetricKey("recovery.uniqueness", "distinct best-matching true features over latents, / m_sae", REC),
        MetricKey("recovery.splitting_rate", "share of true features with >= 2 latents at |cos| >= split_threshold",
                  REC),
        MetricKey("recovery.latents_per_feature", "mean number of latents at |cos| >= split_threshold per feature",
                  REC),
        MetricKey("recovery.firing_precision", "mean over true features of P(feature active | matched latent fires)",
                  REC),
        MetricKey("recovery.firing_recall", "mean over true features of P(matched latent fires | feature active)",
                  REC),
        MetricKey("recovery.firing_f1", "mean over true features of the F1 of firing precision and recall", REC),
        MetricKey("recovery.shrinkage_median", "median over features of the latent / true magnitude ratio", REC,
                  headline="shrinkage", plotted=True),
        MetricKey("classification.precision", "SAELens: mean over latents of P(best feature active | latent fires)",
                  CLS),
        MetricKey("classification.recall", "SAELens: mean over latents of P(latent fires | best feature active)", CLS),
        MetricKey("classification.f1_score", "SAELens: mean over latents of the F1 of the two above", CLS),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self.firing = rec.FiringAccumulator(ctx.sigma, ctx.sign, ctx.summary.col_arg, ctx.W.norm(dim=1).cpu(),
                                            ctx.m_sae)

    def add(self, batch: EvalBatch) -> None:
        self.firing.add(batch.true_rows, batch.true_cols, batch.true_vals, batch.rows, batch.cols, batch.vals,
                        batch.size)

    def finalize(self) -> Output:
        ctx, cfg, summ, match = self.ctx, self.ctx.config, self.ctx.summary, self.ctx.match
        m, M = ctx.m, ctx.m_sae
        out = Output()
        mt = out.metrics
        mt["recovery.mcc"] = match.mcc
        mt["recovery.mmcs_true_to_sae"] = float(summ.row_max.double().mean())
        mt["recovery.mmcs_sae_to_true"] = float(summ.col_max.double().mean())
        for t in cfg.thresholds:
            mt[f"recovery.rate@{t:g}"] = rec.recovery_rate(match, m, t)
        mt["recovery.uniqueness"] = float(torch.unique(summ.col_arg).numel()) / M
        mt.update(splitting(summ.row_count))
        alive = self.firing.latent_fires_all > 0
        if bool(alive.any()):
            mt["recovery.mmcs_sae_to_true_alive"] = float(summ.col_max[alive].double().mean())
        else:
            mt["recovery.mmcs_sae_to_true_alive"] = float("nan")
            out.not_applicable["recovery.mmcs_sae_to_true_alive"] = "no latent fired on any sample"
        fm, ftab = self.firing.compute(cfg.n)
        mt.update(fm)
        if not bool((self.firing.true_fires > 0).any()):
            out.not_applicable["recovery.firing"] = f"no true feature was active in n = {cfg.n} samples"
        if not bool((self.firing.tp > 0).any()):
            out.not_applicable["recovery.shrinkage"] = ("no true feature was active together with its matched latent "
                                                        f"in n = {cfg.n} samples")
        out.tables["features"] = {"feature": np.arange(m), "latent": ctx.sigma, "cos": ctx.cos_signed,
                                  "max_cos_any": summ.row_max.numpy(), "latents_above_split": summ.row_count.numpy(),
                                  **ftab}
        out.plot_data["recovery_curve"] = rec.recovery_curve(match, m)
        out.plot_data["heatmap"] = _heatmap(ctx.D, ctx.W, match, cfg.heatmap_size)
        return out


def _heatmap(D, W, match, k: int) -> np.ndarray:
    """|cos| between the first k matched true features (best matched first) and their latents, same order."""
    order = np.argsort(-np.abs(match.cos))[:k]
    rows, cols = match.rows[order], match.cols[order]
    C = normalize_rows(D[torch.as_tensor(rows)]) @ normalize_rows(W[torch.as_tensor(cols)]).T
    return C.abs().cpu().numpy()
