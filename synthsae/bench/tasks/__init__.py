"""The built-in bench tasks, one file each; importing this package registers them (in report order)."""

from synthsae.bench.tasks import recovery, absorption, hedging, mixing, stability, amortization, synthsaebench  # noqa: F401
