"""Benchmark: synthsae.solvers vs cvxpy+Clarabel vs scikit-learn `sparse_encode(algorithm="lasso_cd")`.

Same data, same run. Prints time per sample and the certified relative gap (gap / max(objective, tiny),
computed by synthsae in float64) of each method's codes, plus whether zeros are exact.
Data: unit-norm Gaussian dictionary (atoms are rows, m × d), k active atoms per sample with
magnitudes U[1, 3] (random signs for the Lasso, positive for the non-negative case), noise σ = 0.01.
sklearn has no ℓ2 term in `sparse_encode`: the elastic net is coded as a Lasso on the augmented
dictionary [D, √λ2 I] and sample [x, 0], the same problem. Usage: python benchmarks/solve.py [--quick]
"""

from __future__ import annotations

import sys
import time

import torch

from synthsae.solvers import SparseCodingProblem, sparse_code
from synthsae.testing.dictionaries import gaussian_dictionary
from synthsae.testing.problems import sparse_code_matrix

CASES = [  # name, d, m, n, k, l1, l2, nonneg
    ("lasso", 64, 256, 1000, 8, 0.1, 0.0, False),
    ("nonneg elastic net", 256, 1024, 500, 16, 0.1, 0.1, True),
]


def rel_gap_report(prob, z):
    cert = prob.certify(torch.as_tensor(z, dtype=torch.float64), tol=1e-9, kkt_tol=1e-7)
    return float(cert["rel_gap"].max()), float(cert["converged"].float().mean())


def main(quick: bool) -> None:
    torch.set_num_threads(2)
    from sklearn.decomposition import sparse_encode
    print(f"torch threads: {torch.get_num_threads()}")
    for name, d, m, n, k, l1, l2, nonneg in CASES:
        n = n // 5 if quick else n
        D = gaussian_dictionary(m, d, 0)
        Z = sparse_code_matrix(n, m, k, 1.0, 3.0, nonneg, 1)
        g = torch.Generator().manual_seed(2)
        X = Z @ D + 0.01 * torch.randn(n, d, generator=g, dtype=torch.float64)
        prob = SparseCodingProblem.create(X, D, l1, l2, nonneg=nonneg)
        print(f"\n== {name}: d={d} m={m} n={n} k={k} l1={l1} l2={l2} nonneg={nonneg}")
        rows = []
        sparse_code(X[:10], D, l1, l2, nonneg=nonneg)  # warm-up
        t = time.perf_counter()
        res = sparse_code(X, D, l1, l2, nonneg=nonneg, method="auto")
        t_ours = (time.perf_counter() - t) / n
        rows.append(("synthsae auto", t_ours, float(res.rel_gap.max()), float(res.converged.float().mean()), True))
        n_cvx = min(50, n)
        t = time.perf_counter()
        rc = sparse_code(X[:n_cvx], D, l1, l2, nonneg=nonneg, method="cvxpy", warn=False)
        t_cvx = (time.perf_counter() - t) / n_cvx
        rows.append((f"cvxpy+Clarabel ({n_cvx} samples)", t_cvx, float(rc.rel_gap.max()),
                     float(rc.converged.float().mean()), True))
        Da, Xa = D.numpy(), X.numpy()
        if l2 > 0:
            import numpy as np
            Da = np.hstack([Da, np.sqrt(l2) * np.eye(m)])
            Xa = np.hstack([Xa, np.zeros((n, m))])
        t = time.perf_counter()
        zs = sparse_encode(Xa, Da, algorithm="lasso_cd", alpha=l1, positive=nonneg, max_iter=10000)
        t_sk = (time.perf_counter() - t) / n
        gap, conv = rel_gap_report(prob, zs)
        rows.append(("sklearn sparse_encode lasso_cd", t_sk, gap, conv, None))
        print(f"{'method':36s} {'ms/sample':>10s} {'max rel gap':>12s} {'certified':>9s}")
        for label, ts, gp, cv, _ in rows:
            print(f"{label:36s} {ts * 1e3:10.4f} {gp:12.2e} {cv:9.3f}")
        print(f"speed-up vs cvxpy: {t_cvx / t_ours:.1f}x   vs sklearn: {t_sk / t_ours:.2f}x   "
              f"exact zeros: support = z != 0 (mean |S| = {float(res.support.sum(1).float().mean()):.2f})")


if __name__ == "__main__":
    main("--quick" in sys.argv)
