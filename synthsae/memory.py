"""Refuse an SAE that cannot fit in memory before allocating it.

Without this, an absurd size (an SAE with d = 10**9) is attempted until torch's allocator fails
with a traceback from deep inside torch, or the operating system kills the process. The estimate
counts what training keeps (weights and Adam's two moments); requests below `CHECK_ABOVE` are
never checked, so ordinary sizes cost nothing and no test depends on the machine's free memory.
"""

from __future__ import annotations

import os

from synthsae.errors import fail

CHECK_ABOVE = 1 << 30  # bytes; smaller requests always pass
SAE_COPIES = 3  # the weights, Adam's exp_avg and exp_avg_sq (gradients and activations come on top)


def available_bytes() -> int | None:
    """Bytes of RAM available to a new allocation now (MemAvailable on Linux, else physical
    memory), or None when it cannot be told."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def sae_bytes(d: int, m: int, itemsize: int = 4) -> int:
    """Estimated bytes to train an SAE with inputs of dimension d and m latents: W_enc (d, m),
    W_dec (m, d), b_enc (m,) and b_dec (d,) as `itemsize`-byte floats, `SAE_COPIES` times, plus the
    two int64 (m,) bookkeeping buffers."""
    return SAE_COPIES * (2 * d * m + d + m) * itemsize + 2 * 8 * m


def require_memory(need: int, field: str, value: str, what: str, smaller: str) -> None:
    """Raise `ConfigError` naming `field` unless `need` bytes are available now (requests below
    `CHECK_ABOVE` always pass). what: what needs the memory; smaller: what would fit."""
    if need < CHECK_ABOVE:
        return
    have = available_bytes()
    if have is None or need <= have:
        return
    fail(field, value, f"{what} needs about {gib(need)} of memory, but only {gib(have)} is available here", smaller)


def check_sae_memory(d: int, m: int, name: str = "SAE", itemsize: int = 4) -> None:
    """Raise `ConfigError` (naming both numbers) if training an SAE of (d, m) would not fit in the
    memory available now."""
    need = sae_bytes(d, m, itemsize)
    have = available_bytes() if need >= CHECK_ABOVE else None
    fits = (have or 0) // max(1, need // max(1, m))  # latents that fit at this d
    smaller = (f"a smaller SAE (with d = {d}, at most about m = {fits} latents fit here)" if fits >= 1 else
               f"a smaller d (at d = {d} not even one latent fits here)")
    require_memory(need, f"{name}(d, m)", f"d = {d}, m = {m}",
                   f"training it (weights and Adam moments, {SAE_COPIES} x (2·d·m + d + m) floats of {itemsize} bytes)",
                   f"{smaller}, or a machine with more memory")


def gib(n: float) -> str:
    """Bytes as GiB with 3 significant digits."""
    return f"{n / 2**30:.3g} GiB"
