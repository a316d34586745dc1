"""Opt-in: keep freed memory for reuse inside a `with` block (glibc only; a CPU speed option).

synthsae never changes malloc settings by itself. Nothing in the library calls this; a user who
wants it writes

    with synthsae.reuse_freed_memory():
        synthsae.train(sae, world, ...)

Why it can pay. glibc's malloc serves blocks above its map threshold (128 KiB at start, adapted up
to 32 MiB) with fresh memory maps and hands the free top of its heap back to the system; fresh pages
are then zero-filled one page fault at a time when first written. A 16k-latent training step
allocates (batch, m) float32 blocks of 64 MiB, above any threshold, so each step faulted about
100,000 (topk) to 165,000 (relu_l1) pages in again.

What it does. Entering the outermost block sets two glibc malloc parameters (`mallopt`): no block
is mapped on its own (`M_MMAP_MAX` = 0, so every block comes from the heap) and up to 1 GiB of free
heap top is kept (`M_TRIM_THRESHOLD`). Leaving it sets both back to glibc's documented defaults
(65,536 maps, 128 KiB) and hands the kept memory back (`malloc_trim`). One side effect cannot be
undone: once either parameter has been set, glibc stops adapting its map threshold for the rest
of the process (it stays where it was). The process may hold up to 1 GiB more than it uses inside
the block.

Where it paid (2-core AMD EPYC VM; benchmarks/README.md, "Session 5" of train.py and evaluate.py):
16k training steps took 0.74x (topk) and 0.85-0.92x (relu_l1) the time, with a 15-55% higher peak
resident size; `evaluate` at 16k, n = 100,000: 0.78x; `stability` of 8 SAEs at 16k: 0.82x; an
elastic-net `sparse_code` with n = 4,000, m = 1,024: 5.3-6.3 s instead of 6.5-7.0 s. Small models
gain nothing.

It does nothing (and yields False) when the C library is not glibc, when a `MALLOC_*` environment
variable is set (the user's own tuning wins), or for a non-CPU `device`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# glibc's mallopt parameter numbers (malloc.h), its documented defaults, and the values set inside
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD = 128 * 2**10
DEFAULT_MMAP_MAX = 65536
SCOPE_TRIM_THRESHOLD = 2**30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, when the process runs on it and the user has no MALLOC_* tuning of their own; else None."""
    if any(key.startswith("MALLOC_") for key in os.environ):
        return None
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_scope_lock = threading.Lock()
_scope_depth = 0


@contextlib.contextmanager
def reuse_freed_memory(device: torch.device | str | None = None) -> Iterator[bool]:
    """Inside the block, glibc keeps every freed block for reuse (see the module docstring).

    device: where the work inside runs (None = CPU); for a non-CPU device host memory is not where
    the work allocates, and nothing is changed. Yields True when the settings were applied.
    Blocks nest (only the outermost one sets and restores) and may be entered from several threads.
    Also usable as a decorator: `@reuse_freed_memory()`.
    """
    global _scope_depth
    libc = _glibc()
    on_cpu = device is None or str(device).split(":")[0] == "cpu"
    if not on_cpu or libc is None:
        yield False
        return
    with _scope_lock:
        _scope_depth += 1
        if _scope_depth == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, SCOPE_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
