"""The transparent reference: cvxpy + Clarabel, a DPP-parameterized problem compiled once per call
and re-solved per sample (parameters: the sample x and the per-atom penalty λ1 w).

Interior-point solutions carry tiny non-zeros, so the support is never read off a bare threshold:
candidate supports (|z̃_j| above a ladder of relative levels) are refitted exactly and the first
refit that satisfies KKT is returned, the empty support (z* = 0) last; if none does, the raw
solution is returned and its certificate fails (KKT). At tolerance 1e-12 Clarabel can stop with
InsufficientProgress (cvxpy raises SolverError): the sample is then re-solved with the settings of
CLARABEL_RETRIES, which is enough to find the support for the exact refit. Atoms are rows of D.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import torch

from synthsae.solvers.active_set import KKT_DELTA
from synthsae.solvers.methods import METHODS
from synthsae.solvers.refit import kkt_ok, neg_gradient, refit

CLARABEL_SETTINGS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10,
                     "max_iter": 500}
# Tried in turn when Clarabel raises (e.g. InsufficientProgress): default tolerances, then shorter
# interior-point steps (seen to get past stalls that the default tolerances also hit). The exact
# refit afterwards needs only the support, not a tight point.
CLARABEL_RETRIES = ({}, {"max_step_fraction": 0.9}, {"equilibrate_enable": False})
# Candidate supports |z̃_j| > level·max|z̃|; the last level (inf) is the empty support, z* = 0, whose
# interior-point approximation is a vector of ~1e-14 entries that no finite level would empty.
_LEVELS = (1e-9, 1e-7, 1e-5, 1e-3, float("inf"))


def _build(D: np.ndarray, l2: float, nonneg: bool):
    m, d = D.shape
    z = cp.Variable(m, nonneg=nonneg)
    x = cp.Parameter(d)
    pen = cp.Parameter(m, nonneg=True)
    l1_term = pen @ z if nonneg else pen @ cp.abs(z)
    obj = 0.5 * cp.sum_squares(x - D.T @ z) + l1_term + 0.5 * l2 * cp.sum_squares(z)
    return cp.Problem(cp.Minimize(obj)), z, x, pen


@METHODS.register("cvxpy")
def solve_cvxpy(problem, *, max_iter=None, init=None):
    """Returns z (n, m) float64 (certified refits where found) and Clarabel iterations per sample."""
    prob, zv, xp, penp = _build(problem.D.cpu().numpy(), problem.l2, problem.nonneg)
    X, pen = problem.X.cpu().numpy(), problem.penalty.cpu().numpy()
    raw = np.zeros((problem.n, problem.m))
    iters = torch.zeros(problem.n, dtype=torch.long)
    settings = dict(CLARABEL_SETTINGS)
    if max_iter is not None:
        settings["max_iter"] = max_iter
    for i in range(problem.n):
        xp.value, penp.value = X[i], pen[i]
        retries = ({"max_iter": settings["max_iter"], **extra} for extra in CLARABEL_RETRIES)
        if _solve(prob, settings) or any(_solve(prob, retry) for retry in retries):
            raw[i] = zv.value
            iters[i] = prob.solver_stats.num_iters or 0
        # else: z stays 0; the certified refit below keeps it only if 0 is the optimum
    zt = torch.from_numpy(raw).to(problem.X)
    return certified_refit(problem, zt), iters.to(problem.X.device)


def _solve(prob, settings) -> bool:
    """Clarabel with `settings`; False when it raises SolverError (e.g. InsufficientProgress at tight
    tolerances) or returns no point."""
    try:
        prob.solve(solver=cp.CLARABEL, **settings)
    except cp.SolverError:
        return False
    return prob.variables()[0].value is not None


def certified_refit(problem, zt: torch.Tensor) -> torch.Tensor:
    """Replace each approximate solution by the first exact refit (support |z̃_j| > level·max|z̃|)
    that satisfies KKT; keep the raw solution where no candidate does."""
    G, c, pen = problem.gram, problem.correlations, problem.penalty
    delta = KKT_DELTA * 10 * (pen + c.abs().amax(1, keepdim=True))
    out, todo = zt.clone(), torch.ones(problem.n, dtype=torch.bool, device=zt.device)
    top = zt.abs().amax(1, keepdim=True)
    for level in _LEVELS:
        rows = todo.nonzero().flatten()
        if len(rows) == 0:
            break
        mask = zt[rows].abs() > level * top[rows]  # level inf: empty (also where top = 0: nan compares False)
        sgn = torch.sign(zt[rows]) * mask
        zf, ok = refit(problem.system, c[rows], pen[rows], mask, sgn)
        g = neg_gradient(G, c[rows], problem.l2, zf)
        good = ok & ((zf * sgn) > 0).eq(mask).all(1) & kkt_ok(g, zf, pen[rows], problem.nonneg, delta[rows])
        out[rows[good]] = zf[good]
        todo[rows[good]] = False
    return out
