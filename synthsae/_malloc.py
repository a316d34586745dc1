"""Let glibc keep freed tensor memory for reuse instead of mapping it afresh (CPU speed).

glibc's malloc serves blocks above a threshold (128 KiB at start, raised adaptively up to 32 MiB)
with new memory maps, and returns the free top of its heap to the system once it exceeds a trim
threshold (twice the map threshold). Fresh pages are zero-filled one fault at a time when first
written, so a batched solver whose temporaries are megabytes pays page faults on almost every
tensor operation.

Measured on the `benchmarks/solve.py` cases (2-core VM, process CPU time):
- Glibc's defaults: 20–25% of `sparse_code`'s time went to page faults.
- Glibc's own adaptation alone (triggered by freeing one big block, session 4): faults went away on
  the Lasso. On the elastic net and the large-support Lasso the solve still took 16,000 and 35,000
  faults per call (64 and 140 MiB of fresh pages, 40–120 ms of system time): their freed heap top
  outgrows the adapted 64 MiB trim threshold, so it is handed back and faulted in again.
- The settings below: about 200 faults per call on the large-support case, and none on the elastic
  net.

So on the first `sparse_code` call, `tune()` sets two glibc malloc parameters (`mallopt`):
- blocks up to 32 MiB come from the heap, which is glibc's own ceiling for its adaptive threshold;
- up to 128 MiB of free heap top is kept for reuse.
The process may therefore hold up to 128 MiB more than it uses, which is small next to torch itself.

Nothing is changed when:
- the C library is not glibc;
- the user has set a `MALLOC_*` environment variable (their tuning wins);
- `SYNTHSAE_MALLOC=default` is set (opt-out).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

# glibc's mallopt parameter numbers (malloc.h) and the values set
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 128 * 2**20


@functools.cache
def tune() -> bool:
    """Set glibc's map and trim thresholds once per process (see the module docstring); returns
    whether they were set."""
    if os.environ.get("SYNTHSAE_MALLOC", "").lower() == "default":
        return False
    if any(key.startswith("MALLOC_") for key in os.environ):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # set the map threshold first: setting either one switches glibc's adaptation off for both
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
