"""The recipe contract: a named, configurable experiment that tests one published claim.

A recipe is a frozen `Config` subclass (its fields are the experiment's knobs, with defaults at the
documented full scale and a `small()` classmethod giving a CI-sized variant) plus what to run and
what to conclude, registered in `RECIPES`:

    register_grid_recipe(name, ConfigClass, "one-line description",
                         cells=..., world=..., run_cell=..., conclude=...)

declares a grid of `Cell`s that the experiment engine (`synthsae.experiments.engine`) runs,
checkpoints, resumes and parallelizes, and a `conclude(config, results)` that turns the finished
cells' rows into a `RecipeResult`. (A recipe may instead be one function
`run(config, out_dir, device, progress) -> RecipeResult`, registered with `@register_recipe`; it
neither resumes nor runs in parallel.)

A result states the claim, what was measured and whether the claim held, and writes itself into a
report folder (`report.md` embedding PNG plots, `metrics.json`, one CSV per table, `config.json`).

Verdicts are computed, never asserted: a recipe lists `checks`, each a `Check(statement, outcome,
evidence)` whose outcome (True / False / None = inconclusive at this scale) comes from a stated
criterion applied to the measurements; `verdict(checks)` combines them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synthsae import io as sio
from synthsae import tables
from synthsae.config import Config
from synthsae.registry import Registry

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
# Markdown tables in report.md show at most this many rows; the CSV always has all of them.
MAX_MARKDOWN_ROWS = 40


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of a recipe's grid. id: unique, readable, stable (it names the cell's folder);
    params: JSON-able coordinates (world, SAE, hyperparameters, seed: whatever run_cell needs);
    needs: ids of cells whose folders this one reads (they run first)."""

    id: str
    params: dict[str, Any]
    needs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "params": self.params, "needs": list(self.needs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(data["id"], dict(data["params"]), tuple(data.get("needs", ())))


@dataclasses.dataclass(frozen=True)
class CellResult:
    """A finished cell: its `row` (scalars, NaN where undefined) and `data` (JSON-able extras)."""

    cell: Cell
    row: dict[str, Any]
    data: Any = None

    @property
    def params(self) -> dict[str, Any]:
        return self.cell.params


@dataclasses.dataclass(frozen=True)
class Recipe:
    """name: registry name; config_class: its frozen Config; description: one line.
    A grid recipe has cells / world / run_cell / conclude (see module docstring) and `run` runs it
    through the engine in this process; a one-function recipe has only `run`."""

    name: str
    config_class: type[Config]
    run: Callable[..., "RecipeResult"]
    description: str
    cells: Callable[[Any], list[Cell]] | None = None
    world: Callable[[Any, dict[str, Any]], Any] | None = None
    run_cell: Callable[..., dict[str, Any]] | None = None
    conclude: Callable[[Any, list[CellResult]], "RecipeResult"] | None = None


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(name: str, config_class: type[Config], description: str):
    """Decorator registering `run(config, out_dir, device, progress) -> RecipeResult` as recipe `name`."""

    def decorate(run: Callable[..., "RecipeResult"]):
        RECIPES.register(name)(Recipe(name, config_class, run, description))
        return run

    return decorate


def register_grid_recipe(name: str, config_class: type[Config], description: str, *, cells, world, run_cell,
                         conclude) -> Recipe:
    """Register a grid recipe (see module docstring); returns it. Its `run(config, out_dir, device,
    progress)` runs the grid serially in this process (resuming in out_dir)."""

    def run(config, out_dir, device=None, progress=False, **engine_options):
        from synthsae.experiments.engine import run_grid

        return run_grid(RECIPES.get(name), config, out_dir, device, progress, **engine_options)

    recipe = Recipe(name, config_class, run, description, cells, world, run_cell, conclude)
    RECIPES.register(name)(recipe)
    return recipe


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
        tables.write_json(out / METRICS_FILE, {
            "recipe": self.recipe, "held": self.held, "verdict": verdict_word(self.held),
            "checks": [{"statement": c.statement, "outcome": c.outcome, "evidence": c.evidence} for c in self.checks],
            "metrics": self.metrics,
        })
        for name, rows in self.tables.items():
            tables.write_csv(out / f"{name}.csv", rows)
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
            lines += [f"| {tables.md(c.statement)} | {verdict_word(c.outcome)} | {tables.md(c.evidence)} |" for c in self.checks]
            lines.append("")
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {tables.fmt(v)} |" for k, v in self.metrics.items()]
        lines.append("")
        if self.tables:
            lines += ["## Tables", ""]
            for name, rows in self.tables.items():
                lines += [f"### {name}", "", f"All rows: [`{name}.csv`]({name}.csv).", ""]
                lines += tables.markdown_table(rows[:MAX_MARKDOWN_ROWS])
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
