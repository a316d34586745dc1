"""Hypothesis strategies and helpers for testing claims about sparse coding and SAEs.

Users import these to write their own property-based tests (see `theory/` for the pattern).
Submodules by area: `synthsae.testing.worlds`, `synthsae.testing.dictionaries`,
`synthsae.testing.problems`. Everything public is re-exported here.
"""
