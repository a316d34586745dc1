"""Shared pytest set-up (for tests/ and benchmarks/): hypothesis profiles, the GPU marker and a
fake libc for the malloc tests."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "ci" (default): deterministic (derandomized) and fast enough for 2 cores.
# "thorough": more examples, for a local deep check: SYNTHSAE_HYPOTHESIS_PROFILE=thorough.
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("SYNTHSAE_HYPOTHESIS_PROFILE", "ci"))

# Under pytest-xdist every worker gets one thread: two workers with two threads each on two cores
# oversubscribe, and OpenMP's spin-waiting then slows small-matrix training by up to 10x.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, torch.get_num_threads())))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class FakeLibc:
    """Records mallopt / malloc_trim calls instead of making them."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    """synthsae._malloc talks to a `FakeLibc` instead of glibc (tests/ and benchmarks/test_malloc.py)."""
    from synthsae import _malloc  # imported here: most test sessions never need it

    libc = FakeLibc()
    monkeypatch.setattr(_malloc, "_glibc", lambda: libc)
    return libc
