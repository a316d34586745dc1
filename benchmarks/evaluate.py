"""Benchmark: `synthsae.evaluate` and cross-seed `stability` at SynthSAEBench scale, on this machine.

    python benchmarks/evaluate.py            # full: 16,384 latents, d = 768, n = 100,000, 8 seeds
    python benchmarks/evaluate.py --quick    # 4,096 latents, d = 256, n = 20,000, 4 seeds

Goals (issue 5): evaluate <= 120 s; stability of 8 SAEs <= 300 s. Baseline measured in the same
run: the naive matching route (dense float64 scipy linear_sum_assignment on the full |cos|
matrix) against the sparse top-k route `evaluate` uses at this size, on the same matrices.

The world is the `synthsaebench-16k` preset when `synthsae.world` provides it, else a stand-in of
the same size (random unit atoms, Zipf-like firing with mean L0 = 25, magnitudes U[1, 2]) that
samples sparse codes directly. The SAEs are `synthsae.sae` TopK SAEs (k = 25) holding perturbed
copies of the truth, one per seed: their codes are sparse and their cost is a trained TopK SAE's.
"""

from __future__ import annotations

import argparse
import warnings
import dataclasses
import time

import torch
from scipy.optimize import linear_sum_assignment

from synthsae._rng import generator
from synthsae.metrics import evaluate, hungarian_match, stability
from synthsae.metrics.matching import normalize_rows
from synthsae.sae import make as make_sae


@dataclasses.dataclass
class _Codes:
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    n: int
    m: int


@dataclasses.dataclass
class _Batch:
    x: torch.Tensor
    codes: _Codes


class StandInWorld:
    """m features in d dims; each sample fires Poisson(L0) features drawn by firing probability."""

    def __init__(self, m: int, d: int, l0: float = 25.0, seed: int = 0):
        g = generator(seed)
        self.m, self.d = m, d
        self.dictionary = normalize_rows(torch.randn(m, d, generator=g))
        w = 1.0 / torch.arange(1, m + 1, dtype=torch.float64) ** 0.5
        self._p = w / w.sum()
        self._cdf = torch.cumsum(self._p, 0)
        self.l0 = l0
        self.firing_probabilities = (l0 * self._p).clamp(max=1).float()
        self.mean_magnitudes = torch.full((m,), 1.5)
        self.parents = None
        self.groups = None

    def sample(self, n, seed=0, device=None, dtype=torch.float32):
        g = generator(seed)
        k = torch.poisson(torch.full((n,), self.l0, dtype=torch.float64), generator=g).long().clamp(1, 200)
        rows = torch.repeat_interleave(torch.arange(n), k)
        u = torch.rand(int(k.sum()), generator=g, dtype=torch.float64)
        cols = torch.searchsorted(self._cdf, u).clamp_max(self.m - 1)  # inverse-CDF draw of features
        key = torch.unique(rows * self.m + cols)  # drop repeats within a sample (sorted, row-major)
        rows, cols = key // self.m, key % self.m
        vals = 1.0 + torch.rand(rows.numel(), generator=g)
        crow = torch.zeros(n + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
        x = torch.sparse_csr_tensor(crow, cols, vals, (n, self.m)) @ self.dictionary
        return _Batch(x.to(device=device, dtype=dtype), _Codes(rows, cols, vals.to(dtype), n, self.m))

    def stream(self, batch_size, seed=0, device=None, dtype=torch.float32):
        g = generator(seed)
        while True:
            yield self.sample(batch_size, int(torch.randint(0, 2**62, (1,), generator=g)), device, dtype)


def get_world(m, d):
    try:
        from synthsae.world import World

        if m == 16384 and d == 768:
            return World.preset("synthsaebench-16k"), "preset synthsaebench-16k"
    except Exception as err:  # the preset may not exist yet
        print(f"(world preset unavailable: {type(err).__name__}: {err}; using the stand-in)")
    return StandInWorld(m, d), "stand-in"


def perturbed_sae(D, noise, seed, k=25):
    """A `synthsae.sae` TopK SAE (what users evaluate) holding the truth + per-latent Gaussian noise of
    relative size U[0, 2 * noise], shuffled, with encoder = decoder^T and zero biases."""
    g = generator(seed)
    level = 2 * noise * torch.rand(D.shape[0], 1, generator=g)
    W = normalize_rows(D + level * torch.randn(D.shape, generator=g) / D.shape[1] ** 0.5)
    W = W[torch.randperm(W.shape[0], generator=g)]
    sae = make_sae("topk", W.shape[1], W.shape[0], k=k)
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
    return sae.eval()


def main():
    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support is in beta|invariant checks)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense LSA baseline (slow, ~5 GB)")
    ap.add_argument("--stability-n", type=int, default=10_000, help="samples for the EV share of stable latents")
    args = ap.parse_args()
    m, d, n, seeds = (4096, 256, 20_000, 4) if args.quick else (16384, 768, 100_000, 8)
    print(f"torch threads: {torch.get_num_threads()}; m = {m}, d = {d}, n = {n}, seeds = {seeds}")
    world, kind = get_world(m, d)
    D = torch.as_tensor(world.dictionary)
    print(f"world: {kind}")
    sae = perturbed_sae(D, 0.5, 1)

    t = time.perf_counter()
    rep = evaluate(sae, world, n=n, seed=0)
    t_eval = time.perf_counter() - t
    print(f"\nevaluate: {t_eval:.1f} s (goal <= 120 s)  matching route: {rep.meta['matching']} k={rep.meta['matching_k']}")
    for k, v in rep.metrics.items():
        if k.startswith("timing."):
            print(f"  {k:<22} {v:.1f} s")
    for k in ("recovery.mcc", "reconstruction.explained_variance", "sparsity.l0", "sparsity.true_l0",
              "recovery.firing_f1", "downstream.score"):
        print(f"  {k:<36} {rep.metrics[k]:.4f}")

    if not args.no_dense:
        W = sae.W_dec.detach()
        t = time.perf_counter()
        sparse = hungarian_match(D, W, method="sparse")
        t_sparse = time.perf_counter() - t
        t = time.perf_counter()
        C = (normalize_rows(D.double()) @ normalize_rows(W.double()).T).abs().numpy()
        r, c = linear_sum_assignment(-C)
        t_dense = time.perf_counter() - t
        dense_val = C[r, c].mean()
        del C
        print(f"\nmatching {m}x{m}: sparse top-k {t_sparse:.1f} s (mcc {sparse.mcc:.9f}); naive dense float64 LSA "
              f"{t_dense:.1f} s (mcc {dense_val:.9f}); speed-up {t_dense / t_sparse:.1f}x, "
              f"relative mcc difference {(dense_val - sparse.mcc) / dense_val:.2e}")

    saes = [perturbed_sae(D, 0.5, 10 + s) for s in range(seeds)]
    t = time.perf_counter()
    res = stability(saes, world=world, n=args.stability_n, seed=0)
    t_stab = time.perf_counter() - t
    print(f"\nstability of {seeds} SAEs (+ EV share at n = {args.stability_n}): {t_stab:.1f} s (goal <= 300 s)")
    for k, v in res.metrics.items():
        print(f"  {k:<36} {v:.4f}")


if __name__ == "__main__":
    main()
