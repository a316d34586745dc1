"""Let glibc keep freed tensor memory for reuse instead of mapping it afresh (CPU speed).

glibc's malloc serves blocks above an adaptive threshold (128 KiB at start) with new memory maps,
and returns memory at the top of its heap to the system once more than twice that threshold is
free there. A new map is zero-filled page by page when first written, so a batched solver whose
temporaries are megabytes pays those page faults on almost every tensor operation: measured 20–25%
of `sparse_code`'s time on the benchmark cases (2-core VM, Lasso 0.16 → 0.12 ms per sample).

glibc raises both thresholds by itself (up to 32 MiB and 64 MiB) whenever a mapped block larger
than the current threshold is freed — which happens in any program that frees a big array. We
trigger that adaptation once by freeing one 31 MiB block, so no setting is changed (`mallopt` would
switch the adaptation off for good). Afterwards the process may keep up to 64 MiB of freed memory
for reuse. Elsewhere (other C libraries, other allocators) this is a harmless 31 MiB allocation.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def adapt_thresholds() -> None:
    """Free one 31 MiB block (never written, so no page is touched), once per process."""
    block = torch.empty(31 * 2**20, dtype=torch.uint8)
    del block
