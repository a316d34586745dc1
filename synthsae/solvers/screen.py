"""Cheap support prediction for the active-set solver: float32 FISTA until each sample's sign
pattern has been stable for `patience` iterations (atoms are rows of D).

The prediction is only a starting point: the active-set solver refits it exactly in float64,
removes atoms whose refit sign is wrong and adds KKT violators until the certificate holds, so a
wrong prediction costs time, never correctness. It pays off when supports are large (tens of
atoms or more), where growing the support from zero takes many refits.
"""

from __future__ import annotations

import torch


def _prox(v, thr, nonneg):
    """Soft-thresholding (ReLU-shifted when nonneg); v − clamp(v, −thr, thr) is soft(v, thr)."""
    return (v - thr).clamp(min=0) if nonneg else v - torch.maximum(torch.minimum(v, thr), -thr)


def predict_signs(problem, max_iter: int = 300, patience: int = 4, compact_every: int = 2,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign pattern (n, m) float64 in {−1, 0, 1} of a float32 FISTA iterate, and iterations per sample.

    A sample stops once its sign pattern is unchanged for `patience` iterations (or at max_iter);
    finished rows are dropped from the batch every `compact_every` iterations.
    """
    D = problem.D.to(dtype)
    step = 1.0 / (problem.norm_sq * (1 + 1e-3) + problem.l2)
    # prox-gradient step v = y − step·∇ = (1 − step·λ2) y + step·c − step·(y D) Dᵀ
    shrink, nonneg = 1.0 - step * problem.l2, problem.nonneg
    c = problem.correlations.to(dtype) * step
    thr = (problem.penalty * step).to(dtype).expand_as(c)
    n, m = c.shape
    out = torch.zeros(n, m, dtype=torch.float64, device=c.device)
    iters = torch.zeros(n, dtype=torch.long, device=c.device)
    rows = torch.arange(n, device=c.device)
    z = torch.zeros_like(c)
    y = torch.zeros_like(c)
    sz = torch.zeros_like(c)
    t = torch.ones(n, dtype=dtype, device=c.device)
    stable = torch.zeros(n, dtype=torch.long, device=c.device)
    for it in range(1, max_iter + 1):
        if len(rows) == 0:
            break
        v = torch.addmm(torch.add(c, y, alpha=shrink) if shrink != 1 else c + y, y @ D, D.T, alpha=-step)
        zn = _prox(v, thr, nonneg)
        dz = zn - z
        restart = ((y - zn) * dz).sum(1) > 0  # adaptive restart (O'Donoghue & Candès)
        t = torch.where(restart, torch.ones_like(t), t)
        tn = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        y = torch.addcmul(zn, ((t - 1) / tn)[:, None], dz)
        szn = torch.sign(zn)
        stable = torch.where((szn == sz).all(1), stable + 1, 0)
        z, t, sz = zn, tn, szn
        if it % compact_every == 0 or it == max_iter:
            done = (stable >= patience) | (it == max_iter)
            if bool(done.any()):
                out[rows[done]] = sz[done].to(torch.float64)
                iters[rows[done]] = it
                keep = (~done).nonzero().flatten()
                rows, stable = rows[keep], stable[keep]
                z, y, t, sz, c, thr = (a.index_select(0, keep) for a in (z, y, t, sz, c, thr))
    return out, iters
