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

    sweep.toml                  the sweep
    trials/<id>/                one experiment folder per trial (run_experiment), plus trial.json
    results.csv, results.json   one row per trial: id, grid values, status, error, wall_seconds,
                                every scalar metric
    plots/<metric>_vs_<param>.png, report.md
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.experiments.config import ExperimentConfig
from synthsae.metrics.report import to_csv

# headline metrics plotted against every swept parameter (docs/metrics.md)
PLOTTED = ("reconstruction.explained_variance", "sparsity.l0", "recovery.mcc", "recovery.rate@0.9",
           "latents.dead_fraction", "recovery.shrinkage_median", "absorption.rate")
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
                    except ValueError as err:
                        raise ValueError(f"sweep.grid[{i}] trial {params} seed {seed}: {err}") from None
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
            raise ValueError(f"sweep: unknown key(s) {sorted(unknown)}. Valid keys: seeds, grid.")
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
              device: str | None = None, retry_failed: bool = False, progress: bool = True,
              **executor_options: Any) -> SweepResult:
    """Run every trial of `config` not already finished in `out_dir`, then write the table and plots.

    executor: a name in `synthsae.experiments.executors.EXECUTORS` ("local", "serial", "ray");
    executor_options: e.g. address= for ray. A finished trial (its trial.json exists) is skipped,
    unless it failed and `retry_failed`. A failing trial is recorded (status "failed", error) and
    the others go on. device: overrides the experiment's device for every trial.
    """
    from synthsae.experiments.executors import EXECUTORS, TrialTask
    from synthsae.experiments.trial import read_record, write_record

    make_executor = EXECUTORS.get(executor)
    runner = make_executor(n_workers, **executor_options)  # bad options fail before any work
    out = Path(out_dir)
    trials = config.trials()
    out.mkdir(parents=True, exist_ok=True)
    sio.atomic_write_text(out / "sweep.toml", config.to_toml())
    todo = []
    for t in trials:
        record = read_record(out / "trials" / t.id)
        if record is None or (retry_failed and record.get("status") != "ok"):
            todo.append(TrialTask(t.id, t.config.to_dict(), str(out / "trials" / t.id), device))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(trials), initial=len(trials) - len(todo), desc=f"sweep ({executor})", unit="trial")

    def on_done(task, record) -> None:
        if read_record(task.out_dir) is None:  # a crashed worker, or a Ray node without the shared folder
            write_record(task.out_dir, record)
        if bar is not None:
            bar.update(1)
            if record.get("status") != "ok":
                bar.write(f"trial {task.trial_id} failed: {record.get('error')}")

    try:
        if todo:
            runner.run(todo, on_done)
    finally:
        if bar is not None:
            bar.close()
    rows = [_row(t, read_record(out / "trials" / t.id), config.swept_keys()) for t in trials]
    _write_results(config, out, rows)
    return SweepResult(config, out, rows)


def _row(trial: Trial, record: dict[str, Any] | None, keys: list[str]) -> dict[str, Any]:
    """One table row: id, every swept key (a key another grid sweeps shows the value this trial used,
    or None where it does not apply), status, error, wall time, metrics."""
    record = record or {"status": "failed", "error": "no result was recorded", "metrics": {}, "wall_seconds": None}
    resolved = trial.config.to_dict()
    (label, sae_config), = trial.config.sae_configs().items()
    resolved["sae"] = {**sae_config.to_dict(), "variant": trial.config.sae[0].variant, "label": label}
    values = {k: trial.params[k] if k in trial.params else _lookup(resolved, k) for k in keys}
    row = {"trial": trial.id, **{k: _cell(v) for k, v in values.items()}, "status": record["status"],
           "error": record.get("error", ""), "wall_seconds": _nan(record.get("wall_seconds"))}
    row.update({k: _nan(v) for k, v in record.get("metrics", {}).items()})
    return row


def _lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _cell(v: Any) -> Any:
    if v is None:
        return math.nan
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def _nan(v: Any) -> Any:
    return math.nan if v is None else v


def _write_results(config: SweepConfig, out: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = {c: [r.get(c, math.nan) if c not in ("status", "error") else r.get(c, "") for r in rows]
             for c in columns}
    sio.atomic_write_text(out / "results.csv", to_csv(table))
    sio.atomic_write_json(out / "results.json", {"columns": columns, "rows": [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]})
    figures = _plots(config, out, rows)
    _write_report(config, out, rows, figures)


def _plots(config: SweepConfig, out: Path, rows: list[dict[str, Any]]) -> list[str]:
    """metric vs each swept numeric parameter with more than one value, one line per variant."""
    from synthsae.experiments import plots
    from synthsae.plots import save_png

    ok = [r for r in rows if r["status"] == "ok"]
    variant = "sae.variant" if "sae.variant" in config.swept_keys() else None
    names = []
    for param in config.swept_keys():
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


def _write_report(config: SweepConfig, out: Path, rows: list[dict[str, Any]], figures: list[str]) -> None:
    from synthsae.experiments.run import HEADLINE, _fmt

    keys = config.swept_keys()
    head = ["trial"] + keys + ["status"] + [t for t, _ in HEADLINE]
    lines = [f"# Sweep: {config.experiment.name}", "",
             f"{len(rows)} trials ({sum(r['status'] == 'ok' for r in rows)} ok, "
             f"{sum(r['status'] != 'ok' for r in rows)} failed). Full table: [results.csv](results.csv); "
             "the sweep: [sweep.toml](sweep.toml); each trial's report: trials/<trial>/report.md.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"[{r['trial']}](trials/{r['trial']}/report.md)"] + [str(r.get(k)) for k in keys] + [r["status"]]
        vals += [_fmt(r.get(k, math.nan)) if isinstance(r.get(k, math.nan), float) else str(r.get(k))
                 for _, k in HEADLINE]
        lines.append("| " + " | ".join(vals) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed trials"] + [f"- {r['trial']}: {r['error']}" for r in failed]
    if figures:
        lines += ["", "## Metrics against the swept parameters", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    sio.atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
