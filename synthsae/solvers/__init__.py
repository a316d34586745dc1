"""Exact sparse coding with optimality certificates (atoms are the rows of D (m, d); x ≈ zD).

`sparse_code(X, D, l1, l2, weights, nonneg, method)` returns codes with exact zeros, duality gaps
(float64) and KKT violations per sample. See `problem.py` for the objective, scale and dual.
"""

from synthsae.solvers.api import NotCertifiedWarning, SparseCodeResult, sparse_code
from synthsae.solvers.jacobian import SupportJacobian, active_set_jacobian, lipschitz_bound, support_jacobian
from synthsae.solvers.methods import METHODS
from synthsae.solvers.problem import SparseCodingProblem
from synthsae.solvers.weights import adaptive_weights

__all__ = ["sparse_code", "SparseCodeResult", "NotCertifiedWarning", "SparseCodingProblem", "METHODS",
           "lipschitz_bound", "active_set_jacobian", "support_jacobian", "SupportJacobian",
           "adaptive_weights"]
