"""Recovery of the true dictionary: MCC, recovery rate, uniqueness, per-true-feature firing table.

Conventions: true dictionary D (m, d) and SAE decoder W_dec (m_sae, d), rows are atoms. True
feature j is matched one-to-one to latent sigma(j) by `matching.hungarian_match` on |cos|.
A latent "fires" on a sample when its code is non-zero (so signed codes count too).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import integrate, special

from synthsae.errors import require
from synthsae.metrics.matching import Matching, cosine_summary

DEFAULT_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def recovery_rate(matching: Matching, m_true: int, threshold: float) -> float:
    """Share of the m_true true features whose matched latent has |cos| >= threshold (unmatched = miss).

    `matching` must have the true dictionary as its first side (rows index true features).
    """
    require(0.0 <= threshold <= 1.0, "threshold", threshold, "a cosine threshold", "a float in [0, 1]")
    return float((np.abs(matching.cos) >= threshold).sum()) / m_true


def recovery_curve(matching: Matching, m_true: int, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, recovery rate at each); default grid 0..1 in steps of 0.01."""
    t = np.linspace(0, 1, 101) if thresholds is None else np.asarray(thresholds, dtype=float)
    a = np.sort(np.abs(matching.cos))
    return t, (a.size - np.searchsorted(a, t, side="left")) / m_true


def feature_uniqueness(W_dec, D) -> float:
    """SAELens uniqueness: #distinct argmax_j |cos(W_dec_l, D_j)| over latents l, divided by m_sae."""
    s = cosine_summary(W_dec, D)
    return float(torch.unique(s.row_arg).numel()) / s.row_arg.numel()


def expected_max_abs_cos(d: int, m: int) -> tuple[float, float]:
    """Mean and std of max_{j<=m} |cos(u, v_j)| for m independent uniform unit vectors v_j in R^d.

    |cos|^2 of two independent uniform unit vectors is Beta(1/2, (d-1)/2), so
    P(max <= t) = I_{t^2}(1/2, (d-1)/2)^m and E[max] = int_0^1 1 - P(max <= t) dt.
    """
    require(d >= 2 and m >= 1, "(d, m)", (d, m), "need d >= 2 and m >= 1", "positive sizes")
    F = lambda t: special.betainc(0.5, (d - 1) / 2, t * t) ** m  # noqa: E731
    mean = integrate.quad(lambda t: 1.0 - F(t), 0, 1, limit=200)[0]
    second = integrate.quad(lambda t: 2 * t * (1.0 - F(t)), 0, 1, limit=200)[0]
    return mean, float(np.sqrt(max(second - mean * mean, 0.0)))


def lookup(sorted_keys: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query key: (found?, position in sorted_keys). Keys are int64 (sample * M + index)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool), torch.zeros_like(query)
    pos = torch.searchsorted(sorted_keys, query).clamp_max(sorted_keys.numel() - 1)
    return sorted_keys[pos] == query, pos


class FiringAccumulator:
    """Streams (true codes, SAE codes) in sparse form and counts joint firing.

    Per true feature j (matched latent l = sigma(j)): true fires, latent fires, TP, and on TP
    samples the sums of the true magnitude z_j and of the latent's signed contribution along its
    own direction z_l * ||W_dec_l|| * sign(cos(W_dec_l, d_j)). Per latent l (SAELens convention,
    matched to its argmax |cos| true feature b(l)): fires and TP.
    """

    def __init__(self, sae_of_true: np.ndarray, sign: np.ndarray, best_true: torch.Tensor,
                 dec_norm: torch.Tensor, m_sae: int):
        self.m_true = len(sae_of_true)
        self.m_sae = m_sae
        self.sigma = torch.as_tensor(sae_of_true, dtype=torch.long)
        self.sign = torch.as_tensor(sign, dtype=torch.float64)
        self.best_true = best_true.long()
        self.dec_norm = dec_norm.double()
        z = lambda k: torch.zeros(k, dtype=torch.float64)  # noqa: E731
        self.true_fires, self.latent_fires_all = z(self.m_true), z(m_sae)
        self.tp, self.tp_true_mag, self.tp_latent_mag = z(self.m_true), z(self.m_true), z(self.m_true)
        self.tp_latent = z(m_sae)

    def add(self, t_rows, t_cols, t_vals, l_rows, l_cols, l_vals, b: int) -> None:
        """t_*: true non-zeros; l_*: SAE non-zeros (row-major sorted, as `nonzero` returns); b: batch size."""
        M, m = self.m_sae, self.m_true
        self.true_fires += torch.bincount(t_cols, minlength=m).double()
        self.latent_fires_all += torch.bincount(l_cols, minlength=M).double()
        l_keys = l_rows * M + l_cols  # already sorted
        sig = self.sigma[t_cols]
        matched = sig >= 0
        found, pos = lookup(l_keys, t_rows[matched] * M + sig[matched])
        j = t_cols[matched][found]
        self.tp += torch.bincount(j, minlength=m).double()
        self.tp_true_mag += torch.bincount(j, weights=t_vals[matched][found].double(), minlength=m)
        contrib = l_vals[pos[found]].double() * self.dec_norm[sig[matched][found]] * self.sign[j]
        self.tp_latent_mag += torch.bincount(j, weights=contrib, minlength=m)
        t_keys, _ = torch.sort(t_rows * m + t_cols)
        found2, _ = lookup(t_keys, l_rows * m + self.best_true[l_cols])
        self.tp_latent += torch.bincount(l_cols[found2], minlength=M).double()

    def compute(self, n: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """(summary metrics, per-true-feature columns)."""
        lat = torch.where(self.sigma >= 0, self.latent_fires_all[self.sigma.clamp_min(0)], torch.zeros(()).double())
        prec = _ratio(self.tp, lat)
        rec = _ratio(self.tp, self.true_fires)
        f1 = torch.where(prec + rec > 0, 2 * prec * rec / (prec + rec).clamp_min(1e-300), torch.zeros(()).double())
        shrink = torch.where(self.tp > 0, self.tp_latent_mag / self.tp_true_mag.clamp_min(1e-300),
                             torch.full((), float("nan"), dtype=torch.float64))
        present = self.true_fires > 0
        lp = _ratio(self.tp_latent, self.latent_fires_all)
        lr = _ratio(self.tp_latent, self.true_fires[self.best_true])
        lf = torch.where(lp + lr > 0, 2 * lp * lr / (lp + lr).clamp_min(1e-300), torch.zeros(()).double())
        metrics = {
            "recovery.firing_precision": _mean(prec[present]),
            "recovery.firing_recall": _mean(rec[present]),
            "recovery.firing_f1": _mean(f1[present]),
            "recovery.shrinkage_median": float(np.nanmedian(shrink.numpy())) if bool((self.tp > 0).any()) else float("nan"),
            "classification.precision": float(lp.mean()),
            "classification.recall": float(lr.mean()),
            "classification.f1_score": float(lf.mean()),
        }
        table = {
            "true_fire_rate": (self.true_fires / n).numpy(),
            "latent_fire_rate": (lat / n).numpy(),
            "firing_precision": prec.numpy(),
            "firing_recall": rec.numpy(),
            "firing_f1": f1.numpy(),
            "magnitude_ratio": shrink.numpy(),
        }
        return metrics, table


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp_min(1e-300), torch.zeros((), dtype=a.dtype))


def _mean(t: torch.Tensor) -> float:
    return float(t.mean()) if t.numel() else float("nan")
