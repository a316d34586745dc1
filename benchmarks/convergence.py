"""Does the convergence diagnostic predict what more training would change? (issue 17)

For each main variant on a bench task's lite scale (one seed), train at the lite budget (x1) and at
4x it, with 20 probe evaluations, and print per SAE:

* the change of probe EV and recovery over the last fifth of the x1 run (the first rule: relative
  change < 2%), over its last doubling (the second: absolute change < 0.01) and over the last
  doubling *before the lr decay* (the rule in `synthsae.sae.convergence`: absolute change < 0.01),
  all computed from the same x1 probe trajectory;
* how far the task's metrics (F1, MCC, EV) and the probe recovery moved from x1 to x4.

A useful rule calls "converged" only SAEs whose metrics would barely move with more training.

    python benchmarks/convergence.py --tasks absorption synthsaebench   # ~10 min per task on one core (4,800-step lite)
"""

from __future__ import annotations

import argparse
import time

import torch

MAIN = ("relu_l1", "topk", "batchtopk", "jumprelu", "matryoshka")


def trajectory(task_name: str, label: str, budget: float, seed: int) -> dict:
    """Train one bench SAE at `budget` x the lite samples; its probe trajectory and task metrics."""
    from synthsae.bench.runner import all_tasks, resolve, scale_of, train_sae
    from synthsae.bench.task import TASKS
    from synthsae.experiments.engine import cached_world

    all_tasks()
    scale = scale_of(task_name, "lite", budget)
    world = cached_world(scale.world)
    t0 = time.perf_counter()
    sae, h = train_sae(resolve(label), world, scale, scale.k, seed, probe_evals=20)
    sae.eval()
    return {"steps": h.probe_steps, "ev": h.probe_ev, "recovery": h.probe_recovery, "decay": scale.decay,
            "row": TASKS.get(task_name).measure(sae, world, scale, seed), "seconds": time.perf_counter() - t0}


def window_change(run: dict, key: str, start_fraction: float, relative: bool, end_fraction: float = 1.0) -> float:
    """Change of run[key] from the last evaluation at or before start_fraction of the steps to the last
    one at or before end_fraction of them."""
    n = run["steps"][-1]
    i = max(j for j, s in enumerate(run["steps"]) if s <= start_fraction * n)
    e = max(j for j, s in enumerate(run["steps"]) if s <= end_fraction * n)
    delta = abs(run[key][e] - run[key][i])
    return delta / abs(run[key][e]) if relative else delta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["absorption", "synthsaebench"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| task | SAE | last fifth: EV / recovery (relative) | rule 1 | last doubling: EV / recovery "
          "| rule 2 | last doubling before the decay: EV / recovery | rule 3 (current) "
          "| x1 -> x4: F1 / MCC / EV / recovery |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task_name in args.tasks:
        for label in MAIN:
            x1, x4 = (trajectory(task_name, label, b, args.seed) for b in (1.0, 4.0))
            fifth = [window_change(x1, k, 0.8, True) for k in ("ev", "recovery")]
            half = [window_change(x1, k, 0.5, False) for k in ("ev", "recovery")]
            plateau = 1.0 - x1["decay"]
            before = [window_change(x1, k, plateau / 2, False, plateau) for k in ("ev", "recovery")]
            moved = [x4["row"].get(k, float("nan")) - x1["row"].get(k, float("nan")) for k in ("f1", "mcc", "ev")]
            moved.append(x4["recovery"][-1] - x1["recovery"][-1])
            print(f"| {task_name} | {label} | {fifth[0]:.1%} / {fifth[1]:.1%} | "
                  f"{'converged' if max(fifth) < 0.02 else 'not'} | {half[0]:.3f} / {half[1]:.3f} | "
                  f"{'converged' if max(half) < 0.01 else 'not'} | {before[0]:.3f} / {before[1]:.3f} | "
                  f"{'converged' if max(before) < 0.01 else 'not'} | " + " / ".join(f"{v:+.3f}" for v in moved) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
