"""Seeds, generators and devices. Nothing in synthsae reads or writes torch's global RNG state."""

from __future__ import annotations

import torch

from synthsae.errors import ConfigError, fail

Seed = int | torch.Generator | None
MAX_SEED = 2**63

# Device types synthsae runs on; torch knows more names (xla, meta, ...) that it does not support.
DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEVICE_HINT = "'cpu', 'cuda' or 'cuda:N' (N = a CUDA device index), or 'mps' on Apple silicon"
# common spellings of a device that torch does not accept, and the name it uses
_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "metal": "mps", "cpu0": "cpu"}


def generator(seed: Seed, device: str | torch.device = "cpu") -> torch.Generator:
    """A `torch.Generator` on `device` from an int seed (None means seed 0), or the given one."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed = {seed!r} is invalid: a seed must be a non-negative int or a torch.Generator.")
    if seed >= MAX_SEED:  # torch takes 64 bits; derived seeds (seed + k) need headroom
        fail("seed", seed, "too large for a 64-bit generator seed", "an int in [0, 2**63)")
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(seed)
    return g


def parse_device(device: str | torch.device | None, field: str = "device") -> torch.device:
    """The `torch.device` named by `device` (None means CPU), checking only the name: a string torch
    cannot parse ("gpu", "cuda:-1", "") or a device type synthsae does not run on ("meta", "xla")
    raises `ConfigError`. Whether the device exists here is `resolve_device`'s check."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError):  # torch's message lists a dozen backends; ours says what to type
            alias = _ALIASES.get(device.strip().lower().replace(" ", ""))
            hint = f" (did you mean {alias!r}?)" if alias else ""
            fail(field, device, f"not a device name{hint}", _DEVICE_HINT)
    else:
        fail(field, device, "a device is named by a string or a torch.device", _DEVICE_HINT)
    if dev.type not in DEVICE_TYPES:
        fail(field, device, f"synthsae runs on {', '.join(DEVICE_TYPES)}, not on {dev.type!r} devices", _DEVICE_HINT)
    return dev


def resolve_device(device: str | torch.device | None, field: str = "device") -> torch.device:
    """`parse_device`, then check the device is available: `None` means CPU; a CUDA (or MPS)
    device that this machine does not have raises a clear `ConfigError`."""
    dev = parse_device(device, field)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            fail(field, str(dev), "CUDA is not available here (torch.cuda.is_available() is False: no NVIDIA "
                 "GPU, or a CPU-only build of torch)", "'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            fail(field, str(dev), f"this machine has {count} CUDA device(s)",
                 f"'cuda' or an index 'cuda:0' ... 'cuda:{count - 1}'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        fail(field, str(dev), "MPS (Apple silicon) is not available here", "'cpu'" +
             (" or 'cuda'" if torch.cuda.is_available() else ""))
    return dev
