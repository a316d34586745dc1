"""`sparse_code`: exact, certified sparse codes for a batch of samples against a known dictionary."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from synthsae.errors import fail, require
from synthsae.solvers import active_set, closed_form, cvxpy_ref, fista  # noqa: F401  (register methods)
from synthsae.solvers.methods import METHODS
from synthsae.solvers.problem import SparseCodingProblem


class NotCertifiedWarning(UserWarning):
    """Some samples were returned without a passing optimality certificate."""


@dataclass(frozen=True, eq=False)
class SparseCodeResult:
    """Codes and their certificates. All tensors float64 (n, ...) on the solve device.

    z (n, m) with exact zeros off `support`; objective, gap (duality gap, float64, ≥ 0 up to rounding),
    rel_gap = gap / max(objective, tiny), kkt_violation (relative, see
    `SparseCodingProblem.kkt_violation`), converged = rel_gap ≤ tol and kkt_violation ≤ kkt_tol,
    iterations and the method that produced each sample's code.
    """

    z: torch.Tensor
    support: torch.Tensor
    objective: torch.Tensor
    gap: torch.Tensor
    rel_gap: torch.Tensor
    kkt_violation: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    method: tuple[str, ...]
    l1: float
    l2: float
    nonneg: bool
    tol: float

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


def _run(name, problem, max_iter, init):
    z, iters = METHODS.get(name)(problem, max_iter=max_iter, init=init)
    return z, iters


def sparse_code(X, D, l1, l2=0.0, weights=None, nonneg=False, method="auto", tol=1e-9, kkt_tol=1e-7,
                max_iter=None, device=None, warn=True) -> SparseCodeResult:
    """Exact sparse codes with certificates. Atoms are the **rows** of D (m, d); X is (n, d).

    Per sample minimises  ½‖x − zD‖² + λ1 Σ_j w_j |z_j| + (λ2/2)‖z‖²  (z ≥ 0 if `nonneg`).
    Scale: no 1/n and no 1/d (scikit-learn `Lasso` on design Dᵀ uses α = λ1/d).
    weights: None, (m,) per feature or (n, m) per sample, all > 0.
    method: "auto" (active set, then FISTA, then cvxpy for samples whose certificate fails, warning
    if any still fails), "active_set", "fista", "cvxpy", "closed_form" (orthonormal rows).
    The active set starts from zero and, where supports are still growing after a few steps,
    switches to signs predicted by float32 FISTA (`active_set.py`); either way the returned codes
    are exact refits.
    tol: on the relative duality gap; kkt_tol: on the relative KKT violation. max_iter: per method
    of the chain (None: each method's default). Numpy accepted; all work is float64 except the
    float32 sign prediction, on `device` (CPU default).
    Returns a `SparseCodeResult`; `converged[i]` is False (and a NotCertifiedWarning is issued when
    `warn`) wherever sample i's certificate fails, and its code is then not an exact optimum.
    """
    problem = SparseCodingProblem.create(X, D, l1, l2, weights, nonneg, device)
    require(isinstance(tol, float | int) and tol > 0, "tol", tol, "must be > 0", "a positive float, e.g. 1e-9")
    require(isinstance(kkt_tol, float | int) and kkt_tol > 0, "kkt_tol", kkt_tol, "must be > 0", "a positive float")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1):
        fail("max_iter", max_iter, "must be a positive int", "None or an int >= 1")
    if method != "auto" and method not in METHODS:
        METHODS.get(method)  # raises the did-you-mean error
    chain = ["active_set", "fista", "cvxpy"] if method == "auto" else [method]
    z, iters, used, cert = _solve_chain(problem, chain, tol, kkt_tol, max_iter)
    n = problem.n
    bad = int((~cert["converged"]).sum())
    if bad and warn:
        warnings.warn(f"{bad} of {n} samples are not certified (relative gap > {tol:g} or KKT violation > "
                      f"{kkt_tol:g}); see result.converged / rel_gap / kkt_violation. Try a larger max_iter "
                      "or method='cvxpy'.", NotCertifiedWarning, stacklevel=2)
    return SparseCodeResult(z=z, support=z != 0, iterations=iters, method=tuple(used), l1=problem.l1,
                            l2=problem.l2, nonneg=problem.nonneg, tol=float(tol), **cert)


def _solve_chain(problem, chain, tol, kkt_tol, max_iter):
    """Run the methods of `chain` in turn, each on the samples not yet certified. Returns z (n, m),
    iterations (n,), the method used per sample and the certificate of z (dict of (n,) tensors)."""
    n = problem.n
    z = torch.zeros(n, problem.m, dtype=torch.float64, device=problem.X.device)
    iters = torch.zeros(n, dtype=torch.long, device=z.device)
    used = [chain[0]] * n
    todo = torch.arange(n, device=z.device)
    cert = None
    for k, name in enumerate(chain):
        if len(todo) == 0:
            break
        sub = problem if k == 0 else problem.subset(todo)
        init = None if k == 0 else z[todo]
        zs, its = _run(name, sub, max_iter, init)
        part = sub.certify(zs, tol, kkt_tol)
        if k == 0:
            z, cert = zs, part
            better = torch.ones_like(part["converged"])
        else:  # a fallback replaces a code only where it is certified
            better = part["converged"]
            z[todo[better]] = zs[better]
            for key, val in cert.items():
                val[todo[better]] = part[key][better]
        iters[todo] += its.to(iters.device)
        for i in todo[better].tolist():
            used[i] = name
        todo = todo[~part["converged"]]
    if cert is None:  # empty batch
        cert = problem.certify(z, tol, kkt_tol)
    return z, iters, used, cert
