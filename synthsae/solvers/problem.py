"""The sparse-coding problem, kept apart from the solvers: objective, dual, duality gap, KKT.

Convention: atoms are the **rows** of D (m, d); a sample x (d,) is approximated by z D, z (m,).
Per sample (our scale: no 1/n, no 1/d factor):

    P(z) = ½‖x − zD‖² + λ1 Σ_j w_j |z_j| + (λ2/2)‖z‖²      (and z ≥ 0 when nonneg)

scikit-learn's `Lasso` minimises (1/(2·n_samples))‖y − Xw‖² + α‖w‖₁; coding one x with design Dᵀ
(d × m) has n_samples = d, so α = λ1 / d (`sparse_encode` does this division itself: pass α = λ1).

Dual (derivation: substitute r = x − zD, Lagrange multiplier θ for that constraint):
    Dual(θ) = ⟨x, θ⟩ − ½‖θ‖² − Σ_j g_j*(d_j·θ),  g_j(t) = λ1 w_j |t| + (λ2/2) t²  (+ t ≥ 0).
* λ2 > 0: g_j*(u) = (|u| − λ1 w_j)₊² / (2λ2); nonneg: (u − λ1 w_j)₊² / (2λ2). We use θ = r.
* λ2 = 0: g_j* is the indicator of |u| ≤ λ1 w_j (nonneg: u ≤ λ1 w_j); we use the feasible point
  θ = r / max(1, max_j |u_j| / (λ1 w_j)) (nonneg: max_j u_j / (λ1 w_j)), u = D r.
The gap P(z) − Dual(θ(z)) is ≥ 0 for every feasible z (weak duality) and 0 at the optimum.
All certificates are computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from synthsae._rng import resolve_device
from synthsae.errors import fail, require

F64 = torch.float64
# Rounding allowance when checking dual feasibility at λ2 = 0 (the scaled θ is feasible up to ulps).
_FEAS_RTOL = 1e-12


def as_float64(name: str, value, device: torch.device) -> torch.Tensor:
    """Convert a tensor / numpy array to a float64 tensor on `device`, rejecting non-real data."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        fail(name, value, "not an array", "a torch.Tensor or numpy.ndarray of real numbers")
    if value.dtype == torch.bool or value.is_complex():
        fail(name, value.dtype, "wrong dtype", "a real (integer or floating) dtype")
    out = value.detach().to(device=device, dtype=F64)
    require(bool(torch.isfinite(out).all()), name, "array with NaN/inf", "contains NaN or inf",
            "finite values everywhere")
    return out


def _scalar(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        fail(name, value, "not a real number", "a finite float >= 0")
    value = float(value)
    require(np.isfinite(value) and value >= 0, name, value, "must be finite and >= 0", "a finite float >= 0")
    return value


@dataclass(frozen=True, eq=False)
class SparseCodingProblem:
    """A batch of n sparse-coding problems sharing one dictionary. Build it with `create`.

    X (n, d) float64 samples; D (m, d) float64, atoms are rows; `weights` (1, m) or (n, m) > 0.
    """

    X: torch.Tensor
    D: torch.Tensor
    l1: float
    l2: float
    weights: torch.Tensor
    nonneg: bool

    @classmethod
    def create(cls, X, D, l1, l2=0.0, weights=None, nonneg=False, device=None) -> SparseCodingProblem:
        """Validate and convert the inputs (see module docstring for the objective)."""
        dev = resolve_device(device)
        X = as_float64("X", X, dev)
        D = as_float64("D", D, dev)
        require(X.ndim == 2, "X.shape", tuple(X.shape), "X must be 2-D", "(n, d): one sample per row")
        require(D.ndim == 2, "D.shape", tuple(D.shape), "D must be 2-D", "(m, d): one atom per row")
        if X.shape[1] != D.shape[1]:
            hint = " (D looks transposed: atoms must be rows)" if X.shape[1] == D.shape[0] else ""
            fail("X.shape / D.shape", (tuple(X.shape), tuple(D.shape)),
                 f"X has d = {X.shape[1]} columns but D atoms have length {D.shape[1]}{hint}",
                 "X (n, d) and D (m, d) with the same d")
        require(D.shape[0] > 0 and D.shape[1] > 0, "D.shape", tuple(D.shape), "empty dictionary", "m, d >= 1")
        norms = D.norm(dim=1)
        zero = norms <= 1e-12 * float(norms.max())
        require(not bool(zero.any()), "D", f"atoms {zero.nonzero().flatten().tolist()[:10]}",
                "zero-norm atoms cannot be used", "every row of D with a non-zero norm")
        l1, l2 = _scalar("l1", l1), _scalar("l2", l2)
        require(l1 > 0 or l2 > 0, "(l1, l2)", (l1, l2), "with l1 = l2 = 0 there is no penalty "
                "(plain least squares has no unique sparse solution nor this certificate)", "l1 > 0 or l2 > 0")
        require(isinstance(nonneg, bool), "nonneg", nonneg, "not a bool", "True or False")
        n, m = X.shape[0], D.shape[0]
        if weights is None:
            w = torch.ones(1, m, dtype=F64, device=dev)
        else:
            w = as_float64("weights", weights, dev)
            ok = tuple(w.shape) in ((m,), (n, m))
            require(ok, "weights.shape", tuple(w.shape), "wrong shape", f"({m},) per feature or ({n}, {m}) per sample")
            require(bool((w > 0).all()), "weights", "min = %g" % float(w.min()), "weights must be > 0",
                    "strictly positive finite weights")
            w = w.reshape(-1, m)
        return cls(X, D, l1, l2, w, nonneg)

    # ---- sizes and cached pieces ---------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def m(self) -> int:
        return self.D.shape[0]

    @property
    def kind(self) -> str:
        base = "lasso" if self.l2 == 0 else "elastic_net"
        if not bool((self.weights == 1).all()):
            base = "weighted_" + base
        return ("nonneg_" if self.nonneg else "") + base

    @cached_property
    def gram(self) -> torch.Tensor:
        """G = D Dᵀ (m, m)."""
        return self.D @ self.D.T

    @cached_property
    def system(self) -> torch.Tensor:
        """G + λ2 I bordered by a zero row/column, (m+1, m+1) (see `refit.system_matrix`)."""
        from synthsae.solvers.refit import system_matrix
        return system_matrix(self.gram, self.l2)

    @cached_property
    def norm_sq(self) -> float:
        """‖D‖₂² (largest eigenvalue of the smaller of D Dᵀ, Dᵀ D)."""
        D = self.D
        return float(torch.linalg.eigvalsh(D.T @ D if D.shape[0] >= D.shape[1] else self.gram)[-1])

    @cached_property
    def correlations(self) -> torch.Tensor:
        """c = X Dᵀ (n, m): c_ij = d_j · x_i."""
        return self.X @ self.D.T

    @cached_property
    def penalty(self) -> torch.Tensor:
        """λ1 w, (n, m) (broadcast of per-feature weights)."""
        return (self.l1 * self.weights).expand(self.n, self.m)

    def subset(self, rows: torch.Tensor) -> SparseCodingProblem:
        """The problem restricted to samples `rows` (indices or bool mask)."""
        w = self.weights if self.weights.shape[0] == 1 else self.weights[rows]
        sub = SparseCodingProblem(self.X[rows], self.D, self.l1, self.l2, w, self.nonneg)
        for shared in ("gram", "system", "norm_sq"):  # same dictionary: reuse what is already built
            if shared in self.__dict__:
                sub.__dict__[shared] = self.__dict__[shared]
        if "correlations" in self.__dict__:
            sub.__dict__["correlations"] = self.correlations[rows]
        return sub

    # ---- primal, dual, gap, KKT ----------------------------------------------------------------
    # Each takes optional precomputed pieces (r = x − zD, u = D r per sample) so that `certify`
    # forms the residual and its correlations once instead of once per quantity.
    def objective(self, z: torch.Tensor, r: torch.Tensor | None = None) -> torch.Tensor:
        """P(z) per sample (n,), float64; +inf where a nonneg problem gets a negative entry."""
        z = z.to(F64)
        r = self.X - z @ self.D if r is None else r
        p = 0.5 * (r * r).sum(1) + (self.penalty * z.abs()).sum(1) + 0.5 * self.l2 * (z * z).sum(1)
        if self.nonneg:
            p = torch.where((z < 0).any(1), torch.full_like(p, float("inf")), p)
        return p

    def dual_point(self, z: torch.Tensor) -> torch.Tensor:
        """The dual point θ(z) (n, d) built from the residual r = x − zD (see module docstring)."""
        r = self.X - z.to(F64) @ self.D
        return self._dual_point(r, r @ self.D.T)[0]

    def _dual_point(self, r: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """θ and D θ per sample from r and u = D r."""
        if self.l2 > 0:
            return r, u
        ratio = (u if self.nonneg else u.abs()) / self.penalty
        scale = ratio.max(1).values.clamp(min=1.0)[:, None]
        return r / scale, u / scale

    def dual(self, theta: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Dual(θ) per sample (n,); −inf where θ is infeasible (λ2 = 0). u: D θ if already known."""
        u = theta @ self.D.T if u is None else u
        val = (self.X * theta).sum(1) - 0.5 * (theta * theta).sum(1)
        excess = (u if self.nonneg else u.abs()) - self.penalty
        if self.l2 > 0:
            return val - (excess.clamp(min=0) ** 2).sum(1) / (2 * self.l2)
        bad = (excess > _FEAS_RTOL * self.penalty).any(1)
        return torch.where(bad, torch.full_like(val, -float("inf")), val)

    def gap(self, z: torch.Tensor) -> torch.Tensor:
        """Duality gap P(z) − Dual(θ(z)) per sample, float64 (≥ 0 up to rounding)."""
        return self.objective(z) - self.dual(self.dual_point(z))

    def kkt_violation(self, z: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Largest violation of the optimality conditions per sample, relative to
        scale_i = max(max_j |d_j·x_i|, max_j λ1 w_ij). With g = D r − λ2 z:
        z_j > 0: |g_j − λ1 w_j|;  z_j < 0: |g_j + λ1 w_j| (nonneg: infeasible, +inf);
        z_j = 0: (|g_j| − λ1 w_j)₊ (nonneg: (g_j − λ1 w_j)₊). u: D r if already known."""
        z = z.to(F64)
        u = (self.X - z @ self.D) @ self.D.T if u is None else u
        g = u - self.l2 * z if self.l2 else u
        pen = self.penalty
        off = ((g if self.nonneg else g.abs()) - pen).clamp(min=0)
        v = torch.where(z > 0, (g - pen).abs(), torch.where(z < 0, (g + pen).abs(), off))
        if self.nonneg:
            v = torch.where(z < 0, torch.full_like(v, float("inf")), v)
        scale = torch.maximum(self.correlations.abs().amax(1), pen.amax(1)).clamp(min=1e-300)
        return v.amax(1) / scale if self.m else torch.zeros(self.n, dtype=F64)

    def certify(self, z: torch.Tensor, tol: float, kkt_tol: float) -> dict[str, torch.Tensor]:
        """Objective, gap, relative gap = gap / max(objective, tiny), KKT violation, converged."""
        z = z.to(F64)
        r = self.X - z @ self.D
        u = r @ self.D.T
        obj = self.objective(z, r)
        gap = obj - self.dual(*self._dual_point(r, u))
        rel = gap / obj.clamp(min=torch.finfo(F64).tiny)
        rel = torch.where(gap == 0, torch.zeros_like(rel), rel)
        kkt = self.kkt_violation(z, u)
        conv = (rel <= tol) & (kkt <= kkt_tol) & torch.isfinite(obj)
        return {"objective": obj, "gap": gap, "rel_gap": rel, "kkt_violation": kkt, "converged": conv}
