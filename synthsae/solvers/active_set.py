"""Batched active-set solver (feature-sign / Lawson–Hanson style), exact in float64.

Each outer step adds the atoms that violate their KKT condition most (sign = sign of the gradient),
then refits exactly on the support (`refit.factorize`). If the refit flips a sign, we move from the
current point towards the refit until the first coordinate reaches zero, drop it, and refit again
(Lawson–Hanson); the refits after a drop reuse the support's Cholesky factor
(`SupportFactor.solve_without`), so a step costs one factorization however many atoms it drops.
When a Lasso support would exceed d atoms (its system is singular), a swap moves along the null
space of the support's atoms until an old atom reaches zero (`_null_step`). The objective decreases
at every step, so supports do not cycle in exact arithmetic; a sample stops costing as soon as no
zero coordinate violates KKT. Samples whose support system is singular in another way or that
exhaust `max_iter` are returned as they are and fail their certificate (the `auto` method then
falls back). Atoms are rows of D.

Warm start: when supports are large, growing them from zero takes many refits, so the solver
switches to a sign pattern predicted by a cheap float32 FISTA run (`screen.predict_signs`): atoms
whose refit sign is wrong leave at once (z is reset to 0 then), the rest of the method is
unchanged, so the prediction affects speed only, never the certificate. Whether supports are large
is read off the first outer steps themselves (see SWITCH_AFTER), so no work is thrown away when
they are small.
"""

from __future__ import annotations

import torch

from synthsae.solvers.methods import METHODS
from synthsae.solvers.refit import entries, factorize, neg_gradient, put_rows
from synthsae.solvers.screen import predict_signs

# KKT allowance for zero coordinates, relative to (λ1 w_j + max_j |d_j·x|): rounding only.
KKT_DELTA = 1e-11
# Most atoms that may enter the support per outer step, and how many may enter the first time.
ADD_PER_STEP = 32
FIRST_ADD = 4
# The support may grow by at most this fraction of its size per outer step (above FIRST_ADD).
GROWTH = 1.0
# Auto warm start: after SWITCH_AFTER outer steps from zero, if most samples still have violators
# with WARM_START_MIN_SUPPORT atoms or more (their support is still growing at full speed), those
# samples switch to predicted signs; otherwise all go on from where they are (small supports grow
# in a few refits, cheaper than FISTA).
SWITCH_AFTER = 3
WARM_START_MIN_SUPPORT = 16


@METHODS.register("active_set")
def solve_active_set(problem, *, max_iter=None, init=None, warm_start=None):
    """Returns z (n, m) float64 with exact zeros and iterations per sample (outer active-set steps,
    plus float32 FISTA steps when warm-started).

    init: optional (n, m) codes whose sign pattern is the starting support. warm_start: True/False
    forces/forbids the FISTA sign prediction; None switches to it after SWITCH_AFTER steps where
    supports are still growing fast.
    """
    max_iter = 4 * problem.m + 10 if max_iter is None else max_iter
    if init is not None:
        signs = torch.sign(init.to(problem.X))
        return _active_set(problem, max_iter, signs=signs.clamp(min=0) if problem.nonneg else signs)[:2]
    if warm_start:
        signs, pre = predict_signs(problem)
        z, steps, _ = _active_set(problem, max_iter, signs=signs)
        return z, pre + steps
    return _active_set(problem, max_iter, switch=warm_start is None)[:2]


def _active_set(problem, max_iter, signs=None, switch=False):
    """The active-set loop from z = 0, optionally first refitting a predicted sign pattern `signs`;
    `switch`: after SWITCH_AFTER steps, move samples with fast-growing supports to predicted signs.
    Returns z, outer steps (plus FISTA steps where predicted) and the rows (n,) that still had KKT
    violators when it stopped."""
    G, c, pen, l2, nonneg = problem.gram, problem.correlations, problem.penalty, problem.l2, problem.nonneg
    A = problem.system
    n, m = c.shape
    z = torch.zeros_like(c)
    s = torch.zeros_like(c) if signs is None else signs.clone()
    iters = torch.zeros(n, dtype=torch.long, device=c.device)
    live = torch.ones(n, dtype=torch.bool, device=c.device)
    single = torch.zeros(n, dtype=torch.bool, device=c.device)  # back to one atom per step
    delta = KKT_DELTA * (pen + c.abs().amax(1, keepdim=True))

    def start_from(rows, predicted):  # refit `rows` on predicted signs
        z[rows], s[rows] = 0.0, predicted
        _lawson_hanson(A, c, pen, z, s, rows, live, l2 == 0)
        # A predicted support can be singular (e.g. more than d atoms at λ2 = 0): start those from zero.
        cold = rows[~live[rows]]
        z[cold], s[cold], live[cold] = 0.0, 0.0, True

    if signs is not None:
        start_from(torch.arange(n, device=c.device), signs)
    for step in range(max_iter):
        if switch and step == SWITCH_AFTER:
            growing = live & ((z != 0).sum(1) >= WARM_START_MIN_SUPPORT)
            if float(growing.double().mean()) >= 0.5:
                rows = live.nonzero().flatten()
                predicted, pre = predict_signs(problem.subset(rows), init=z.index_select(0, rows))
                iters[rows] += pre
                start_from(rows, predicted)
        rows = live.nonzero().flatten()
        if len(rows) == 0:
            break
        zr = _take(z, rows, n)
        g = neg_gradient(G, _take(c, rows, n), l2, zr, problem.D)
        excess = (g if nonneg else g.abs()) - _take(pen, rows, n)
        excess = torch.where((zr == 0) & (excess > _take(delta, rows, n)), excess, -float("inf"))
        # up to max(FIRST_ADD, GROWTH·|S|) atoms enter per step: few while the support is small, more as it grows
        nnz = (zr != 0).sum(1, keepdim=True)
        cap = (nnz * GROWTH).long().clamp(min=FIRST_ADD, max=ADD_PER_STEP)
        if l2 == 0:  # a Lasso support beyond d atoms is singular: never jump past d
            cap = torch.minimum(cap, (problem.D.shape[1] - nnz).clamp(min=1))
        cap = torch.where(single[rows, None], 1, cap)
        best, j = excess.topk(min(int(cap.max()), m), dim=1)  # no wider than the largest cap (topk is costly)
        best = torch.where(torch.arange(best.shape[1], device=c.device) < cap, best, -float("inf"))
        done = torch.isinf(best[:, 0])
        if bool(done.any()):
            live[rows[done]] = False
            go = (~done).nonzero().flatten()
            rows, j, g, best = rows[go], j[go], g.index_select(0, go), best[go]
            if len(rows) == 0:
                break
        iters[rows] += 1
        # Several violators enter at once (fewer refits); one whose refit sign is wrong leaves at
        # once in the Lawson–Hanson loop, so the objective still never increases.
        new = torch.isfinite(best)
        sg = torch.ones_like(best) if nonneg else torch.sign(g.gather(1, j))
        cur = _take(s, rows, n)
        before = cur != 0
        cur = cur.scatter(1, j, torch.where(new, sg, cur.gather(1, j)))
        s.index_copy_(0, rows, cur)
        _lawson_hanson(A, c, pen, z, s, rows, live, l2 == 0)
        # A step that changed nothing (all entering atoms left again) would repeat forever;
        # with one atom per step the entering sign is provably right (exact arithmetic).
        single[rows[(_take(s, rows, n) != 0).eq(before).all(1)]] = True
    else:  # max_iter steps used: say which samples could still improve
        rows = live.nonzero().flatten()
        if len(rows):
            g = neg_gradient(G, _take(c, rows, n), l2, _take(z, rows, n), problem.D)
            excess = (g if nonneg else g.abs()) - _take(pen, rows, n)
            live[rows] = ((_take(z, rows, n) == 0) & (excess > _take(delta, rows, n))).any(1)
    return z, iters, live


def _take(t, rows, n):
    """t[rows] along dim 0: the tensor itself when every sample is selected, a narrower view of a
    broadcast row (per-feature penalties), else index_select (much faster than advanced indexing
    on CPU)."""
    if len(rows) == n:
        return t
    return t[: len(rows)] if t.stride(0) == 0 else t.index_select(0, rows)


def _lawson_hanson(A, c, pen, z, s, rows, live, null_steps):
    """Refit `rows` on their sign patterns, stepping back to stay sign-consistent (in place).

    Each support is factored once (`factorize`); the atoms that the steps drop are then held at
    zero through the same factor (`SupportFactor.solve_without`), so a drop costs no new factorization.
    A singular support system (a Lasso support of d + 1 atoms, `null_steps`) is first resolved by
    a swap (`_null_step`); where that is impossible the sample is left uncertified.
    """
    n, m = z.shape
    sgn = _take(s, rows, n)
    for f in factorize(A, _take(c, rows, n), _take(pen, rows, n), sgn != 0, sgn):
        singular = rows[f.rows[~f.ok]]
        if len(singular):
            swapped = _null_step(A, pen, z, s, singular) if null_steps else torch.zeros_like(singular, dtype=torch.bool)
            live[singular[~swapped]] = False  # leave the sample uncertified
            if bool(swapped.any()):
                _lawson_hanson(A, c, pen, z, s, singular[swapped], live, null_steps)
        if not bool(f.ok.all()):
            f = f.select(f.ok.nonzero().flatten())
        if len(f.rows) == 0:
            continue
        sub = rows[f.rows]
        safe = f.idx.clamp(max=m - 1)
        zo = entries(z, sub, safe) * f.valid  # current point, slot order
        sg = entries(sgn, f.rows, safe) * f.valid
        dropped = torch.zeros_like(f.valid)
        done = torch.zeros_like(f.ok)
        zn = f.u
        for _ in range(f.idx.shape[1] + 1):
            bad = f.valid & ~dropped & (zn * sg <= 0)
            clean = ~bad.any(1)
            fin = (clean & ~done).nonzero().flatten()
            if len(fin):  # the slots cover every earlier non-zero of these rows: write them all
                idx = f.idx.index_select(0, fin)
                put_rows(z, sub[fin], zn.index_select(0, fin), idx)
                put_rows(s, sub[fin], torch.where(dropped, 0.0, sg).index_select(0, fin), idx)
                done |= clean
                if bool(done.all()):
                    break
                if 2 * int(done.sum()) >= len(done):  # compact only when half are done (copies of L are costly)
                    keep = (~done).nonzero().flatten()
                    f, sub, done = f.select(keep), sub[keep], done[keep]
                    zo, zn, sg, dropped, bad = (t.index_select(0, keep) for t in (zo, zn, sg, dropped, bad))
            # step from zo towards zn until the first coordinate reaches zero, drop it, refit without it
            den = zo - zn
            ratio = torch.where(bad, torch.where(den != 0, zo / den, torch.zeros_like(den)), float("inf"))
            alpha = ratio.min(1).values.clamp(0, 1)
            dropped = dropped | (bad & (ratio <= alpha[:, None]))
            zo = torch.where(dropped, torch.zeros_like(zo), zo + alpha[:, None] * (zn - zo))
            zn = f.solve_without(dropped)


def _null_step(A, pen, z, s, rows):
    """Swap for Lasso supports whose system is singular (d + 1 atoms in R^d, or dependent atoms).

    With v in the null space of the support's atoms (vD = 0, from G_SS v = 0), moving z along v
    keeps the residual; the ℓ1 term changes at rate Σ λ1 w_i s_i v_i, which is negative for the
    orientation in which the entering atoms (z_i = 0) move with their signs, because they violate
    KKT (derivation: Σ_i v_i (D r)_i = 0 and (D r)_i = λ1 w_i s_i on the old support). So step along v
    until the first old coordinate reaches zero and drop it: the objective decreases and the support
    shrinks by one. Updates z and s in place; returns, per row, whether the swap was made (False:
    not a rank-one deficiency or no descent, the sample is then left uncertified).
    """
    done = torch.zeros(len(rows), dtype=torch.bool, device=z.device)
    for k, i in enumerate(rows.tolist()):  # rare (one swap per excess atom): a loop is clear and cheap
        S = (s[i] != 0).nonzero().flatten()
        evals, evecs = torch.linalg.eigh(A[S][:, S])
        if not bool(evals[0] <= 1e-10 * evals[-1]) or (len(S) > 1 and not bool(evals[1] > 1e-10 * evals[-1])):
            continue  # not singular, or a null space of dimension > 1
        v, zi, si = evecs[:, 0], z[i, S], s[i, S]
        slope = (pen[i, S] * si * v).sum()
        v = -v if slope > 0 else v
        entering = zi == 0
        if not bool(slope.abs() > 0) or not bool((v[entering] * si[entering] >= 0).all()):
            continue
        block = zi * v < 0
        if not bool(block.any()):
            continue
        t = torch.where(block, -zi / v, float("inf"))
        hit = int(t.argmin())
        zi = zi + t[hit] * v
        zi[hit] = 0.0
        z[i, S] = zi
        s[i, S[hit]] = 0.0
        done[k] = True
    return done
