"""`synthsae bench`: score any SAE -- ours or a user's own class -- on a suite of tasks, each a world
built to isolate one failure mode, at matched L0, over seeds, with confidence intervals and
rankings that declare ties. See docs/bench.md.

    >>> import synthsae
    >>> board = synthsae.bench(tier="lite", saes=["topk", "my_sae.py:MySAE"], out="bench")  # doctest: +SKIP
"""

from synthsae.bench.runner import MAIN_VARIANTS, bench
from synthsae.bench.task import TASKS, BenchTask, Metric, Scale, register_task

__all__ = ["bench", "TASKS", "BenchTask", "Metric", "Scale", "register_task", "MAIN_VARIANTS"]
