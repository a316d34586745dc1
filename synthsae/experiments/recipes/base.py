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
criterion applied to the measurements; `verdict(checks)` combines them into "held", "did not hold",
"mixed" or "inconclusive" (rule in `verdict`; docs/recipes.md). The shared machinery a recipe uses
for that lives in `_common`: `directional_check` (a 2-SE comparison over seeds that can report the
opposite direction), `threshold_check` (the same rule against a stated criterion), `sign_check`,
`all_of`, `guard_convergence` (checks on SAEs that did not converge become inconclusive; every cell's
row carries the convergence diagnostic, added by the engine), `matched_l0`, `add_l0_problems`,
`never_fired` (the one definition of a dead latent), `aen_arm`.

Conformance: a recipe with an AEN arm exports `aen_arms(config) -> [(label, hyperparameters,
n_steps)]` from its module, and `tests/experiments/test_recipes.py` checks that every arm's adaptive
weights switch on within its run (add the recipe's name to `AEN_RECIPES` there; a recipe whose cells
build an "aen" SAE without declaring it fails there).
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


HELD, NOT_HELD, MIXED, INCONCLUSIVE = "held", "did not hold", "mixed", "inconclusive"
VERDICTS = (HELD, NOT_HELD, MIXED, INCONCLUSIVE)


@dataclasses.dataclass(frozen=True)
class Check:
    """One testable part of a claim. statement: what is claimed; outcome: True (held), False (did
    not hold), None (inconclusive at this scale); evidence: the numbers and the criterion applied.

    finding: what the data showed instead when it points the *other* way (e.g. "AEN increases
    starvation: 0.025-0.15 vs 0"); the verdict line repeats it. sub_claim: True for a check that is
    not part of the published claim (e.g. pooling in `stability`): reported in its own table and left
    out of the claim's verdict. uses: labels of the SAEs (or SAE groups) the check is computed from,
    matched by prefix by `guard_convergence`; () = every SAE the guard is given."""

    statement: str
    outcome: bool | None
    evidence: str
    finding: str = ""
    sub_claim: bool = False
    uses: tuple[str, ...] = ()


def verdict(checks: Sequence[Check]) -> str:
    """Combine the main (non-sub-claim) checks into one of `VERDICTS`. The rule: a held or failed
    check is *decisive*, an inconclusive one is not.

    * no decisive check (none, or all inconclusive)       -> "inconclusive"
    * every decisive check held, none inconclusive         -> "held"
    * every decisive check held, some inconclusive         -> "inconclusive" (part of the claim unjudged)
    * every decisive check failed (any inconclusive)       -> "did not hold"
    * some decisive checks held and some failed            -> "mixed"
    """
    outcomes = [c.outcome for c in checks if not c.sub_claim]
    held = sum(o is True for o in outcomes)
    failed = sum(o is False for o in outcomes)
    if held and failed:
        return MIXED
    if failed:
        return NOT_HELD
    if held and held == len(outcomes):
        return HELD
    return INCONCLUSIVE


def verdict_word(held: bool | str | None) -> str:
    """A check outcome (True / False / None) or a verdict string -> its word ("held", "did not hold",
    "mixed", "inconclusive")."""
    if isinstance(held, str):
        if held not in VERDICTS:
            raise ValueError(f"verdict = {held!r} is invalid: not a verdict. Expected: one of {list(VERDICTS)}.")
        return held
    return {True: HELD, False: NOT_HELD, None: INCONCLUSIVE}[held]


def verdict_sentence(held: bool | str | None, checks: Sequence[Check] = ()) -> str:
    """The verdict line of a report, e.g. "**The claim did not hold.** Found instead: AEN increases
    starvation: ...". Findings of failed main checks are appended."""
    word = verdict_word(held)
    head = {HELD: "**The claim held.**", NOT_HELD: "**The claim did not hold.**",
            MIXED: "**Mixed: parts of the claim held and parts did not.**",
            INCONCLUSIVE: "**Inconclusive at this scale: the checks could not judge the claim.**"}[word]
    found = [c.finding for c in checks if c.finding and not c.sub_claim]
    if found:
        head += " Found instead: " + "; ".join(f.rstrip(".") for f in found) + "."
    return head


@dataclasses.dataclass
class RecipeResult:
    """What a recipe run found.

    claim: the published claim tested, with its source. measured: markdown paragraph(s) of what
    was measured. held: the verdict, one of `VERDICTS` ("held", "did not hold", "mixed",
    "inconclusive"; True / False / None are accepted and stored as "held" / "did not hold" /
    "inconclusive") -- never asserted blindly: usually `verdict(checks)`.
    metrics: flat name -> float summary. tables: name -> list of row dicts (one CSV each).
    figures: name -> matplotlib Figure (one PNG each). sections: extra (title, markdown) pairs.
    checks: the parts of the claim with their outcome and evidence (sub-claims in their own table).
    metadata: how the run was made (wall time, versions, git commit, device, threads, the command that
    reproduces it); filled by the engine (`provenance.run_metadata`), shown under "Run".
    """

    recipe: str
    config: Config
    claim: str
    measured: str
    held: str | bool | None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    checks: list[Check] = dataclasses.field(default_factory=list)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.held = verdict_word(self.held)

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
        from synthsae.experiments.provenance import RECIPE_TOML, recipe_toml

        sio.atomic_write_text(out / RECIPE_TOML, recipe_toml(self.recipe, self.config))
        tables.write_json(out / METRICS_FILE, {
            "recipe": self.recipe, "held": self.held, "verdict": verdict_word(self.held),
            "checks": [{"statement": c.statement, "outcome": c.outcome, "word": verdict_word(c.outcome),
                        "evidence": c.evidence, "finding": c.finding, "sub_claim": c.sub_claim} for c in self.checks],
            "metrics": self.metrics, "run": self.metadata,
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
        lines += ["## Verdict", "", verdict_sentence(self.held, self.checks), ""]
        main = [c for c in self.checks if not c.sub_claim]
        sub = [c for c in self.checks if c.sub_claim]
        if main:
            lines += _check_table(main) + [""]
            lines += [f"Verdict rule: {VERDICT_RULE}", ""]
        if sub:
            lines += ["### Sub-claims (not part of the published claim; they do not enter the verdict)", ""]
            lines += _check_table(sub) + [""]
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
        if self.metadata:
            from synthsae.experiments.provenance import metadata_markdown

            lines += metadata_markdown(self.metadata)
        lines += ["## Configuration", "", "```json", json.dumps(self.config.to_dict(), indent=2), "```", ""]
        return "\n".join(lines)


VERDICT_RULE = ("a check that held or did not hold is decisive; all decisive checks held and none inconclusive -> "
                "held; all decisive checks failed -> did not hold; some held and some failed -> mixed; otherwise "
                "(no decisive check, or held ones beside inconclusive ones) -> inconclusive. Sub-claims do not count.")


def _check_table(checks: Sequence[Check]) -> list[str]:
    out = ["| check | outcome | evidence |", "|---|---|---|"]
    for c in checks:
        evidence = c.evidence + (f" **Found instead: {c.finding}**" if c.finding else "")
        out.append(f"| {tables.md(c.statement)} | {verdict_word(c.outcome)} | {tables.md(evidence)} |")
    return out
