"""One module per metric family; each registers a `synthsae.metrics.family.Family` subclass.

Every module in this package is imported by `synthsae.metrics.family.all_families()`, so a new family
is one new file here (plus its keys in docs/metrics.md, which tests/metrics/test_conformance.py
checks). The metric math lives in the modules one level up (reconstruction.py, recovery.py, ...);
these files only say what each family needs, accumulates and reports.
"""
