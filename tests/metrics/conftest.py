"""Constructed worlds and SAEs with known answers for the metric tests."""

import importlib.util
from pathlib import Path

import pytest
import torch

from synthsae.testing.metrics import ExplicitWorld


def orthonormal(m: int, d: int, seed: int = 0) -> torch.Tensor:
    """(m, d) with orthonormal rows (m <= d): the rows of a random orthogonal matrix."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:m].float()


@pytest.fixture
def flat_world():
    """16 independent orthonormal features in d = 32, unit magnitudes, no hierarchy, no groups."""
    return ExplicitWorld(orthonormal(16, 32), [0.2] * 16, magnitudes=(0.5, 1.5))


@pytest.fixture
def tree_world():
    """Orthonormal features, unit magnitudes, one-level hierarchy: parents 0, 1, 2 with children 3, 4, 5
    (one child each, so the planted absorbing SAEs below reconstruct exactly)."""
    parents = [-1, -1, -1, 0, 1, 2] + [-1] * 6
    return ExplicitWorld(orthonormal(12, 24, seed=1), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5] + [0.1] * 6, parents=parents)


@pytest.fixture(scope="session")
def reference_cases():
    """name -> (sae, world, evaluate kwargs) of reference_cases.py (imported by path: tests are not a package)."""
    spec = importlib.util.spec_from_file_location("metrics_reference_cases", Path(__file__).with_name("reference_cases.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cases()
