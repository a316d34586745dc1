"""`synthsae bench`: score any SAE -- ours or a user's own class -- on a suite of tasks, each a world
built to isolate one failure mode, at matched L0, over seeds, with confidence intervals and
rankings that declare ties. See docs/bench.md.

    >>> import synthsae
    >>> board = synthsae.bench(tier="lite", saes=["topk", "my_sae.py:MySAE"], out="bench")  # doctest: +SKIP
"""

from synthsae.bench.runner import MAIN_VARIANTS, bench
from synthsae.bench.task import TASKS, BenchTask, Metric, Scale, register_task

__all__ = ["bench", "TASKS", "BenchTask", "Metric", "Scale", "register_task", "MAIN_VARIANTS"]


# `import synthsae.bench` makes the attribute `synthsae.bench` this module (Python binds a
# subpackage on its parent), which would hide the function; so the module itself is callable:
# `synthsae.bench(...)` runs `bench(...)` however the names were imported.
import sys as _sys
import types as _types


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        return bench(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
