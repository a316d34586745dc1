"""Benchmark: synthsae.solvers vs cvxpy+Clarabel vs scikit-learn coordinate descent, same data, same run.

Prints, per case, the median over --repeats interleaved runs of the time per sample, the largest
certified relative gap (gap / objective, computed by synthsae's certificate in float64 for every
method's codes) and the certified fraction (rel. gap <= 1e-9 and KKT <= 1e-7).

Two timings: "wall" with every library at its default threading on this machine (torch: 2 threads;
scikit-learn: its Cython CD is single-threaded, the Gram product uses BLAS threads), and "cpu":
process CPU time with torch and BLAS pinned to one thread (work done, insensitive to other jobs).

scikit-learn scale: `sparse_encode(alpha=λ1)` divides α by n_features itself, the same problem as
ours (no 1/n, no 1/d). It has no ℓ2 term, so the elastic net is coded as a Lasso on the augmented
dictionary [D, √λ2 I] and sample [x, 0] (the same problem); positive=True for non-negative codes.
Rows: `sparse_encode(algorithm="lasso_cd")` at its default tolerance (what users run), and
`Lasso(precompute=Gram, tol=1e-12)` (a tolerance tight enough to aim at our certified gap).

Data: unit-norm Gaussian dictionary (atoms are rows, m × d), k active atoms per sample with
magnitudes U[1, 3] (random signs, positive for non-negative cases), noise σ = 0.01.
The "paired" column is the median (and range) over rounds of each method's time divided by ours in
the same round: the machine's state drifts between rounds, and a ratio taken within a round
cancels most of that drift.
Usage: python benchmarks/solve.py [--quick] [--repeats R] [--mode wall|cpu|both] [--n N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from synthsae.solvers import SparseCodingProblem, sparse_code
from synthsae.testing.dictionaries import gaussian_dictionary
from synthsae.testing.problems import sparse_code_matrix

CASES = [  # name, d, m, n, k, l1, l2, nonneg
    ("lasso", 64, 256, 1000, 8, 0.1, 0.0, False),
    ("nonneg elastic net", 256, 1024, 500, 16, 0.1, 0.1, True),
    ("lasso, large supports", 256, 1024, 200, 64, 0.1, 0.0, False),
]
N_CVXPY = 20


def data(d, m, n, k, nonneg):
    D = gaussian_dictionary(m, d, 0)
    Z = sparse_code_matrix(n, m, k, 1.0, 3.0, nonneg, 1)
    g = torch.Generator().manual_seed(2)
    return Z @ D + 0.01 * torch.randn(n, d, generator=g, dtype=torch.float64), D


def timed(fn, clock):
    t = clock()
    out = fn()
    return out, clock() - t


def sklearn_solvers(X, D, l1, l2, nonneg):
    from sklearn.decomposition import sparse_encode
    from sklearn.linear_model import Lasso
    Da, Xa = D.numpy(), X.numpy()
    if l2 > 0:
        Da = np.hstack([Da, np.sqrt(l2) * np.eye(D.shape[0])])
        Xa = np.hstack([Xa, np.zeros((X.shape[0], D.shape[0]))])

    def encode():
        return sparse_encode(Xa, Da, algorithm="lasso_cd", alpha=l1, positive=nonneg, max_iter=10000)

    def tight():
        gram = Da @ Da.T
        lasso = Lasso(alpha=l1 / Da.shape[1], fit_intercept=False, precompute=gram, tol=1e-12,
                      max_iter=100000, positive=nonneg)
        return lasso.fit(Da.T, Xa.T).coef_.reshape(X.shape[0], -1)

    return {"sklearn sparse_encode lasso_cd": encode, "sklearn Lasso(Gram, tol=1e-12)": tight}


def run_case(name, d, m, n, k, l1, l2, nonneg, repeats, mode):
    X, D = data(d, m, n, k, nonneg)
    prob = SparseCodingProblem.create(X, D, l1, l2, nonneg=nonneg)
    clock = time.perf_counter if mode == "wall" else time.process_time
    methods = {"synthsae auto": lambda: sparse_code(X, D, l1, l2, nonneg=nonneg).z}
    methods.update(sklearn_solvers(X, D, l1, l2, nonneg))
    methods[f"cvxpy+Clarabel ({N_CVXPY} samples)"] = (
        lambda: sparse_code(X[:N_CVXPY], D, l1, l2, nonneg=nonneg, method="cvxpy", warn=False).z)
    sparse_code(X[:10], D, l1, l2, nonneg=nonneg)  # warm-up
    times = {key: [] for key in methods}
    codes = {}
    for rep in range(repeats):
        for key in list(methods) if rep % 2 == 0 else list(methods)[::-1]:  # alternate the order
            fn = methods[key]
            if key.startswith("cvxpy") and rep > 0:
                continue  # too slow to repeat; its ratio is orders of magnitude anyway
            codes[key], t = timed(fn, clock)
            times[key].append(t / (N_CVXPY if key.startswith("cvxpy") else n))
    ours = statistics.median(times["synthsae auto"])
    print(f"\n== {name}: d={d} m={m} n={n} k={k} l1={l1} l2={l2} nonneg={nonneg}  [{mode}, median of {repeats}]")
    print(f"{'method':34s} {'ms/sample':>10s} {'vs ours':>8s} {'paired, range':>15s} {'max rel gap':>12s} {'certified':>9s}")
    for key in methods:
        z = torch.as_tensor(np.asarray(codes[key]), dtype=torch.float64)
        sub = prob if z.shape[0] == n else prob.subset(torch.arange(z.shape[0]))
        cert = sub.certify(z, tol=1e-9, kkt_tol=1e-7)
        t = statistics.median(times[key])
        # the ratio within each round (same machine state), then its median and range over rounds
        paired = [a / b for a, b in zip(times[key], times["synthsae auto"])]
        spread = "" if len(paired) < 2 or key == "synthsae auto" else \
            f"{statistics.median(paired):.2f} ({min(paired):.2f}-{max(paired):.2f})"
        print(f"{key:34s} {t * 1e3:10.4f} {t / ours:7.1f}x {spread:>15s} {float(cert['rel_gap'].max()):12.2e} "
              f"{float(cert['converged'].double().mean()):9.3f}")
    res = sparse_code(X, D, l1, l2, nonneg=nonneg)
    print(f"ours: exact zeros (support = z != 0), mean |S| = {float(res.support.sum(1).double().mean()):.1f}, "
          f"max |S| = {int(res.support.sum(1).max())}, methods used = {sorted(set(res.method))}")


def gpu_throughput(n=100_000):
    """Problems per second on CUDA at n = 100,000 for the first two cases (only when a GPU is present)."""
    for name, d, m, _, k, l1, l2, nonneg in CASES[:2]:
        X, D = data(d, m, n, k, nonneg)
        sparse_code(X[:100], D, l1, l2, nonneg=nonneg, device="cuda")
        torch.cuda.synchronize()
        res, t = timed(lambda: sparse_code(X, D, l1, l2, nonneg=nonneg, device="cuda"), time.perf_counter)
        torch.cuda.synchronize()
        print(f"GPU {name}: {n / t:,.0f} problems/s, certified {float(res.converged.double().mean()):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n / 5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=["wall", "cpu", "both"], default="both")
    ap.add_argument("--n", type=int, default=None, help="samples per case instead of the issue's sizes (e.g. a small batch)")
    args = ap.parse_args()
    for mode in (["wall", "cpu"] if args.mode == "both" else [args.mode]):
        threads = 2 if mode == "wall" else 1
        torch.set_num_threads(threads)
        with threadpool_limits(limits=None if mode == "wall" else 1):
            print(f"\n######## {mode}: torch threads {torch.get_num_threads()}")
            for name, d, m, n, k, l1, l2, nonneg in CASES:
                size = args.n if args.n is not None else (n // 5 if args.quick else n)
                run_case(name, d, m, size, k, l1, l2, nonneg, args.repeats, mode)
    if torch.cuda.is_available():
        gpu_throughput()


if __name__ == "__main__":
    main()
