"""`synthsae.bench(...)`: tasks x SAEs x seeds on the experiment engine, then the leaderboard.

Cells: one per (task, matched L0 k, SAE, seed) -- train (checkpointed in the cell's folder, so a
kill resumes), save the SAE, measure -- and one per (task, k, reference row, seed). Each runs
through `synthsae.experiments.engine.run_cells` (serial, local processes or Ray); a finished cell
(`cells/<id>/cell.json`) is skipped on a rerun. The output folder is claimed with
`synthsae.experiments.folders.claim` as kind "recipe", name "bench-<tier>", with a digest of the
tier's task scales: a folder of another experiment is refused, and adding SAEs or seeds to a
finished bench reuses its cells. A user SAE file's content hash is part of its cells' ids, so an
edited file gets new cells. Cross-seed metrics (stability) are computed on the driver from the
saved SAEs of every seed.

Every SAE is trained at the task's matched L0: TopK-like variants (a `k` field) with k = the
target; the others with the trainer's L0 controller (`train(target_l0=k)`). Training: Adam at the
task's lr, linear decay over the last fifth, the convergence diagnostic on (10 probe
evaluations); each cell records `converged` / `collapsed` and the final probe L0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from synthsae.bench.saes import resolve
from synthsae.bench.task import TASKS, TIERS, BenchTask, all_tasks, scale_of
from synthsae.errors import fail, require
from synthsae.experiments import folders
from synthsae.experiments.cells import RUNNERS, Task
from synthsae.experiments.engine import CellsFailed

MAIN_VARIANTS = ("relu_l1", "topk", "batchtopk", "jumprelu", "matryoshka", "matching_pursuit")
REFERENCES = ("ceiling", "probe", "random")
REF_PREFIX = "ref:"
# Variant defaults the bench sets (a task's `Scale.hyper` overrides them): JumpReLU's paper values
# (threshold 1e-3, bandwidth 1e-3) assume unit-normalized inputs; on our worlds (unit atoms,
# magnitudes ~1) its thresholds then barely move and the L0 controller cannot reach the target
# (measured: L0 55-65 for a target of 4-6 at 1,200 steps), so the bench starts it as the L0
# controller's tests do.
DEFAULT_HYPER = {"jumprelu": {"threshold_init": 0.1, "bandwidth": 0.05}}
CELLS_DIR = "cells"


@dataclasses.dataclass(frozen=True)
class BenchCell(Task):
    """A bench cell. Its own class so that a spawned or remote worker, unpickling it, imports this
    module and so registers the "bench" runner."""


def _file_tag(spec: str) -> str:
    """'' for a registered variant; a short content hash for a user file (edited file -> new cells)."""
    where = spec.rpartition(":")[0]
    path = Path(where)
    if ":" in spec and path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return ""


def _cell_id(task: str, k: int, label: str, seed: int, tag: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
    return f"{task}__k{k}__{safe}{'-' + tag if tag else ''}__s{seed}"


def plan(tier: str, saes, seeds, tasks, budget: float = 1.0) -> list[dict[str, Any]]:
    """The cells of a bench: dicts with id, task, tier, budget, k, sae (spec), label, seed."""
    cells = []
    for name in tasks:
        task = TASKS.get(name)
        scale = scale_of(name, tier, budget)
        for k in scale.ks:
            for spec in saes:
                for seed in seeds:
                    cells.append({"id": _cell_id(name, k, spec.label, seed, _file_tag(spec.spec)), "task": name,
                                  "tier": tier, "budget": budget, "k": k, "sae": spec.spec, "label": spec.label, "seed": seed})
            for ref in task.references:
                for seed in seeds:
                    cells.append({"id": _cell_id(name, k, REF_PREFIX[:-1] + "-" + ref, seed, ""), "task": name,
                                  "tier": tier, "budget": budget, "k": k, "sae": REF_PREFIX + ref, "label": ref, "seed": seed})
    return cells


def digest(tier: str, tasks, budget: float = 1.0) -> str:
    scales = {}
    for name in tasks:
        s = scale_of(name, tier, budget)
        scales[name] = {"world": s.world.to_dict(), **{f.name: getattr(s, f.name) for f in dataclasses.fields(s)
                                                        if f.name not in ("world", "note")}}
    return folders.digest_of({"bench": tier, "scales": scales, "defaults": DEFAULT_HYPER})


def _run_cell(spec: dict[str, Any], folder: Path, inputs, device: str | None, progress: bool) -> dict[str, Any]:
    """One bench cell (see module docstring)."""
    from synthsae.bench import references as R
    from synthsae.experiments.engine import cached_world

    all_tasks()
    task = TASKS.get(spec["task"])
    scale = scale_of(spec["task"], spec["tier"], float(spec.get("budget", 1.0)))
    world = cached_world(scale.world)
    k, seed = int(spec["k"]), int(spec["seed"])
    dev = torch.device(device or "cpu")
    if spec["sae"].startswith(REF_PREFIX):
        ref = spec["sae"][len(REF_PREFIX):]
        if ref == "probe":
            f1 = R.probe_f1(world, scale.eval_n, seed, dev)
            row = {key: f1 for key in R.PROBE_KEYS if any(mt.key == key for mt in task.metrics)}
        elif ref == "ceiling":
            row = task.measure(R.ExactCodes(world), world, scale, seed)
        else:
            row = task.measure(R.random_sae(world, scale.m, k, seed), world, scale, seed)
        return {"row": row, "data": None}
    sae_spec = resolve(spec["sae"])
    t0 = time.perf_counter()
    sae, history = train_sae(sae_spec, world, scale, k, seed, device=dev, checkpoint_dir=folder / "checkpoint",
                             resume=True, checkpoint_every=max(1, scale.n_samples // scale.batch_size // 4))
    train_s = time.perf_counter() - t0
    sae.eval()
    sae.save(folder / "model")
    row = task.measure(sae, world, scale, seed)
    conv = history.convergence or {}
    row.update({"converged": float(bool(conv.get("converged"))), "collapsed": float(bool(conv.get("collapsed"))),
                "probe_ev_change": conv.get("ev_change", float("nan")),
                "probe_recovery_change": conv.get("recovery_change", float("nan")),
                "probe_l0": conv.get("l0", float("nan")), "train_seconds": train_s})
    return {"row": row, "data": {"convergence": conv, "summary": history.summary(), "matched_by": sae_spec.how}}


def train_sae(sae_spec, world, scale, k: int, seed: int, **options):
    """Build `sae_spec` (a `resolve(...)` result) at matched L0 k and train it as the bench does at
    `scale`: Adam at scale.lr, batches of scale.batch_size, linear lr decay over the last scale.decay
    of the steps, the variant's default and the scale's hyperparameters. options: more `train`
    keywords (device, checkpointing, probe_evals, ...). Returns (sae, TrainHistory)."""
    from synthsae.sae.train import train

    hyper = {**DEFAULT_HYPER.get(sae_spec.label, {}), **scale.hyper.get(sae_spec.label, {})}
    sae, kwargs = sae_spec.build(world.d, scale.m, k, seed, **hyper)
    steps = scale.n_samples // scale.batch_size
    history = train(sae, world, n_samples=scale.n_samples, batch_size=scale.batch_size, lr=scale.lr, seed=seed,
                    lr_decay_steps=int(steps * scale.decay), progress=False, **{**kwargs, **options})
    return sae, history


RUNNERS.register("bench")(_run_cell)


def bench(tier: str = "lite", saes=None, seeds: int | list[int] = 3, out: str | Path = "synthsae-bench",
          tasks=None, executor: str = "serial", workers: int | None = None, device: str | None = None,
          overwrite: bool = False, progress: bool = False, command: str | None = None, budget: float = 1.0,
          **executor_options):
    """Run the bench and write its leaderboard into `out`; returns the `Leaderboard` (its files:
    report.md, results.csv, results.json, figures/).

    tier: "lite" (CPU, minutes), "full" (the published SynthSAEBench protocol; needs a GPU) or
    "micro" (tests). saes: SAE specs (registered names, "path/to/file.py:Class" or
    "package.module:Class"); None = the main variants; a spec list may contain "main" for them.
    seeds: a count (seeds 0..n-1) or a list (>= 3 recommended: fewer give no confidence interval).
    tasks: task names (None = every registered task). budget: multiplies every task's training
    samples (e.g. 4 when the report lists SAEs that did not converge; a new budget is a new bench,
    in a new folder)."""
    from synthsae.bench.leaderboard import build
    from synthsae.experiments.engine import cached_world, run_cells
    from synthsae.experiments.executors import EXECUTORS

    t0 = time.time()
    require(tier in TIERS, "--tier", tier, "unknown tier", " or ".join(TIERS))
    require(isinstance(budget, (int, float)) and not isinstance(budget, bool) and 0 < budget <= 1000, "--budget",
            budget, "a multiplier of the training samples", "a number in (0, 1000], e.g. 4")
    budget = float(budget)
    names = list(all_tasks()) if tasks is None else list(tasks)
    require(len(names) >= 1, "tasks", tasks, "a bench needs a task", f"some of {all_tasks()}")
    for n in names:
        TASKS.get(n)
    seed_list = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds or [])
    require(len(seed_list) >= 1 and all(isinstance(s, int) and s >= 0 for s in seed_list), "--seeds", seeds,
            "seeds are non-negative ints", "a count >= 1 (3 or more for confidence intervals) or a list of ints")
    require(len(set(seed_list)) == len(seed_list), "--seeds", seeds, "seeds repeat", "distinct seeds")
    specs_in = list(MAIN_VARIANTS) if not saes else [s for x in saes for s in (MAIN_VARIANTS if x == "main" else [x])]
    specs = [resolve(s) for s in dict.fromkeys(specs_in)]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        fail("--sae", specs_in, "two SAEs have the same name", "distinct classes or variants")
    if tier == "full" and (device is None or str(device) == "cpu"):
        import warnings

        warnings.warn("--tier full is the published 200M-sample protocol: on a CPU it takes weeks. Use --device cuda.",
                      RuntimeWarning, stacklevel=2)
    for n in names:  # every world built (hence validated) before the folder is claimed
        cached_world(scale_of(n, tier, budget).world)
    EXECUTORS.get(executor)(workers, **executor_options)
    out = Path(out)
    folders.claim(out, "recipe", f"bench-{tier}", digest(tier, names, budget), overwrite=overwrite)
    dev = None if device is None else str(torch.device(device))
    cells = plan(tier, specs, seed_list, names, budget)
    jobs = [BenchCell(c["id"], "bench", c, str(out / CELLS_DIR / c["id"]), dev) for c in cells]
    records = run_cells(jobs, executor, workers, retry_failed=True, progress=progress, desc=f"bench {tier}",
                        **executor_options)
    failed = [(c["id"], records[c["id"]]["error"]) for c in cells if records[c["id"]]["status"] != "ok"]
    if failed:
        shown = "; ".join(f"{i}: {e}" for i, e in failed[:5])
        raise CellsFailed(f"bench: {len(failed)} of {len(cells)} cells failed ({shown}). Tracebacks: "
                         f"{out / CELLS_DIR}/<cell>/error.txt. Rerun the same command: finished cells are kept.")
    rows = []
    for c in cells:
        rec = records[c["id"]]
        rows.append({"task": c["task"], "k": c["k"], "sae": c["label"], "seed": c["seed"],
                     "kind": "reference" if c["sae"].startswith(REF_PREFIX) else "sae",
                     **{k: (float("nan") if v is None else v) for k, v in rec["row"].items()},
                     "wall_seconds": rec.get("wall_seconds")})
    _across_seeds(rows, cells, out, tier, names, budget)
    meta = metadata(time.time() - t0, tier, seed_list, executor, workers, dev, command)
    meta["budget"] = budget
    board = build(rows, tier, names, [s.label for s in specs], meta)
    board.write(out)
    return board


def _across_seeds(rows, cells, out: Path, tier: str, names, budget: float) -> None:
    """Metrics that need every seed's SAE at once (task.across_seeds), merged into the rows."""
    from synthsae.experiments.engine import cached_world
    from synthsae.sae.base import SAE

    for name in names:
        task = TASKS.get(name)
        if type(task).across_seeds is BenchTask.across_seeds:  # the task has no cross-seed metric
            continue
        scale = scale_of(name, tier, budget)
        world = cached_world(scale.world)
        groups: dict[tuple, list] = {}
        for c, r in zip(cells, rows):
            if c["task"] == name and r["kind"] == "sae":
                groups.setdefault((c["k"], c["label"]), []).append((c, r))
        for members in groups.values():
            members.sort(key=lambda cr: cr[0]["seed"])
            saes = [SAE.load(out / CELLS_DIR / c["id"] / "model") for c, _ in members]
            per = task.across_seeds(saes, world, scale)
            if per is None:
                continue
            for (_, r), extra in zip(members, per):
                r.update(extra)


def metadata(wall: float, tier: str, seeds, executor: str, workers, device, command: str | None) -> dict[str, Any]:
    """Run metadata for the report: wall time, versions, commit, device, threads, the command."""
    import synthsae

    from synthsae.experiments.provenance import git_commit

    commit = git_commit()  # one rule for every report: "unknown" outside a checkout, "+dirty" when modified
    return {"tier": tier, "seeds": list(seeds), "wall_seconds": round(wall, 1), "synthsae": synthsae.__version__,
            "commit": commit, "torch": torch.__version__, "python": platform.python_version(),
            "device": device or "cpu", "threads": torch.get_num_threads(), "executor": executor, "workers": workers,
            "command": command or "synthsae.bench(...)  # Python API", "argv": " ".join(sys.argv[:1])}
