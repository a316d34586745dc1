"""Cost of the convergence diagnostic (issue 17): one recipe-like cell trained with the probe
evaluations (default probe_evals = 10) and without (probe_evals = 0), alternating, several rounds.

    OMP_NUM_THREADS=1 python benchmarks/convergence_overhead.py [--rounds 3] [--n 262144]

Prints the wall time of each run and the median ratio with / without. Timings on a shared machine
are noisy: alternate and compare medians, not single runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from synthsae.sae import make, train
from synthsae.world import World

CELLS = {"hierarchy topk m=256 k=8": ("hierarchy", "topk", 256, {"k": 8}),
         "toy relu_l1 m=256": ("toy", "relu_l1", 256, {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=262_144)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for label, (preset, variant, m, hp) in CELLS.items():
        world = World.preset(preset)
        times: dict[int, list[float]] = {10: [], 0: []}
        for _ in range(args.rounds):
            for evals in (10, 0):
                sae = make(variant, world.d, m, **hp)
                t0 = time.perf_counter()
                train(sae, world, args.n, args.batch, lr=1e-3, progress=False, probe_evals=evals)
                times[evals].append(time.perf_counter() - t0)
        ratio = statistics.median(a / b for a, b in zip(times[10], times[0]))
        print(f"{label}: with {[round(t, 2) for t in times[10]]} s, without {[round(t, 2) for t in times[0]]} s, "
              f"median ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
