"""The bench's lite tier at two learning rates: MCC, convergence and L0 per (task, SAE), seed 0.

For every task and main variant, train one SAE at the task's lite scale with `lr` replaced by each
of --lrs, and print the convergence diagnostic (last-doubling changes, converged), the final probe L0
against the target and the task's metrics. The baseline is the first lr.

    python benchmarks/lite_lr.py --lrs 3e-3 1e-2      # ~24 min on one core (4,800-step lite)
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

MAIN = ("relu_l1", "topk", "batchtopk", "jumprelu", "matryoshka")


def one(task_name: str, label: str, lr: float, seed: int) -> dict:
    """Train and score one SAE at the task's lite scale with the given lr."""
    from synthsae.bench.runner import all_tasks, resolve, scale_of, train_sae
    from synthsae.bench.task import TASKS
    from synthsae.experiments.engine import cached_world

    all_tasks()
    scale = dataclasses.replace(scale_of(task_name, "lite"), lr=lr)
    world = cached_world(scale.world)
    sae, h = train_sae(resolve(label), world, scale, scale.k, seed)
    sae.eval()
    return {"conv": h.convergence, "row": TASKS.get(task_name).measure(sae, world, scale, seed), "target": scale.k}


def main() -> None:
    from synthsae.bench.runner import all_tasks

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lrs", nargs=2, type=float, default=[3e-3, 1e-2])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    base, new = args.lrs
    counts = {"mcc higher": 0, "pairs": 0, f"converged at {base:g}": 0, f"converged at {new:g}": 0,
              f"L0 within 10% at {base:g}": 0, f"L0 within 10% at {new:g}": 0}
    for task_name in all_tasks():
        for label in MAIN:
            runs = {lr: one(task_name, label, lr, args.seed) for lr in (base, new)}
            for lr, r in runs.items():
                c = r["conv"]
                counts[f"converged at {lr:g}"] += bool(c["converged"])
                counts[f"L0 within 10% at {lr:g}"] += abs(c["l0"] / r["target"] - 1) <= 0.1
                print(f"{task_name} {label} lr={lr:g}: converged={c['converged']} last doubling EV {c['ev_change']:.3f} "
                      f"recovery {c['recovery_change']} L0 {c['l0']:.2f}/{r['target']} MCC {r['row'].get('mcc', float('nan')):.3f}",
                      flush=True)
            counts["pairs"] += 1
            counts["mcc higher"] += runs[new]["row"].get("mcc", 0) > runs[base]["row"].get("mcc", 0)
    print(counts)


if __name__ == "__main__":
    main()
