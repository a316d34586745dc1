"""Experiments: configs, runs, sweeps and the recipes that reproduce published claims.

    from synthsae.experiments import ExperimentConfig, run_experiment, SweepConfig, run_sweep
    config = ExperimentConfig.load("configs/topk_vs_relu.toml")
    result = run_experiment(config, "runs/topk")          # report folder: report.md, metrics, plots
    sweep = run_sweep(SweepConfig.load("configs/sweep_l1.toml"), "sweeps/l1", executor="local")

`synthsae.experiments.recipes.RECIPES` maps a recipe name to a `Recipe`: its config class, the grid of
cells it declares and the `conclude` that turns their rows into a `RecipeResult`;

    result, report = run_recipe(RECIPES.get("starvation"), config, "runs/starv", executor="local")

Sweeps and recipes run on one engine (`engine.run_cells`: cells checkpoint, are skipped when
finished, run on the serial / local / Ray executors); every command claims its output folder
through one rule (`folders.claim`: another experiment's folder is refused). Names are imported
lazily, so importing a submodule (e.g. the recipes) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExperimentConfig": "synthsae.experiments.config",
    "run_experiment": "synthsae.experiments.run",
    "ExperimentResult": "synthsae.experiments.run",
    "SweepConfig": "synthsae.experiments.sweep",
    "SweepResult": "synthsae.experiments.sweep",
    "run_sweep": "synthsae.experiments.sweep",
    "demo_config": "synthsae.experiments.demo",
    "EXECUTORS": "synthsae.experiments.executors",
    "run_recipe": "synthsae.experiments.engine",
    "run_grid": "synthsae.experiments.engine",
    "run_cells": "synthsae.experiments.engine",
    "claim": "synthsae.experiments.folders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthsae.experiments' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
