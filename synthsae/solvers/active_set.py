"""Batched active-set solver (feature-sign / Lawson–Hanson style), exact in float64.

Each outer step adds the atom that violates its KKT condition most (sign = sign of its gradient),
then refits exactly on the support (`refit`). If the refit flips a sign, we move from the current
point towards the refit until the first coordinate reaches zero, drop it, and refit again
(Lawson–Hanson). The objective decreases at every step, so supports do not cycle in exact
arithmetic; a sample stops costing as soon as no zero coordinate violates KKT. Samples whose
support system is singular or that exhaust `max_iter` are returned as they are and fail their
certificate (the `auto` method then falls back). Atoms are rows of D.
"""

from __future__ import annotations

import torch

from synthsae.solvers.methods import METHODS
from synthsae.solvers.refit import neg_gradient, refit

# KKT allowance for zero coordinates, relative to (λ1 w_j + max_j |d_j·x|): rounding only.
KKT_DELTA = 1e-11
# Most atoms that may enter the support per outer step.
ADD_PER_STEP = 32


@METHODS.register("active_set")
def solve_active_set(problem, *, max_iter=None, init=None):
    """Returns z (n, m) float64 with exact zeros and the number of atoms added per sample."""
    G, c, pen, l2, nonneg = problem.gram, problem.correlations, problem.penalty, problem.l2, problem.nonneg
    n, m = c.shape
    max_iter = 4 * m + 10 if max_iter is None else max_iter
    z = torch.zeros_like(c)
    s = torch.zeros_like(c)
    iters = torch.zeros(n, dtype=torch.long, device=c.device)
    live = torch.ones(n, dtype=torch.bool, device=c.device)
    single = torch.zeros(n, dtype=torch.bool, device=c.device)  # back to one atom per step
    delta = KKT_DELTA * (pen + c.abs().amax(1, keepdim=True))
    for _ in range(max_iter):
        rows = live.nonzero().flatten()
        if len(rows) == 0:
            break
        g = neg_gradient(G, c[rows], l2, z[rows], problem.D)
        excess = (g if nonneg else g.abs()) - pen[rows]
        excess = torch.where((z[rows] == 0) & (excess > delta[rows]), excess, -float("inf"))
        best, j = excess.topk(min(ADD_PER_STEP, m), dim=1)
        # up to max(4, |S|) atoms enter per step: few while the support is small, more as it grows
        nnz = (z[rows] != 0).sum(1, keepdim=True)
        cap = nnz.clamp(min=4)
        if l2 == 0:  # a Lasso support beyond d atoms is singular: never jump past d
            cap = torch.minimum(cap, (problem.D.shape[1] - nnz).clamp(min=1))
        cap = torch.where(single[rows, None], 1, cap)
        best = torch.where(torch.arange(best.shape[1], device=c.device) < cap, best, -float("inf"))
        done = torch.isinf(best[:, 0])
        live[rows[done]] = False
        rows, j, g, best = rows[~done], j[~done], g[~done], best[~done]
        if len(rows) == 0:
            break
        iters[rows] += 1
        # Several violators enter at once (fewer refits); one whose refit sign is wrong leaves at
        # once in the Lawson–Hanson loop, so the objective still never increases.
        new = torch.isfinite(best)
        sg = torch.ones_like(best) if nonneg else torch.sign(g.gather(1, j))
        cur = s[rows]
        before = s[rows] != 0
        cur.scatter_(1, j, torch.where(new, sg, cur.gather(1, j)))
        s[rows] = cur
        _lawson_hanson(G, c, pen, l2, z, s, rows, live)
        # A step that changed nothing (all entering atoms left again) would repeat forever;
        # with one atom per step the entering sign is provably right (exact arithmetic).
        single[rows[(s[rows] != 0).eq(before).all(1)]] = True
    return z, iters


def _lawson_hanson(G, c, pen, l2, z, s, rows, live):
    """Refit `rows` on their sign patterns, stepping back to stay sign-consistent (in place)."""
    sub = rows
    for _ in range(z.shape[1] + 1):
        if len(sub) == 0:
            return
        sgn = s[sub]
        mask = sgn != 0
        zn, ok = refit(G, c[sub], pen[sub], l2, mask, sgn)
        live[sub[~ok]] = False  # singular support system: leave the sample uncertified
        bad = mask & (zn * sgn <= 0)
        clean = ok & ~bad.any(1)
        z[sub[clean]] = zn[clean]
        keep = ok & ~clean
        sub, zn, bad, sgn = sub[keep], zn[keep], bad[keep], sgn[keep]
        zo = z[sub]
        den = zo - zn
        ratio = torch.where(bad, torch.where(den != 0, zo / den, torch.zeros_like(den)), float("inf"))
        alpha = ratio.min(1).values.clamp(0, 1)
        znew = zo + alpha[:, None] * (zn - zo)
        drop = bad & (ratio <= alpha[:, None])
        znew = torch.where(drop, torch.zeros_like(znew), znew)
        z[sub] = znew
        s[sub] = torch.where(drop, torch.zeros_like(sgn), sgn)
