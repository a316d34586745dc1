"""`Report`: the result of `evaluate` -- scalar metrics, tables, plots, and what was not applicable --
and the one place for how results are written: `jsonable` (the NaN -> null rule), `to_csv` /
`rows_to_csv` (the CSV writer), `format_value` (the number formatter of printed tables).

Sections of `Report.table()` come from the metric-family registry (`synthsae.metrics.family`):
every key declares the section it is printed in.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthsae import io as sio
from synthsae.errors import require
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
        sio.atomic_write_json(out / METRICS_FILE, {
            "metrics": jsonable(self.metrics), "not_applicable": self.not_applicable, "notes": self.notes,
            "meta": jsonable(self.meta), "tables": list(self.tables),
        })
        sio.atomic_write_json(out / PLOT_DATA_FILE, jsonable(self.plot_data))
        for name, table in self.tables.items():
            sio.atomic_write_text(out / f"{name}.csv", to_csv(table))
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
        plot_data = {k: _arrays(v) for k, v in json.loads(plot_path.read_text()).items()} if plot_path.is_file() else {}
        metrics = {k: (math.nan if v is None else v) for k, v in data["metrics"].items()}
        return cls(metrics, tables, dict(data.get("not_applicable", {})), list(data.get("notes", [])),
                   dict(data.get("meta", {})), plot_data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self._content() == other._content()

    __hash__ = None  # mutable, compared by content

    def _content(self) -> dict[str, Any]:
        return {"metrics": jsonable(self.metrics), "not_applicable": dict(self.not_applicable),
                "notes": list(self.notes), "meta": jsonable(self.meta), "plot_data": jsonable(self.plot_data),
                "tables": {n: {c: jsonable(np.asarray(v)) for c, v in t.items()} for n, t in self.tables.items()}}

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
                lines.append(f"  {short:<32} {format_value(self.metrics[k])}")
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


def to_csv(table: dict[str, Any]) -> str:
    """Columns of equal length -> CSV text. NaN / None are written as empty cells (±inf as inf), floats
    with full precision (repr), numpy integers and booleans as ints."""
    cols = list(table)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    n = len(next(iter(table.values()))) if cols else 0
    arrays = [np.asarray(table[c]) for c in cols]  # a list column takes one dtype, as an array would
    for i in range(n):
        w.writerow([_cell(a[i]) for a in arrays])
    return buf.getvalue()


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Row dicts -> CSV text with the union of their keys (first-seen order); a missing key is an empty cell."""
    cols = list(dict.fromkeys(k for row in rows for k in row))
    return to_csv({c: [row.get(c) for row in rows] for c in cols})


_INT = re.compile(r"-?[0-9]+")


def from_csv(text: str) -> dict[str, np.ndarray]:
    """CSV text written by `to_csv` -> columns: int64 when every cell is an integer, float64 when every
    cell is a number or empty (empty = NaN), otherwise str."""
    rows = list(csv.reader(io.StringIO(text)))
    require(len(rows) >= 1, "CSV table", "empty text", "a table has a header line", "text written by to_csv")
    header, body = rows[0], rows[1:]
    out = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in body]
        if all(_INT.fullmatch(c) for c in cells) and cells:
            out[name] = np.array([int(c) for c in cells], dtype=np.int64)
            continue
        try:
            out[name] = np.array([float(c) if c else math.nan for c in cells], dtype=np.float64)
        except ValueError:
            out[name] = np.array(cells, dtype=str)
    return out


def _cell(v: Any) -> Any:
    if isinstance(v, np.bool_):
        return int(v)
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else v  # repr: shortest text that reads back to the same float


def jsonable(v: Any) -> Any:
    """Plain JSON data: numpy / torch scalars and arrays become Python numbers and lists, tuples
    become lists, and every non-finite float becomes None (JSON has no NaN; the reason a value is
    missing lives next to it, e.g. in `Report.not_applicable`)."""
    if hasattr(v, "tolist") and callable(v.tolist) and not isinstance(v, (str, bytes)):
        v = v.tolist()  # numpy / torch scalars and arrays
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def _arrays(v: Any) -> Any:
    """JSON plot data back to arrays: a (nested, rectangular) list of numbers / nulls -> float64 array."""
    if isinstance(v, dict):
        return {k: _arrays(x) for k, x in v.items()}
    if not isinstance(v, list):
        return v
    try:
        return np.array([math.nan if x is None else x for x in v] if all(not isinstance(x, list) for x in v)
                        else [_arrays(x) for x in v], dtype=np.float64)
    except (ValueError, TypeError):
        return [_arrays(x) for x in v]


def format_value(v: Any, digits: int = 4) -> str:
    """One number for a printed table: "n/a" for NaN / None, integers without decimals, else `digits`
    significant digits."""
    v = jsonable(v)
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.{digits}g}"
    return str(v)
