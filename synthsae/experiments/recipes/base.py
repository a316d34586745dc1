"""The recipe contract: a named, configurable experiment that tests one published claim.

A recipe is a frozen `Config` subclass (its fields are the experiment's knobs, with defaults at the
documented full scale and a `small()` classmethod giving a CI-sized variant) plus a function

    run(config, out_dir: Path, device: torch.device, progress: bool) -> RecipeResult

registered in `RECIPES` with `@register_recipe(name, ConfigClass, "one-line description")`.
A result states the claim, what was measured and whether the claim held, and writes itself into a
report folder (`report.md` embedding PNG plots, `metrics.json`, one CSV per table, `config.json`).

Verdicts are computed, never asserted: a recipe lists `checks`, each a `Check(statement, outcome,
evidence)` whose outcome (True / False / None = inconclusive at this scale) comes from a stated
criterion applied to the measurements; `verdict(checks)` combines them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae.config import Config
from synthsae.registry import Registry

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
# Markdown tables in report.md show at most this many rows; the CSV always has all of them.
MAX_MARKDOWN_ROWS = 40


@dataclasses.dataclass(frozen=True)
class Recipe:
    """name: registry name; config_class: its frozen Config; run: see module docstring."""

    name: str
    config_class: type[Config]
    run: Callable[..., "RecipeResult"]
    description: str


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(name: str, config_class: type[Config], description: str):
    """Decorator registering `run(config, out_dir, device, progress) -> RecipeResult` as recipe `name`."""

    def decorate(run: Callable[..., "RecipeResult"]):
        RECIPES.register(name)(Recipe(name, config_class, run, description))
        return run

    return decorate


@dataclasses.dataclass(frozen=True)
class Check:
    """One testable part of a claim. statement: what is claimed; outcome: True (held), False (did
    not hold), None (inconclusive at this scale); evidence: the numbers and the criterion applied."""

    statement: str
    outcome: bool | None
    evidence: str


def verdict(checks: Sequence[Check]) -> bool | None:
    """Combine checks: False if any failed, True if all held, otherwise None (inconclusive)."""
    outcomes = [c.outcome for c in checks]
    if any(o is False for o in outcomes):
        return False
    if outcomes and all(o is True for o in outcomes):
        return True
    return None


def verdict_word(held: bool | None) -> str:
    return {True: "held", False: "did not hold", None: "inconclusive at this scale"}[held]


@dataclasses.dataclass
class RecipeResult:
    """What a recipe run found.

    claim: the published claim tested, with its source. measured: markdown paragraph(s) of what
    was measured. held: True / False / None (inconclusive at this scale) -- never asserted blindly.
    metrics: flat name -> float summary. tables: name -> list of row dicts (one CSV each).
    figures: name -> matplotlib Figure (one PNG each). sections: extra (title, markdown) pairs.
    checks: the parts of the claim with their outcome and evidence (`held` is usually `verdict(checks)`).
    """

    recipe: str
    config: Config
    claim: str
    measured: str
    held: bool | None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    checks: list[Check] = dataclasses.field(default_factory=list)

    def write(self, out_dir: str | Path) -> Path:
        """Write the report folder; every file atomically. Returns the path of `report.md`.

        Files: report.md (title, claim, what was measured, verdict, checks, metrics, tables,
        figures, extra sections), metrics.json, config.json, `<table>.csv` per table and
        `<figure>.png` per figure. Figures are closed after saving.
        """
        from synthsae.plots import save_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sio.atomic_write_json(out / CONFIG_FILE, {"recipe": self.recipe, "config": self.config.to_dict()})
        sio.atomic_write_json(out / METRICS_FILE, {
            "recipe": self.recipe, "held": self.held, "verdict": verdict_word(self.held),
            "checks": [{"statement": c.statement, "outcome": c.outcome, "evidence": c.evidence} for c in self.checks],
            "metrics": {k: _jsonable(v) for k, v in self.metrics.items()},
        })
        for name, rows in self.tables.items():
            sio.atomic_write_text(out / f"{name}.csv", rows_to_csv(rows))
        for name, fig in self.figures.items():
            save_png(fig, out / f"{name}.png")
        return sio.atomic_write_text(out / REPORT_FILE, self.markdown())

    def markdown(self) -> str:
        """The text of report.md (figures referenced as `<name>.png` next to it)."""
        description = RECIPES.get(self.recipe).description if self.recipe in RECIPES else ""
        lines = [f"# Recipe `{self.recipe}`" + (f": {description}" if description else ""), ""]
        lines += ["## Claim", "", self.claim.strip(), ""]
        lines += ["## What we measured", "", self.measured.strip(), ""]
        lines += ["## Verdict", "", f"**The claim {verdict_word(self.held)}.**", ""]
        if self.checks:
            lines += ["| check | outcome | evidence |", "|---|---|---|"]
            lines += [f"| {_md(c.statement)} | {verdict_word(c.outcome)} | {_md(c.evidence)} |" for c in self.checks]
            lines.append("")
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in self.metrics.items()]
        lines.append("")
        if self.tables:
            lines += ["## Tables", ""]
            for name, rows in self.tables.items():
                lines += [f"### {name}", "", f"All rows: [`{name}.csv`]({name}.csv).", ""]
                lines += _markdown_table(rows[:MAX_MARKDOWN_ROWS])
                if len(rows) > MAX_MARKDOWN_ROWS:
                    lines.append(f"\n({len(rows) - MAX_MARKDOWN_ROWS} more rows in the CSV.)")
                lines.append("")
        if self.figures:
            lines += ["## Figures", ""]
            for name in self.figures:
                lines += [f"![{name}]({name}.png)", ""]
        for title, text in self.sections:
            lines += [f"## {title}", "", text.strip(), ""]
        lines += ["## Configuration", "", "```json", json.dumps(self.config.to_dict(), indent=2), "```", ""]
        return "\n".join(lines)


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys, in first-seen order."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Row dicts -> CSV text (missing keys and NaN written as empty cells)."""
    cols = columns_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def _markdown_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols = columns_of(rows)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |" for row in rows]
    return out


def _csv_cell(v: Any) -> Any:
    v = _jsonable(v)
    return "" if v is None else v


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:
        v = v.item()  # numpy / torch scalars
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN: "not measured / not defined"
    return v


def _fmt(v: Any) -> str:
    v = _jsonable(v)
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"
    return _md(str(v))


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
