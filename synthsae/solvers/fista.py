"""Batched FISTA (with adaptive restart) + exact refit on the detected support.

Iterates z ← prox(y − ∇/L) on all unfinished samples at once (∇ = (yD − x)Dᵀ + λ2 y, L = ‖D‖₂² + λ2,
atoms are rows of D). Every `check_every` iterations the support and signs of each iterate are
refitted exactly (`refit`); a sample whose refit satisfies KKT stops costing. Used on its own
(method "fista") and as the fallback of "auto".
"""

from __future__ import annotations

import torch

from synthsae.solvers.active_set import KKT_DELTA
from synthsae.solvers.methods import METHODS
from synthsae.solvers.refit import kkt_ok, neg_gradient, refit


def _prox(v, thr, nonneg):
    return (v - thr).clamp(min=0) if nonneg else torch.sign(v) * (v.abs() - thr).clamp(min=0)


@METHODS.register("fista")
def solve_fista(problem, *, max_iter=None, init=None, check_every=10):
    """Returns z (n, m) float64 (refitted where certified) and iterations per sample."""
    X, D, G, c, pen = problem.X, problem.D, problem.gram, problem.correlations, problem.penalty
    l2, nonneg = problem.l2, problem.nonneg
    n, m = c.shape
    max_iter = 5000 if max_iter is None else max_iter
    L = problem.norm_sq * (1 + 1e-6) + l2
    z = torch.zeros_like(c) if init is None else init.to(c).clone()
    y, t = z.clone(), torch.ones(n, dtype=c.dtype, device=c.device)
    out = z.clone()
    iters = torch.zeros(n, dtype=torch.long, device=c.device)
    live = torch.ones(n, dtype=torch.bool, device=c.device)
    delta = KKT_DELTA * (pen + c.abs().amax(1, keepdim=True))
    for it in range(1, max_iter + 1):
        rows = live.nonzero().flatten()
        if len(rows) == 0:
            break
        yr, zr = y[rows], z[rows]
        grad = (yr @ D - X[rows]) @ D.T + l2 * yr
        zn = _prox(yr - grad / L, pen[rows] / L, nonneg)
        restart = ((yr - zn) * (zn - zr)).sum(1) > 0
        tr = torch.where(restart, torch.ones_like(t[rows]), t[rows])
        tn = (1 + torch.sqrt(1 + 4 * tr * tr)) / 2
        y[rows] = zn + ((tr - 1) / tn)[:, None] * (zn - zr)
        z[rows], t[rows] = zn, tn
        iters[rows] += 1
        out[rows] = zn
        if it % check_every == 0 or it == max_iter:
            sgn = torch.sign(zn)
            zf, ok = refit(problem.system, c[rows], pen[rows], zn != 0, sgn)
            g = neg_gradient(G, c[rows], l2, zf)
            good = ok & ((zf * sgn) > 0).eq(zn != 0).all(1) & kkt_ok(g, zf, pen[rows], nonneg, delta[rows])
            out[rows[good]] = zf[good]
            live[rows[good]] = False
    return out, iters
