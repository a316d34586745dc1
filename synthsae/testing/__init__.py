"""Hypothesis strategies and helpers for testing claims about sparse coding and SAEs.

Users import these to write their own property-based tests (see `theory/` for the pattern).
Submodules by area: `synthsae.testing.dictionaries`, `synthsae.testing.problems`,
`synthsae.testing.worlds`, `synthsae.testing.metrics`, `synthsae.testing.conditions` (the quantities
recovery theorems are stated in: ERC, irrepresentable value, primal–dual witness) and
`synthsae.testing.stats` (two-sample tests). Everything public is re-exported here.
"""

from synthsae.testing.conditions import (Witness, coherence_erc_bound, exact_recovery_coefficient,
                                         irrepresentable_value, primal_dual_witness, projection_coefficients)
from synthsae.testing.dictionaries import (coherence, coherent_dictionaries, coherent_dictionary, dictionaries,
                                           gaussian_dictionary, orthonormal_dictionaries, orthonormal_dictionary,
                                           spiked_dictionaries, spiked_dictionary, two_atom_dictionaries,
                                           two_atom_dictionary)
from synthsae.testing.problems import (PROBLEM_KINDS, ProblemInstance, sparse_code_matrix, sparse_codes,
                                       sparse_coding_problems)
from synthsae.testing.stats import mmd_permutation_test
from synthsae.testing.worlds import random_rotation, rotate_group, world_configs

__all__ = [
    "coherence", "dictionaries", "gaussian_dictionary", "orthonormal_dictionary", "spiked_dictionary",
    "coherent_dictionary", "coherent_dictionaries", "orthonormal_dictionaries", "spiked_dictionaries",
    "two_atom_dictionary", "two_atom_dictionaries",
    "Witness", "coherence_erc_bound", "exact_recovery_coefficient", "irrepresentable_value",
    "primal_dual_witness", "projection_coefficients", "mmd_permutation_test", "random_rotation", "rotate_group",
    "PROBLEM_KINDS", "ProblemInstance", "sparse_code_matrix", "sparse_codes", "sparse_coding_problems",
    "world_configs",
]
