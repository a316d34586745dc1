"""How fast can a toy training step get? A floor for `benchmarks/train.py`'s step / matmul ratio.

The relu_l1 step of `synthsae.train` (unit-norm decoder, l1 on the codes, Adam) written as one pure
function of (batch, parameters, Adam moments) with its backward by hand: forward, gradients,
removal of the decoder gradient's parallel part, Adam, decoder renormalization. Nothing else: no
history, no fire counts, no finiteness check. The hand-written gradients are checked against
autograd first. Process CPU time per step of:
- eager: that function as plain torch ops;
- compiled: the same function through `torch.compile` (inductor, C++ on CPU), in its default mode
  and in "max-autotune-no-cudagraphs" (which may also generate the matrix products);
- synthsae.train: one steady-state step on a fixed batch (train.py's `step_time`);
each against the five bare products of a dense step (train.py's `bare_matmuls`), in the same run.
Also prints each compile's wall time and the number of steps after which it pays for itself
against synthsae.train.

Usage: python benchmarks/train_floor.py [--d 32] [--m 128] [--batch-size 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import bare_matmuls, cpu_time, step_time  # noqa: E402

L1, LR, BETAS, EPS = 1e-3, 3e-4, (0.9, 0.999), 1e-8


def loss_terms(x, W_enc, b_enc, W_dec, b_dec):
    """relu_l1's loss (synthsae.sae.relu_l1): mean squared error over all entries + L1 · mean_b Σ_j z."""
    a = (x - b_dec) @ W_enc + b_enc
    z = torch.relu(a)
    r = z @ W_dec + b_dec - x
    return (r * r).mean() + L1 * z.sum() / x.shape[0], a, z, r


def grads(x, W_enc, b_enc, W_dec, b_dec):
    """The loss and its gradients by hand, in the order of the parameters."""
    B, d = x.shape
    loss, a, z, r = loss_terms(x, W_enc, b_enc, W_dec, b_dec)
    g_xhat = r * (2.0 / (B * d))
    g_a = torch.where(a > 0, g_xhat @ W_dec.T + L1 / B, 0.0)
    g_a_sum = g_a.sum(0)
    return loss, [(x - b_dec).T @ g_a, g_a_sum, z.T @ g_xhat, g_xhat.sum(0) - W_enc @ g_a_sum]


def step(x, params, m1, m2, t):
    """One training step: returns the loss and new (params, m1, m2). t: step number (a tensor, so
    that compiled code is not specialized on it)."""
    loss, g = grads(x, *params)
    W_dec = params[2]
    g[2] = g[2] - (g[2] * W_dec).sum(1, keepdim=True) * W_dec  # unit-norm rows: drop the radial part
    c1, c2 = 1 - BETAS[0] ** t, 1 - BETAS[1] ** t
    new_m1 = [BETAS[0] * m + (1 - BETAS[0]) * gi for m, gi in zip(m1, g)]
    new_m2 = [BETAS[1] * v + (1 - BETAS[1]) * gi * gi for v, gi in zip(m2, g)]
    new = [p - (LR / c1) * m / ((v / c2).sqrt() + EPS) for p, m, v in zip(params, new_m1, new_m2)]
    new[2] = new[2] / new[2].norm(dim=1, keepdim=True)
    return loss, new, new_m1, new_m2


def initial_state(d, m, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(m, d, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    params = [W_dec.T.contiguous(), torch.zeros(m), W_dec, torch.zeros(d)]
    x = torch.randn(B, d, generator=g)
    return x, params, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]


def check_gradients(x, params) -> float:
    """Largest relative difference between the hand-written and autograd gradients."""
    leaves = [p.clone().requires_grad_(True) for p in params]
    loss, *_ = loss_terms(x, *leaves)
    auto = torch.autograd.grad(loss, leaves)
    _, mine = grads(x, *params)
    return max(float((a - b).abs().max() / a.abs().max().clamp_min(1e-30)) for a, b in zip(auto, mine))


def per_step(fn, x, state, steps) -> float:
    """CPU seconds per step of fn, run `steps` times, the state carried along."""
    params, m1, m2 = state

    def run():
        nonlocal params, m1, m2
        for i in range(steps):
            _, params, m1, m2 = fn(x, params, m1, m2, torch.tensor(float(i + 1)))

    return cpu_time(run) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d, m, B = args.d, args.m, args.batch_size
    x, params, m1, m2 = initial_state(d, m, B)
    print(f"train floor  torch {torch.__version__}  1 thread  d={d} m={m} batch {B}  rounds {args.rounds}  "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"hand-written gradients vs autograd: max relative difference {check_gradients(x, params):.1e}")

    variants = {"eager function": step}
    compile_s = {}
    for mode in ("default", "max-autotune-no-cudagraphs"):
        fn = torch.compile(step, fullgraph=True, mode=mode)
        t = time.perf_counter()
        fn(x, params, m1, m2, torch.tensor(1.0))
        compile_s[mode] = time.perf_counter() - t
        variants[f"compiled ({mode})"] = fn
    times = {name: [] for name in [*variants, "synthsae.train", "bare products"]}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(per_step(fn, x, (params, m1, m2), args.steps))
        times["synthsae.train"].append(step_time("relu_l1", {}, x, m, args.steps, None))  # at initialization
        times["bare products"].append(bare_matmuls(B, d, m, repeats=3))
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"{'step':36s} {'ms':>7s} {'/ products':>10s} {'compile s':>10s} {'pays off after':>15s}")
    for name, t in med.items():
        mode = name[len("compiled ("):-1] if name.startswith("compiled") else None
        extra = ""
        if mode is not None:
            saved = med["synthsae.train"] - t
            payoff = f"{compile_s[mode] / saved:,.0f} steps" if saved > 0 else "never"
            extra = f" {compile_s[mode]:10.1f} {payoff:>15s}"
        print(f"{name:36s} {t * 1e3:7.3f} {t / med['bare products']:10.2f}{extra}")


if __name__ == "__main__":
    main()
