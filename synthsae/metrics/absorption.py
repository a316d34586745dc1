"""Feature absorption on worlds with a hierarchy (world.parents), and feature splitting.

Definitions (see docs/metrics.md): true features are matched one-to-one to latents
(sigma = Hungarian on |cos|). For a parent-child pair (p, c), an *event* is a sample on which both
p and c are truly active. Let l_p = sigma(p), l_c = sigma(c) and a(c) = |cos(W_dec[l_c], d_p)|.
The pair *carries the parent* when a(c) >= cos_threshold.
  full absorption:    l_p silent and l_c fires, on a pair that carries the parent;
  partial absorption: l_p fires with ratio r_i < partial_ratio * ref_p on a pair that carries the
                      parent, where r_i = z_{l_p} ||W_dec[l_p]|| sign(cos(W_dec[l_p], d_p)) / z_p
                      and ref_p is the median r over samples where p is active with none of its
                      children (over all events if fewer than MIN_REF such samples).
Rates are per pair (over its events); the summary is the mean over pairs with at least one event.
"""

from __future__ import annotations

import numpy as np
import torch

from synthsae.errors import require
from synthsae.metrics.recovery import lookup

MIN_REF = 10


class AbsorptionAccumulator:
    """Streams sparse true codes and SAE codes; collects per-event flags for every parent-child pair.

    parents: (m,) parent index or -1. sigma: (m,) matched latent of each true feature or -1.
    W_dec (m_sae, d) and D (m, d): rows are atoms. sign: (m,) sign of cos(W_dec[sigma(j)], d_j).
    """

    def __init__(self, parents, sigma, W_dec: torch.Tensor, D: torch.Tensor, sign, cos_threshold: float = 0.2,
                 partial_ratio: float = 0.5):
        require(0 < cos_threshold < 1, "absorption_cos_threshold", cos_threshold, "a cosine threshold", "a float in (0, 1)")
        require(0 < partial_ratio < 1, "partial_ratio", partial_ratio, "a magnitude fraction", "a float in (0, 1)")
        self.parents = torch.as_tensor(parents, dtype=torch.long).cpu()
        self.sigma = torch.as_tensor(sigma, dtype=torch.long)
        self.m, self.M = len(self.parents), W_dec.shape[0]
        require(int(self.parents.max()) < self.m, "world.parents", int(self.parents.max()), "a parent index is out of range",
                f"indices in [-1, {self.m})")
        self.dec_norm = W_dec.norm(dim=1).double().cpu()
        self.sign = torch.as_tensor(sign, dtype=torch.float64)
        Wn = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        Dn = D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)
        child = torch.nonzero(self.parents >= 0).flatten()
        p = self.parents[child]
        valid = (self.sigma[child] >= 0) & (self.sigma[p] >= 0)
        self.child, self.parent = child[valid], p[valid]
        self.child_cos_parent = (Wn[self.sigma[self.child]].cpu() * Dn[self.parent].cpu()).sum(1).abs().double()
        self.pair_of_child = torch.full((self.m,), -1, dtype=torch.long)
        self.pair_of_child[self.child] = torch.arange(len(self.child))
        self.is_parent = torch.zeros(self.m, dtype=torch.bool)
        self.is_parent[self.parent] = True
        self.cos_threshold, self.partial_ratio = cos_threshold, partial_ratio
        self.ev_pair, self.ev_lp, self.ev_lc, self.ev_ratio = [], [], [], []
        self.ref_parent, self.ref_ratio = [], []

    def _ratio(self, l_keys, l_vals, rows, feats, true_vals):
        lat = self.sigma[feats]
        fires, pos = lookup(l_keys, rows * self.M + lat)
        contrib = l_vals[pos].double() * self.dec_norm[lat] * self.sign[feats]
        ratio = torch.where(fires, contrib / true_vals.double(), torch.full((), float("nan"), dtype=torch.float64))
        return fires, ratio

    def add(self, t_rows, t_cols, t_vals, l_rows, l_cols, l_vals) -> None:
        m, M = self.m, self.M
        order = torch.argsort(t_rows * m + t_cols)
        t_keys, t_sorted_vals = (t_rows * m + t_cols)[order], t_vals[order]
        l_keys = l_rows * M + l_cols
        pair = self.pair_of_child[t_cols]
        e = pair >= 0
        rows, c, pair = t_rows[e], t_cols[e], pair[e]
        p = self.parents[c]
        p_on, p_pos = lookup(t_keys, rows * m + p)
        rows, c, p, pair, zp = rows[p_on], c[p_on], p[p_on], pair[p_on], t_sorted_vals[p_pos[p_on]]
        lp_fires, ratio = self._ratio(l_keys, l_vals, rows, p, zp)
        lc_fires, _ = lookup(l_keys, rows * M + self.sigma[c])
        self.ev_pair.append(pair); self.ev_lp.append(lp_fires); self.ev_lc.append(lc_fires); self.ev_ratio.append(ratio)  # noqa: E702
        # reference: parent active with none of its children active
        with_child = torch.unique(rows * m + p)
        pe = self.is_parent[t_cols]
        pr, pc, pv = t_rows[pe], t_cols[pe], t_vals[pe]
        busy, _ = lookup(with_child, pr * m + pc)
        pr, pc, pv = pr[~busy], pc[~busy], pv[~busy]
        fires, ratio = self._ratio(l_keys, l_vals, pr, pc, pv)
        self.ref_parent.append(pc[fires]); self.ref_ratio.append(ratio[fires])

    def compute(self) -> tuple[dict[str, float], dict[str, np.ndarray], list[str]]:
        """(summary metrics, per-pair columns, notes)."""
        P = len(self.child)
        notes = []
        cat = lambda xs, dt: torch.cat(xs) if xs else torch.zeros(0, dtype=dt)  # noqa: E731
        pair, lp, lc = cat(self.ev_pair, torch.long), cat(self.ev_lp, torch.bool), cat(self.ev_lc, torch.bool)
        ratio = cat(self.ev_ratio, torch.float64)
        rp, rr = cat(self.ref_parent, torch.long), cat(self.ref_ratio, torch.float64)
        events = torch.bincount(pair, minlength=P).double()
        carries = self.child_cos_parent >= self.cos_threshold
        ref = torch.full((self.m,), float("nan"), dtype=torch.float64)
        n_fallback = 0
        for q in torch.unique(self.parent).tolist():
            own = rr[rp == q]
            if own.numel() < MIN_REF:
                own = ratio[(self.parent[pair] == q) & lp]
                n_fallback += 1
            if own.numel():
                ref[q] = own.median()
        if n_fallback:
            notes.append(f"absorption: {n_fallback} parent(s) had < {MIN_REF} child-free samples; their reference "
                         "magnitude ratio is the median over all their events")
        full_ev = (~lp) & lc
        partial_ev = lp & (ratio < self.partial_ratio * ref[self.parent[pair]])
        miss = torch.bincount(pair[~lp], minlength=P).double()
        full = torch.bincount(pair[full_ev], minlength=P).double() * carries
        part = torch.bincount(pair[partial_ev], minlength=P).double() * carries
        has = events > 0
        nan = torch.full((), float("nan"), dtype=torch.float64)
        rate = lambda a: torch.where(has, a / events.clamp_min(1), nan)  # noqa: E731
        full_r, part_r, miss_r = rate(full), rate(part), rate(miss)
        mean = lambda t: float(t[has].mean()) if bool(has.any()) else float("nan")  # noqa: E731
        metrics = {
            "absorption.full_rate": mean(full_r),
            "absorption.partial_rate": mean(part_r),
            "absorption.rate": mean(full_r + part_r),
            "absorption.parent_miss_rate": mean(miss_r),
            "absorption.pairs": float(P),
            "absorption.pairs_evaluated": float(has.sum()),
            "absorption.pairs_carrying_parent": float((carries & has).sum()),
        }
        table = {
            "parent": self.parent.numpy(), "child": self.child.numpy(),
            "parent_latent": self.sigma[self.parent].numpy(), "child_latent": self.sigma[self.child].numpy(),
            "child_latent_cos_parent": self.child_cos_parent.numpy(), "events": events.numpy(),
            "full_rate": full_r.numpy(), "partial_rate": part_r.numpy(), "parent_miss_rate": miss_r.numpy(),
        }
        return metrics, table, notes


def splitting(counts) -> dict[str, float]:
    """Splitting from per-true-feature counts of latents with |cos| >= threshold (`cosine_summary(D, W_dec).row_count`)."""
    cc = torch.as_tensor(counts).double()
    return {"recovery.splitting_rate": float((cc >= 2).double().mean()),
            "recovery.latents_per_feature": float(cc.mean())}
