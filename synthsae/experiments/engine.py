"""The experiment engine: grids of cells run by one machinery, for sweeps and recipes alike.

A recipe declares *what* to run and *what to conclude* (benchopt's split):

    cells(config) -> list[Cell]                    the grid: world x SAE x hyperparameters x seed
    world(config, params) -> WorldConfig            the world a cell trains on (built, hence validated,
                                                    before the output folder is claimed)
    run_cell(config, cell, ctx) -> {"row": {...}, "data": ...}
                                                    one cell: train (checkpointed, via ctx.train) and measure
    conclude(config, results) -> RecipeResult       checks, tables and figures from the finished cells

and the engine does the rest (`run_grid`): validates every cell and world, claims the output
folder (`folders.claim`), runs every unfinished cell on an executor (serial, local processes,
Ray), stores each cell's record as it finishes (`cells/<id>/cell.json`, atomically, last), and
concludes from the records. A kill at any moment loses at most the steps since a cell's last
checkpoint: the same command skips finished cells and resumes the others from their checkpoints,
and ends with the same rows as an uninterrupted run (timing aside). A cell may read the folders of
cells it `needs` (e.g. a stability analysis reads the SAEs of every seed); it runs after them.

Sweeps (`synthsae.experiments.sweep`) are grids of "experiment" cells on the same `run_cells`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from synthsae import tables
from synthsae.errors import ConfigError
from synthsae.experiments import folders
from synthsae.experiments.cells import RUNNERS, Task, failure_record, read_record, store
from synthsae.progress import progress_bar

CELLS_DIR = "cells"
_WORLDS: dict[str, Any] = {}  # per-process cache of built worlds (a worker builds each world once)
_MAX_WORLDS = 8


class CellsFailed(RuntimeError):
    """Some cells of a recipe failed (each one's error and traceback are in its folder). The command line
    prints it as one error line and exits 1, as for a sweep with failed trials."""


# ---- running cells -------------------------------------------------------------------------------
def run_cells(tasks: Sequence[Task], executor: str = "serial", n_workers: int | None = None,
              retry_failed: bool = False, progress: bool = False, desc: str = "cells",
              **executor_options: Any) -> dict[str, dict[str, Any]]:
    """Run every task not finished in its folder (a failed one again if `retry_failed`), in waves that
    respect `Task.inputs`; returns id -> record for every task. A task whose input failed is
    reported failed (in the returned records only, so a rerun tries it again)."""
    from synthsae.experiments.executors import EXECUTORS

    runner = EXECUTORS.get(executor)(n_workers, **executor_options)  # bad options fail before any work
    if hasattr(runner, "progress"):
        runner.progress = progress and executor == "serial"
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"cell ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}. Expected unique ids.")
    records = {t.id: read_record(t.out_dir) for t in tasks}
    remaining = [t for t in tasks if records[t.id] is None or (retry_failed and records[t.id]["status"] != "ok")]
    by_folder = {str(Path(t.out_dir)): t.id for t in tasks}
    bar = progress_bar(len(tasks), f"{desc} ({executor})", enabled=progress, initial=len(tasks) - len(remaining),
                       unit="cell")

    def on_done(task: Task, record: dict[str, Any]) -> None:
        records[task.id] = store(task, record)
        if bar is not None:
            bar.update(1)
            if records[task.id].get("status") != "ok":
                bar.write(f"cell {task.id} failed: {records[task.id].get('error')}")

    try:
        while remaining:
            pending = {t.id for t in remaining}
            ready, blocked = [], []
            for t in remaining:
                needs = [by_folder.get(str(Path(f)), k) for k, f in t.inputs.items()]
                if any(n in pending for n in needs):
                    continue
                bad = [n for n in needs if (records.get(n) or {}).get("status") != "ok"]
                (blocked if bad else ready).append((t, bad))
            if not ready and not blocked:
                raise ValueError(f"cells {sorted(pending)} need each other (a cycle): expected an order of needs")
            for t, bad in blocked:
                records[t.id] = failure_record(f"input cell(s) {bad} did not finish")
            if ready:
                runner.run([t for t, _ in ready], on_done)
            done = {t.id for t, _ in ready + blocked}
            remaining = [t for t in remaining if t.id not in done]
    finally:
        runner.close()
        if bar is not None:
            bar.close()
    return records


# ---- recipes as grids of cells ---------------------------------------------------------------------
def recipe_digest(recipe, config) -> str:
    return folders.digest_of({"recipe": recipe.name, "config": config.to_dict()})


def cached_world(world_config):
    """The `World` of a `WorldConfig`, built once per process."""
    from synthsae.world import World

    key = json.dumps(world_config.to_dict(), sort_keys=True, default=str)
    if key not in _WORLDS:
        if len(_WORLDS) >= _MAX_WORLDS:
            _WORLDS.pop(next(iter(_WORLDS)))
        _WORLDS[key] = World(world_config)
    return _WORLDS[key]


def validate_recipe(recipe, config) -> list:
    """Everything a recipe run needs, checked now: its cells (unique ids, known needs) and every world
    they use (built). Returns the cells ([] for a recipe that is not a grid)."""
    if getattr(recipe, "cells", None) is None:
        return []
    cells = recipe.cells(config)
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"recipe {recipe.name}: cell ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    for c in cells:
        unknown = [n for n in c.needs if n not in ids]
        if unknown:
            raise ValueError(f"recipe {recipe.name}: cell {c.id} needs unknown cell(s) {unknown}")
    for c in cells:
        cached_world(recipe.world(config, c.params))
    return cells


def run_grid(recipe, config, out_dir: str | Path, device: torch.device | str | None = None, progress: bool = False,
             executor: str = "serial", n_workers: int | None = None, overwrite: bool = False,
             **executor_options: Any):
    """Run the grid recipe `recipe` with `config` into `out_dir` (see module docstring); returns its
    `RecipeResult` (not yet written: `.write(out_dir)`). A failed cell raises `CellsFailed` after the
    others finished, naming it; rerunning the same command retries it."""
    from synthsae.experiments.executors import EXECUTORS

    t0 = time.perf_counter()
    cells = validate_recipe(recipe, config)
    EXECUTORS.get(executor)(n_workers, **executor_options)  # bad executor options fail before the claim
    out = Path(out_dir)
    folders.claim(out, "recipe", recipe.name, recipe_digest(recipe, config), overwrite=overwrite)
    dev = None if device is None else str(torch.device(device))
    spec = {"recipe": recipe.name, "config": config.to_dict()}
    tasks = [Task(c.id, "recipe", {**spec, "cell": c.to_dict()}, str(out / CELLS_DIR / c.id), dev,
                  {n: str(out / CELLS_DIR / n) for n in c.needs}) for c in cells]
    records = run_cells(tasks, executor, n_workers, retry_failed=True, progress=progress, desc=recipe.name,
                        **executor_options)
    failed = [(t.id, records[t.id]["error"]) for t in tasks if records[t.id]["status"] != "ok"]
    if failed:
        shown = "; ".join(f"{i}: {e}" for i, e in failed[:5]) + (f"; ... ({len(failed) - 5} more)" if len(failed) > 5 else "")
        raise CellsFailed(f"recipe {recipe.name}: {len(failed)} of {len(tasks)} cells failed ({shown}). Tracebacks: "
                         f"{out / CELLS_DIR}/<cell>/error.txt. Fix the cause and rerun the same command: finished cells "
                         "are kept, failed ones run again.")
    from synthsae.experiments.recipes.base import CellResult

    results = [CellResult(c, _restored(records[c.id]["row"]), records[c.id].get("data")) for c in cells]
    tables.write_csv(out / "cells.csv", [{"cell": r.cell.id, **r.cell.params, **r.row} for r in results])
    result = recipe.conclude(config, results)
    from synthsae.experiments.provenance import run_metadata

    cell_seconds = sum(float(records[c.id].get("wall_seconds") or 0.0) for c in cells)
    result.metadata = {**run_metadata(out, dev, time.perf_counter() - t0, cell_seconds=cell_seconds),
                       **result.metadata}
    result.sections.append(("Cells", (
        f"This report was concluded from {len(results)} cells (one row each in [cells.csv](cells.csv)); each cell's "
        f"folder `{CELLS_DIR}/<cell>/` holds its record (`cell.json`), its training checkpoints and artifacts. "
        "Rerunning the same command reuses finished cells and resumes unfinished ones from their checkpoints.")))
    return result


def run_recipe(recipe, config, out_dir: str | Path, device: torch.device | str | None = None, progress: bool = False,
               executor: str = "serial", n_workers: int | None = None, overwrite: bool = False,
               **executor_options: Any):
    """Run any recipe into `out_dir` and write its report: a grid recipe through `run_grid`; a recipe
    that is one function (`Recipe.run`) in this process, after the same validation and claim.
    Returns (RecipeResult, path of report.md)."""
    out = Path(out_dir)
    if getattr(recipe, "cells", None) is not None:
        result = run_grid(recipe, config, out, device, progress, executor, n_workers, overwrite, **executor_options)
    else:
        if executor != "serial" or executor_options or n_workers is not None:
            raise ConfigError(f"executor = {executor!r} is invalid for recipe {recipe.name}: it is one function, not "
                              "a grid of cells, so it runs in this process. Expected: the serial executor (the default).")
        folders.claim(out, "recipe", recipe.name, recipe_digest(recipe, config), overwrite=overwrite)
        result = recipe.run(config, out, torch.device(device or "cpu"), progress)
    return result, result.write(out)


def _restored(row: dict[str, Any]) -> dict[str, Any]:
    return {k: tables.restore(v) for k, v in row.items()}


# ---- the runners -----------------------------------------------------------------------------------
@dataclasses.dataclass
class CellContext:
    """What a recipe's `run_cell` gets besides its config and cell: the cell's `folder` (checkpoints
    and artifacts go there), the folders of the cells it needs (`inputs`, id -> Path), the device,
    and `progress` (training bars).

    `trained`: SAE name -> its convergence diagnostic (`_common.convergence_row`), filled by every
    `train` call; the runner adds it to the cell's row (keys as in `convergence_row`, prefixed
    "<name>." except for the default name "sae"), so every cell that trains an SAE records whether
    it converged, whether it collapsed, its probe EV and its final measured L0."""

    recipe: Any
    config: Any
    cell: Any
    folder: Path
    inputs: dict[str, Path]
    device: torch.device
    progress: bool = False
    trained: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def world(self, params: dict[str, Any] | None = None):
        """The cell's world (or the world of other `params`), built once per process."""
        return cached_world(self.recipe.world(self.config, self.cell.params if params is None else params))

    def train(self, variant: str, world, m: int, hyper: dict[str, Any], seed: int, *, name: str = "sae",
              data_seed: int | None = None, lr: float | None = None, n_samples: int | None = None, sae=None,
              **train_kwargs):
        """Build `variant` (m latents, init seeded `seed`) and train it on `world` with the recipe's
        settings, checkpointing into folder/<name>/checkpoint and resuming from there. Returns
        (sae in eval mode, TrainHistory). `sae`: train this one instead (e.g. initialized from other
        SAEs; a checkpoint, when there is one, replaces its weights). A blow-up names the cell and the SAE."""
        from synthsae.sae import make
        from synthsae.sae.train import train

        cfg = self.config
        n = cfg.n_samples if n_samples is None else n_samples
        steps = n // cfg.batch_size
        if sae is None:
            sae = make(variant, d=world.d, m=m, seed=seed, **hyper)
        try:
            history = train(sae, world, n_samples=n, batch_size=cfg.batch_size, lr=cfg.lr if lr is None else lr,
                            seed=seed if data_seed is None else data_seed, device=self.device, progress=self.progress,
                            checkpoint_dir=self.folder / name / "checkpoint", resume=True,
                            checkpoint_every=max(1, min(1000, steps // 10)), **train_kwargs)
        except FloatingPointError as err:
            raise FloatingPointError(f"cell {self.cell.id}, SAE {name!r} ({variant}): {err}") from None
        sae.eval()
        from synthsae.experiments.recipes._common import convergence_row

        self.trained[name] = convergence_row(history, "" if name == "sae" else f"{name}.")
        return sae, history

    def save_sae(self, sae, name: str = "model") -> Path:
        return sae.save(self.folder / name)

    def load_sae(self, cell_id: str, name: str = "model"):
        """The SAE a needed cell saved with `save_sae`."""
        from synthsae.sae.base import SAE

        return SAE.load(self.inputs[cell_id] / name, device=self.device)


def _experiment_runner(spec: dict[str, Any], folder: Path, inputs: dict[str, Path], device: str | None,
                       progress: bool) -> dict[str, Any]:
    """A sweep trial: one experiment (one SAE) into `folder`; its row is the SAE's numeric metrics."""
    from synthsae.experiments.config import ExperimentConfig
    from synthsae.experiments.run import run_experiment

    result = run_experiment(ExperimentConfig.from_dict(spec["config"]), folder, device=device, progress=False)
    row = result.rows[0]
    return {"row": {k: v for k, v in row.items() if k not in ("label", "variant")
                    and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))}}


def _recipe_runner(spec: dict[str, Any], folder: Path, inputs: dict[str, Path], device: str | None,
                   progress: bool) -> dict[str, Any]:
    """One cell of a grid recipe."""
    from synthsae._rng import resolve_device
    from synthsae.experiments.recipes import RECIPES
    from synthsae.experiments.recipes.base import Cell

    recipe = RECIPES.get(spec["recipe"])
    config = recipe.config_class.from_dict(spec["config"])
    cell = Cell.from_dict(spec["cell"])
    ctx = CellContext(recipe, config, cell, folder, inputs, resolve_device(device or "cpu"), progress)
    out = recipe.run_cell(config, cell, ctx)
    diagnostics = {k: v for conv in ctx.trained.values() for k, v in conv.items()}
    return {"row": {**diagnostics, **dict(out.get("row", {}))}, "data": out.get("data")}


RUNNERS.register("experiment")(_experiment_runner)
RUNNERS.register("recipe")(_recipe_runner)
