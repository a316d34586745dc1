"""synthsae: a synthetic ground-truth simulator and theory testbed for sparse autoencoders.

Pipeline: a `World` (planted dictionary + firing + magnitudes + noise) produces samples with
known codes -> exact, certified sparse codes (`synthsae.solvers`) -> SAEs (`synthsae.sae`,
`synthsae.train`) -> metrics against the truth (`synthsae.evaluate`) -> reports and theory checks.

Convention everywhere: atoms are the **rows** of a dictionary D of shape (m, d); a sample is
x = z D (+ noise) for a code z of shape (m,).

Top-level names are imported lazily, so `import synthsae` stays fast (cvxpy and matplotlib load
only when used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "World": "synthsae.world",
    "WorldConfig": "synthsae.world",
    "Batch": "synthsae.world",
    "SparseCodes": "synthsae.world",
    "sparse_code": "synthsae.solvers",
    "make_sae": "synthsae.sae",
    "train": "synthsae.sae",
    "TrainSettings": "synthsae.sae",
    "evaluate": "synthsae.metrics",
    "Report": "synthsae.metrics",
    "reuse_freed_memory": "synthsae._malloc",
    "bench": "synthsae.bench",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, "make" if name == "make_sae" else name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthsae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
