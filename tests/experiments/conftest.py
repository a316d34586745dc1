"""Fixtures of the experiment tests: tiny experiment configs (seconds, not minutes) and table comparison."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from synthsae.experiments.config import ExperimentConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
TIMING = ("wall_seconds", "train_seconds", "eval_seconds")


def tiny_experiment(saes=None, plots: bool = False, **changes) -> ExperimentConfig:
    """Two small SAEs on the toy world, 8 training steps, 2048 evaluation samples."""
    data = {
        "name": "tiny",
        "world": {"preset": "toy"},
        "sae": saes or [{"variant": "topk", "m": 32, "k": 4}, {"variant": "relu_l1", "m": 32, "l1_coefficient": 3e-3}],
        "train": {"n_samples": 4096, "batch_size": 512, "lr": 3e-3, "checkpoint_every": 2},
        "eval": {"n": 2048, "metrics": ["reconstruction", "recovery"]},
        "plots": plots,
    }
    data.update(changes)
    return ExperimentConfig.from_dict(data)


def comparable(rows):
    """Rows without timing columns (wall-clock times differ between runs; nothing else may)."""
    out = []
    for r in rows:
        clean = {}
        for k, v in r.items():
            if k in TIMING or k.startswith("timing."):
                continue
            clean[k] = "nan" if isinstance(v, float) and math.isnan(v) else v
        out.append(clean)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a test module (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    tiny matmuls on a shared machine run much faster than with oversubscribed threads."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_config():
    """Factory: `tiny_config(saes=None, plots=False, **top_level_changes) -> ExperimentConfig`."""
    return tiny_experiment


@pytest.fixture
def without_timing():
    return comparable
