"""Closed forms for dictionaries with orthonormal rows (D Dᵀ = I, m ≤ d; atoms are rows):
z* = soft(Dx, λ1 w)/(1 + λ2), and for nonneg codes z* = ReLU(Dx − λ1 w)/(1 + λ2)."""

from __future__ import annotations

import torch

from synthsae.errors import require
from synthsae.solvers.methods import METHODS

ORTHONORMAL_ATOL = 1e-6


@METHODS.register("closed_form")
def solve_closed_form(problem, *, max_iter=None, init=None):
    """Returns the closed-form z (n, m) float64; ValueError unless D has orthonormal rows."""
    eye = torch.eye(problem.m, dtype=problem.D.dtype, device=problem.D.device)
    err = float((problem.gram - eye).abs().max())
    require(err <= ORTHONORMAL_ATOL, "D", f"max|D Dᵀ − I| = {err:.3g}", "the closed form needs orthonormal "
            "atoms (rows)", f"D with D Dᵀ = I to {ORTHONORMAL_ATOL} (or another method)")
    c, pen = problem.correlations, problem.penalty
    if problem.nonneg:
        z = (c - pen).clamp(min=0)
    else:
        z = torch.sign(c) * (c.abs() - pen).clamp(min=0)
    return z / (1 + problem.l2), torch.zeros(problem.n, dtype=torch.long, device=c.device)
