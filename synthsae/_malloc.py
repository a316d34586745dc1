"""Let glibc keep freed tensor memory for reuse instead of mapping it afresh (CPU speed).

glibc's malloc serves blocks above a threshold (128 KiB at start, raised adaptively up to 32 MiB)
with new memory maps, and returns the free top of its heap to the system once it exceeds a trim
threshold (twice the map threshold). Fresh pages are zero-filled one fault at a time when first
written, so a batched solver whose temporaries are megabytes pays page faults on almost every
tensor operation.

Measured on the `benchmarks/solve.py` cases (2-core VM, process CPU time):
- glibc's defaults: 20–25% of `sparse_code`'s time went to page faults;
- glibc's own adaptation, triggered by freeing one big block (what earlier versions did): no faults
  left on the Lasso, but 16,000 and 35,000 per call on the elastic net and the large-support Lasso
  (64 and 140 MiB of fresh pages, 40–120 ms of system time), whose freed heap top outgrows the
  adapted 64 MiB trim threshold, so it is handed back and faulted in again;
- the settings below: none on the elastic net, about 200 per call on the large-support Lasso.

So on the first `sparse_code` call, `tune()` sets two glibc malloc parameters (`mallopt`):
- blocks up to 32 MiB come from the heap, which is glibc's own ceiling for its adaptive threshold;
- up to 128 MiB of free heap top is kept for reuse.
The process may therefore hold up to 128 MiB more than it uses, which is small next to torch itself.

Training at 16k latents allocates (batch, m) float32 blocks of 64 MiB, which glibc always maps
afresh whatever the map threshold: about 100,000 (topk) and 165,000 (relu_l1) page faults per step,
250–550 ms of system time. So `synthsae.train` on CPU runs inside `reuse_freed_memory()`, where no
block is mapped on its own (`M_MMAP_MAX` = 0) and up to 1 GiB of freed heap is kept. On leaving it
the settings of `tune()` return, and `malloc_trim` hands the kept memory back to the system.
Measured at 16k (`benchmarks/train.py`, back-to-back runs with and without): 0 faults in most
steps; per-step time 0.74× (topk), 0.85× (relu_l1 at initialization), 0.92× (relu_l1 at trained
sparsity); the peak resident size 15–55% higher. `synthsae.evaluate` and `synthsae.stability` run
inside it too: `evaluate` at 16k with n = 20,000 took 0.85× the time (0.8 M faults instead of 3.7 M,
2.5 s of system time instead of 11 s). So does `sparse_code` when its (n, m) float64 blocks pass
the 32 MiB ceiling: an elastic net with n = 4,000, m = 1,024 went from 200,000 faults per solve to
none after the first, and from 6.5–7.0 s to 5.3–6.3 s.

Nothing is changed when:
- the C library is not glibc;
- the user has set a `MALLOC_*` environment variable (their tuning wins);
- `SYNTHSAE_MALLOC=default` is set (opt-out).
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

# glibc's mallopt parameter numbers (malloc.h) and the values set
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 128 * 2**20
DEFAULT_MMAP_MAX = 65536  # glibc's default number of separately mapped blocks
SCOPE_TRIM_THRESHOLD = 2**30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, when the process runs on it and nobody opted out; else None."""
    if os.environ.get("SYNTHSAE_MALLOC", "").lower() == "default":
        return None
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


@functools.cache
def tune() -> bool:
    """Set glibc's map and trim thresholds once per process (see the module docstring); returns
    whether they were set."""
    libc = _glibc()
    # set the map threshold first: setting either one switches glibc's adaptation off for both
    return libc is not None and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) \
        and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


_scope_lock = threading.Lock()
_scope_depth = 0


@contextlib.contextmanager
def reuse_freed_memory(device: torch.device | None = None) -> Iterator[None]:
    """Inside: every block comes from glibc's heap and up to 1 GiB of freed memory is kept for
    reuse. On leaving the outermost scope: the settings of `tune()` again, and the kept memory
    returned to the system (`malloc_trim`). Does nothing for a non-CPU `device` (host memory is
    not where that work allocates) or where `tune()` does nothing.

    Use `with reuse_freed_memory(device): ...`, or `@reuse_freed_memory()` on a function."""
    global _scope_depth
    libc = _glibc()
    if (device is not None and device.type != "cpu") or libc is None or not tune():
        yield
        return
    with _scope_lock:
        _scope_depth += 1
        if _scope_depth == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, SCOPE_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                libc.malloc_trim(0)
