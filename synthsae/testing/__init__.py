"""Hypothesis strategies and helpers for testing claims about sparse coding and SAEs.

Users import these to write their own property-based tests (see `theory/` for the pattern).
Submodules by area: `synthsae.testing.dictionaries`, `synthsae.testing.problems`,
`synthsae.testing.worlds`, `synthsae.testing.metrics`. Everything public is re-exported here.
"""

from synthsae.testing.dictionaries import (coherence, dictionaries, gaussian_dictionary, orthonormal_dictionary,
                                           spiked_dictionary)
from synthsae.testing.problems import (PROBLEM_KINDS, ProblemInstance, sparse_code_matrix, sparse_codes,
                                       sparse_coding_problems)
from synthsae.testing.worlds import world_configs

__all__ = [
    "coherence", "dictionaries", "gaussian_dictionary", "orthonormal_dictionary", "spiked_dictionary",
    "PROBLEM_KINDS", "ProblemInstance", "sparse_code_matrix", "sparse_codes", "sparse_coding_problems",
    "world_configs",
]
