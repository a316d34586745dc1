"""Recipes that reproduce published claims (issue 7). Importing this package registers them all.

    from synthsae.experiments.recipes import RECIPES
    recipe = RECIPES.get("starvation")
    result = recipe.run(recipe.config_class.small(), out_dir, torch.device("cpu"), progress=False)
    result.write(out_dir)
"""

from synthsae.experiments.recipes.base import (RECIPES, Cell, CellResult, Check, Recipe, RecipeResult,
                                               register_grid_recipe, register_recipe, verdict)
# Importing the recipe modules registers them.
from synthsae.experiments.recipes import absorption, amortization, e2e_finetune, sanity_baselines, shrinkage, stability, starvation, synthsaebench  # noqa: F401
from synthsae.experiments.recipes import aen_spiked, composition  # noqa: F401

__all__ = ["RECIPES", "Cell", "CellResult", "Check", "Recipe", "RecipeResult", "register_grid_recipe", "register_recipe",
           "verdict"]
