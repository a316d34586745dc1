"""`Report`: the result of `evaluate` -- scalar metrics, tables, plots, and what was not applicable --
saved and loaded through `synthsae.tables` (the one NaN -> null rule, CSV writer / reader and number
formatter; `jsonable`, `to_csv` / `rows_to_csv`, `from_csv` and `format_value` are its names here).

Sections of `Report.table()` come from the metric-family registry (`synthsae.metrics.family`):
every key declares the section it is printed in.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from synthsae.errors import require
from synthsae.tables import clean, fmt, from_csv, restore, restore_arrays, to_csv, write_csv, write_json
from synthsae.metrics.family import all_keys, key_spec, sections

METRICS_FILE = "metrics.json"
PLOT_DATA_FILE = "plot_data.json"
OTHER_SECTION = "Other"
SECTIONS = sections()  # section titles of `Report.table()`, in order (derived from the registry)


@dataclasses.dataclass(eq=False)
class Report:
    """Evaluation of one SAE against a world's ground truth.

    metrics: flat dict of documented keys (docs/metrics.md) -> float; NaN only where `reason(key)`
        finds why in `not_applicable`.
    tables: name -> {column -> (rows,) array}; "features" has one row per true feature.
    not_applicable: metric family or key -> why it was not computed (e.g. no hierarchy).
    notes: caveats met while computing (fallbacks, small counts).
    meta: n, seed, sizes, matching route, ...
    plot_data: arrays the plots are drawn from.

    Two reports are equal when they save the same content (`save` / `load` round-trip): metric
    values compare with NaN equal to NaN, tables and plot data by value, tuples as lists.
    """

    metrics: dict[str, float]
    tables: dict[str, dict[str, np.ndarray]]
    not_applicable: dict[str, str]
    notes: list[str]
    meta: dict[str, Any]
    plot_data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def features(self) -> dict[str, np.ndarray]:
        """The per-true-feature table."""
        return self.tables["features"]

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def figures(self) -> dict[str, Any]:
        """name -> matplotlib Figure for every plot this report has data for."""
        from synthsae import plots

        figs = {}
        pd = self.plot_data
        if "heatmap" in pd:
            figs["cosine_heatmap"] = plots.cosine_heatmap(pd["heatmap"])
        if "recovery_curve" in pd:
            figs["recovery_curve"] = plots.recovery_curve(*pd["recovery_curve"])
        f = self.tables.get("features")
        if f is not None and "true_fire_rate" in f:
            figs["firing_vs_recovery"] = plots.firing_vs_recovery(f["true_fire_rate"], f["cos"])
        a = self.tables.get("absorption_pairs")
        if a is not None and len(a["parent"]):
            figs["absorption_matrix"] = plots.absorption_matrix(
                a["parent"], a["child"], np.nan_to_num(a["full_rate"] + a["partial_rate"], nan=np.nan))
        if "stability" in pd:
            figs["stability_histogram"] = plots.stability_histogram(pd["stability"])
        return figs

    def reason(self, key: str) -> str | None:
        """Why `key` is not applicable: the `not_applicable` entry naming it or the longest prefix of it."""
        hits = [k for k in self.not_applicable if key.startswith(k)]
        return self.not_applicable[max(hits, key=len)] if hits else None

    def save(self, directory: str | Path, plots: bool = True) -> Path:
        """Write metrics.json, plot_data.json, one CSV per table and (if `plots`) one PNG per figure,
        each atomically. Non-finite numbers are written as null (their reason is in not_applicable)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / METRICS_FILE, {
            "metrics": self.metrics, "not_applicable": self.not_applicable, "notes": self.notes,
            "meta": self.meta, "tables": list(self.tables),
        })
        write_json(out / PLOT_DATA_FILE, self.plot_data)
        for name, table in self.tables.items():
            write_csv(out / f"{name}.csv", table)
        if plots:
            from synthsae.plots import save_png

            for name, fig in self.figures().items():
                save_png(fig, out / f"{name}.png")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Report:
        """The Report that `save(directory)` wrote (null metrics become NaN; tables from their CSVs)."""
        folder = Path(directory)
        path = folder / METRICS_FILE
        require(path.is_file(), "directory", str(folder), f"it has no {METRICS_FILE}",
                "a folder written by Report.save (or synthsae evaluate --out)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            require(False, str(path), f"invalid JSON ({err})", "the file is damaged", "a metrics.json from Report.save")
        require(isinstance(data, dict) and isinstance(data.get("metrics"), dict), str(path), type(data).__name__,
                "it has no 'metrics' table", "a metrics.json from Report.save")
        names = data.get("tables")
        if names is None:  # written before table names were recorded
            names = sorted(p.stem for p in folder.glob("*.csv"))
        tables = {name: from_csv((folder / f"{name}.csv").read_text()) for name in names}
        plot_path = folder / PLOT_DATA_FILE
        plot_data = restore_arrays(json.loads(plot_path.read_text())) if plot_path.is_file() else {}
        metrics = {k: restore(v) for k, v in data["metrics"].items()}
        return cls(metrics, tables, dict(data.get("not_applicable", {})), list(data.get("notes", [])),
                   dict(data.get("meta", {})), plot_data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self._content() == other._content()

    __hash__ = None  # mutable, compared by content

    def _content(self) -> dict[str, Any]:
        return {"metrics": clean(self.metrics), "not_applicable": dict(self.not_applicable),
                "notes": list(self.notes), "meta": clean(self.meta), "plot_data": clean(self.plot_data),
                "tables": {n: {c: clean(np.asarray(v)) for c, v in t.items()} for n, t in self.tables.items()}}

    def table(self) -> str:
        """A readable plain-text summary of every metric, grouped by the sections of the registry."""
        lines = [f"synthsae evaluation: SAE with {self.meta.get('m_sae')} latents on a world with "
                 f"m = {self.meta.get('m')}, d = {self.meta.get('d')} (n = {self.meta.get('n')}, seed = {self.meta.get('seed')})"]
        keys: dict[str, list[str]] = {t: [] for t in (*sections(), OTHER_SECTION)}
        reasons: dict[str, list[str]] = {t: [] for t in keys}
        for k in self.metrics:
            spec = key_spec(k)
            keys[spec.section if spec else OTHER_SECTION].append(k)
        for k in self.not_applicable:
            reasons[_section_of(k)].append(k)
        for title in keys:
            if not keys[title] and not reasons[title]:
                continue
            lines.append(f"\n{title}")
            for k in keys[title]:
                short = k.split(".", 1)[1] if title != OTHER_SECTION else k
                lines.append(f"  {short:<32} {fmt(self.metrics[k])}")
            for k in reasons[title]:
                lines.append(f"  (not applicable: {self.not_applicable[k]})")
        if self.notes:
            lines.append("\nNotes")
            lines.extend(f"  - {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _section_of(name: str) -> str:
    """Section of a not_applicable entry: that of the key it names, or of the first key it prefixes."""
    spec = key_spec(name)
    if spec is not None:
        return spec.section
    for k in all_keys():
        if k.name.startswith(name):
            return k.section
    return OTHER_SECTION


# The names this module gave the rules of `synthsae.tables` before they moved there (public API).
jsonable = clean
format_value = fmt
rows_to_csv = to_csv
__all__ = ["Report", "SECTIONS", "format_value", "from_csv", "jsonable", "rows_to_csv", "to_csv"]
