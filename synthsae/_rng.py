"""Seeds and generators. Nothing in synthsae reads or writes torch's global RNG state."""

from __future__ import annotations

import torch

Seed = int | torch.Generator | None


def generator(seed: Seed, device: str | torch.device = "cpu") -> torch.Generator:
    """A `torch.Generator` on `device` from an int seed (None means seed 0), or the given one."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r} is invalid: a seed must be a non-negative int or a torch.Generator.")
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(seed)
    return g


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` means CPU; a CUDA device that is not available raises a clear `ValueError`."""
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {str(dev)!r} is invalid: CUDA is not available here. Expected: 'cpu'.")
    return dev
