"""Sweeps: a base experiment and a grid over seeds, variants and hyperparameters.

A sweep TOML is an experiment TOML (with exactly one `[[sae]]`) plus a `[sweep]` table:

    [sweep]
    seeds = [0, 1, 2]                         # the experiment's root seed (SAE init + training batches)
    [sweep.grid]                              # dotted keys of the experiment config -> lists
    "sae.l1_coefficient" = [1e-3, 3e-3, 1e-2]
    "train.lr" = [1e-3, 3e-3]

Several grids (`[[sweep.grid]]` tables) are unioned, so variant-specific hyperparameters sweep
together with their variant:

    [[sweep.grid]]
    "sae.variant" = ["relu_l1", "aen"]
    "sae.l1_coefficient" = [1e-3, 3e-3]
    [[sweep.grid]]
    "sae.variant" = ["topk"]
    "sae.k" = [4, 8]

Each trial is the base experiment with one combination set (seeds innermost); its id is a hash of
its resolved config, so a trial's results do not depend on the executor, on the order trials run
in, or on which other trials the sweep has. Every trial config is built (validated) before anything
runs. Output folder:

    synthsae.json               what the folder holds (experiments.folders): this sweep's base experiment
    sweep.toml                  the sweep (its latest grid)
    trials.json                 every trial the folder holds (id -> params, config), over all grids run here
    trials/<id>/                one experiment folder per trial (run_experiment), plus cell.json
    results.csv, results.json   one row per trial: id, grid values, status, error, wall_seconds,
                                every scalar metric
    plots/<metric>_vs_<param>.png, report.md
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae import tables
from synthsae.config import Config
from synthsae.errors import ConfigError, fail, require
from synthsae.experiments import folders
from synthsae.experiments.cells import Task, read_record
from synthsae.experiments.config import ExperimentConfig
from synthsae.metrics import HEADLINE, PLOTTED  # PLOTTED: the metrics plotted against every swept parameter

TIMING_COLUMNS = ("wall_seconds", "train_seconds", "eval_seconds")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One point of a sweep: `params` (grid key -> value, plus "seed"), its resolved `config`, its `id`."""

    id: str
    params: dict[str, Any]
    config: ExperimentConfig


@dataclasses.dataclass(frozen=True)
class SweepConfig(Config):
    """A base `experiment` (exactly one SAE), `seeds` (root seeds, crossed with every grid point;
    empty = the experiment's own seed) and `grid`: one or more {dotted key: [values]} tables."""

    experiment: ExperimentConfig
    seeds: tuple[int, ...] = ()
    grid: tuple[dict[str, Any], ...] = ({},)

    def validate(self) -> None:
        require(len(self.experiment.sae) == 1, "sae", f"{len(self.experiment.sae)} SAEs",
                "each sweep trial trains one SAE", "exactly one [[sae]] table (sweep variants with "
                '"sae.variant" in the grid)')
        for s in self.seeds:
            require(isinstance(s, int) and s >= 0, "sweep.seeds", self.seeds, "seeds are non-negative ints",
                    "a list of ints >= 0")
        require(len(set(self.seeds)) == len(self.seeds), "sweep.seeds", self.seeds, "a seed is repeated",
                "distinct seeds")
        require(len(self.grid) >= 1, "sweep.grid", self.grid, "a sweep needs at least one grid (it may be empty)",
                "a [sweep.grid] table")
        for i, g in enumerate(self.grid):
            for key, values in g.items():
                require(isinstance(values, list) and len(values) >= 1, f"sweep.grid[{i}].{key}", values,
                        "each swept key takes a non-empty list of values", "a list, e.g. [1e-3, 3e-3]")
                require(key != "seed", f"sweep.grid[{i}].seed", values, "seeds have their own list",
                        "sweep.seeds = [...]")
        self.trials()  # builds every trial config: a bad value fails now, naming the key

    def trials(self) -> list[Trial]:
        """Every trial, in grid order (seeds innermost), duplicates (same resolved config) dropped."""
        seeds = list(self.seeds) or [self.experiment.seed]
        out: dict[str, Trial] = {}
        for i, g in enumerate(self.grid):
            keys = list(g)
            for combo in itertools.product(*(g[k] for k in keys)):
                for seed in seeds:
                    params = dict(zip(keys, combo))
                    try:
                        config = self.experiment.with_overrides({**params, "seed": seed})
                    except ConfigError as err:
                        raise ConfigError(f"sweep.grid[{i}] trial {params} seed {seed}: {err}") from None
                    params["seed"] = seed
                    trial = Trial(config.digest(), params, config)
                    out.setdefault(trial.id, trial)
        return list(out.values())

    def swept_keys(self) -> list[str]:
        """The grid keys in order of first appearance, then "seed"."""
        return list(dict.fromkeys(k for g in self.grid for k in g)) + ["seed"]

    def to_dict(self) -> dict[str, Any]:
        out = self.experiment.to_dict()
        out["sweep"] = {"seeds": list(self.seeds), "grid": copy.deepcopy(list(self.grid))}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> "SweepConfig":
        if not isinstance(data, dict):
            fail("sweep config", data, "must be a table", "an experiment table with a [sweep] section")
        data = dict(data)
        sweep = data.pop("sweep", None)
        if not isinstance(sweep, dict):
            fail("sweep", sweep, "a sweep config needs a [sweep] table", "[sweep] with seeds = [...] and/or "
                 "[sweep.grid]")
        unknown = set(sweep) - {"seeds", "grid"}
        if unknown:
            raise ConfigError(f"sweep: unknown key(s) {sorted(unknown)}. Valid keys: seeds, grid.")
        seeds = sweep.get("seeds", [])
        if not isinstance(seeds, list):
            fail("sweep.seeds", seeds, "expected a list", "a list of ints, e.g. [0, 1, 2]")
        grid = sweep.get("grid", {})
        grids = grid if isinstance(grid, list) else [grid]
        for i, g in enumerate(grids):
            if not isinstance(g, dict):
                fail(f"sweep.grid[{i}]", g, "a grid is a table", 'a table of dotted keys -> lists, e.g. "train.lr" = [1e-3]')
        experiment = ExperimentConfig.from_dict(data)
        return cls(experiment=experiment, seeds=tuple(seeds), grid=tuple(_flatten(g) for g in grids))

    def to_toml(self) -> str:
        import tomli_w

        from synthsae.config import _drop_none

        return tomli_w.dumps(_drop_none(self.to_dict()))


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Bare dotted TOML keys (sae.k = [...]) parse as nested tables; turn them back into dotted keys."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


# ---- running --------------------------------------------------------------------------------------
@dataclasses.dataclass
class SweepResult:
    """rows: one dict per trial (id, the grid values, status, error, wall_seconds, metrics)."""

    config: SweepConfig
    out_dir: Path
    rows: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def run_sweep(config: SweepConfig, out_dir: str | Path, executor: str = "local", n_workers: int | None = None,
              device: str | None = None, retry_failed: bool = False, progress: bool = True, overwrite: bool = False,
              **executor_options: Any) -> SweepResult:
    """Run every trial of `config` not already finished in `out_dir`, then write the table and plots.

    executor: a name in `synthsae.experiments.executors.EXECUTORS` ("local", "serial", "ray");
    executor_options: e.g. address= for ray. Every trial config and every world is built before
    `out_dir` is claimed (`folders.claim`: a folder holding another experiment, or a sweep of
    another base experiment, is refused unless overwrite=True). A finished trial (its cell.json
    exists) is skipped, unless it failed and `retry_failed`. A failing trial is recorded (status
    "failed", error) and the others go on. A sweep rerun with another grid into its own folder
    keeps the earlier trials' rows (trials.json lists every trial the folder holds).
    device: overrides the experiment's device for every trial.
    """
    from synthsae.experiments.engine import run_cells
    from synthsae.experiments.executors import EXECUTORS

    t0 = time.perf_counter()
    EXECUTORS.get(executor)(n_workers, **executor_options)  # bad options fail before any work
    trials = config.trials()
    _build_worlds(trials)
    out = Path(out_dir)
    folders.claim(out, "sweep", config.experiment.name, config.experiment.digest(), overwrite=overwrite)
    index = _update_index(out, trials)
    sio.atomic_write_text(out / "sweep.toml", config.to_toml())
    tasks = [Task(t.id, "experiment", {"config": t.config.to_dict()}, str(out / "trials" / t.id), device)
             for t in trials]
    run_cells(tasks, executor, n_workers, retry_failed=retry_failed, progress=progress, desc="sweep",
              **executor_options)
    everything = [Trial(i, entry["params"], ExperimentConfig.from_dict(entry["config"])) for i, entry in index.items()]
    keys = [k for k in dict.fromkeys(k for t in everything for k in t.params) if k != "seed"] + ["seed"]
    rows = [_row(t, read_record(out / "trials" / t.id), keys) for t in everything]
    from synthsae.experiments.provenance import run_metadata

    meta = run_metadata(out, device or config.experiment.device, time.perf_counter() - t0, reproduce=[
        "synthsae", "sweep", str(out / "sweep.toml"), "--out", f"{out}-rerun", "--executor", executor])
    _write_results(config, out, rows, keys, meta)
    return SweepResult(config, out, rows)


INDEX_FILE = "trials.json"


def _build_worlds(trials: list[Trial]) -> None:
    """Build every distinct world of the sweep: some world configs fail only when built."""
    from synthsae.experiments.engine import cached_world

    seen = set()
    for t in trials:
        wc = t.config.world_config()
        key = json.dumps(wc.to_dict(), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            try:
                cached_world(wc)
            except ConfigError as err:
                raise ConfigError(f"sweep trial {t.params}: {err}") from None


def _update_index(out: Path, trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """The folder's trials (id -> params, config): the earlier ones kept, this grid's added."""
    path = out / INDEX_FILE
    index = sio.read_json(path) if path.is_file() else {}
    for t in trials:
        index.setdefault(t.id, {"params": t.params, "config": t.config.to_dict()})
    sio.atomic_write_json(path, index)
    return index


def _row(trial: Trial, record: dict[str, Any] | None, keys: list[str]) -> dict[str, Any]:
    """One table row: id, every swept key (a key another grid sweeps shows the value this trial used,
    or None where it does not apply), status, error, wall time, metrics."""
    record = record or {"status": "failed", "error": "no result was recorded", "row": {}, "wall_seconds": None}
    resolved = trial.config.to_dict()
    (label, sae_config), = trial.config.sae_configs().items()
    resolved["sae"] = {**sae_config.to_dict(), "variant": trial.config.sae[0].variant, "label": label}
    values = {k: trial.params[k] if k in trial.params else _lookup(resolved, k) for k in keys}
    row = {"trial": trial.id, **{k: _cell(v) for k, v in values.items()}, "status": record["status"],
           "error": record.get("error", ""), "wall_seconds": tables.restore(record.get("wall_seconds"))}
    row.update(tables.restore_row(record.get("row") or {}))
    return row


def _lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _cell(v: Any) -> Any:
    v = tables.restore(v)
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def _write_results(config: SweepConfig, out: Path, rows: list[dict[str, Any]], keys: list[str],
                   meta: dict[str, Any]) -> None:
    columns = tables.columns_of(rows)
    tables.write_csv(out / "results.csv", rows, columns)
    tables.write_json(out / "results.json", {"columns": columns, "rows": rows, "run": meta})
    figures = _plots(config, out, rows, keys)
    _write_report(config, out, rows, figures, keys, meta)


def _plots(config: SweepConfig, out: Path, rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """metric vs each swept numeric parameter with more than one value, one line per variant."""
    from synthsae.experiments import plots
    from synthsae.plots import save_png

    ok = [r for r in rows if r["status"] == "ok"]
    variant = "sae.variant" if "sae.variant" in keys else None
    names = []
    for param in keys:
        values = {r.get(param) for r in ok}
        if param == "sae.variant" or len(values) < 2:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        log_x = numeric and min(values) > 0 and max(values) / min(values) >= 10
        for metric in PLOTTED:
            series: dict[str, tuple[list, list]] = {}
            for r in ok:
                y = r.get(metric)
                if y is None or (isinstance(y, float) and math.isnan(y)):
                    continue
                group = str(r.get(variant)) if variant else config.experiment.sae[0].variant
                xs, ys = series.setdefault(group, ([], []))
                xs.append(r[param] if numeric else str(r[param]))
                ys.append(y)
            if not series:
                continue
            name = f"{_slug(metric)}_vs_{_slug(param)}.png"
            save_png(plots.metric_vs_parameter(param, metric, series, log_x), out / "plots" / name)
            names.append(f"plots/{name}")
    return names


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _write_report(config: SweepConfig, out: Path, rows: list[dict[str, Any]], figures: list[str],
                  keys: list[str], meta: dict[str, Any]) -> None:
    from synthsae.experiments.provenance import metadata_markdown

    head = ["trial"] + keys + ["status"] + [t for t, _ in HEADLINE]
    lines = [f"# Sweep: {config.experiment.name}", "",
             f"{len(rows)} trials ({sum(r['status'] == 'ok' for r in rows)} ok, "
             f"{sum(r['status'] != 'ok' for r in rows)} failed). Full table: [results.csv](results.csv); "
             "the sweep: [sweep.toml](sweep.toml); each trial's report: trials/<trial>/report.md.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"[{r['trial']}](trials/{r['trial']}/report.md)"] + [str(r.get(k)) for k in keys] + [r["status"]]
        vals += [tables.fmt(r.get(k)) for _, k in HEADLINE]
        lines.append("| " + " | ".join(vals) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed trials"] + [f"- {r['trial']}: {r['error']}" for r in failed]
    if figures:
        lines += ["", "## Metrics against the swept parameters", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    lines += [""] + metadata_markdown(meta)
    sio.atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
