"""`Report`: the result of `evaluate` -- scalar metrics, tables, plots, and what was not applicable."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from synthsae import io as sio

# One line per metric family shown by `Report.table()` (prefix, title).
SECTIONS = (
    ("reconstruction.", "Reconstruction"), ("sparsity.", "Sparsity"), ("latents.", "Latents"),
    ("recovery.", "Recovery of the true dictionary"), ("classification.", "Per-latent classification (SAELens)"),
    ("absorption.", "Absorption (hierarchy)"), ("subspaces.", "Subspace groups"), ("downstream.", "Downstream"),
    ("steering.", "Steering"), ("lipschitz.", "Lipschitz"), ("amortization.", "Amortization gap"),
    ("timing.", "Timing (s)"),
)


@dataclasses.dataclass
class Report:
    """Evaluation of one SAE against a world's ground truth.

    metrics: flat dict of documented keys (docs/metrics.md) -> float; NaN only where a key is also in
        `not_applicable`.
    tables: name -> {column -> (rows,) array}; "features" has one row per true feature.
    not_applicable: metric family or key -> why it was not computed (e.g. no hierarchy).
    notes: caveats met while computing (fallbacks, small counts).
    meta: n, seed, sizes, matching route, ...
    plot_data: arrays the plots are drawn from.
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

    def save(self, directory: str | Path, plots: bool = True) -> Path:
        """Write metrics.json, one CSV per table and (if `plots`) one PNG per figure, each atomically."""
        from synthsae.plots import save_png

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        sio.atomic_write_json(out / "metrics.json", {
            "metrics": {k: _jsonable(v) for k, v in self.metrics.items()},
            "not_applicable": self.not_applicable, "notes": self.notes,
            "meta": {k: _jsonable(v) for k, v in self.meta.items()},
        })
        for name, table in self.tables.items():
            sio.atomic_write_text(out / f"{name}.csv", to_csv(table))
        if plots:
            for name, fig in self.figures().items():
                save_png(fig, out / f"{name}.png")
        return out

    def table(self) -> str:
        """A readable plain-text summary of every metric, grouped by family."""
        lines = [f"synthsae evaluation: SAE with {self.meta.get('m_sae')} latents on a world with "
                 f"m = {self.meta.get('m')}, d = {self.meta.get('d')} (n = {self.meta.get('n')}, seed = {self.meta.get('seed')})"]
        for prefix, title in SECTIONS:
            keys = [k for k in self.metrics if k.startswith(prefix)]
            na = [k for k in self.not_applicable if k.startswith(prefix.rstrip("."))]
            if not keys and not na:
                continue
            lines.append(f"\n{title}")
            for k in keys:
                lines.append(f"  {k[len(prefix):]:<32} {_fmt(self.metrics[k])}")
            for k in na:
                lines.append(f"  (not applicable: {self.not_applicable[k]})")
        if self.notes:
            lines.append("\nNotes")
            lines.extend(f"  - {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def to_csv(table: dict[str, np.ndarray]) -> str:
    """Columns of equal length -> CSV text (NaN written as empty)."""
    cols = list(table)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    n = len(next(iter(table.values()))) if cols else 0
    arrays = [np.asarray(table[c]) for c in cols]
    for i in range(n):
        w.writerow(["" if isinstance(a[i], float | np.floating) and math.isnan(a[i]) else _cell(a[i]) for a in arrays])
    return buf.getvalue()


def _cell(v):
    if isinstance(v, np.floating | float):
        return repr(float(v))
    if isinstance(v, np.integer | np.bool_):
        return int(v)
    return v


def _jsonable(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN; the key's reason is in "not_applicable"
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _fmt(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.4g}"
