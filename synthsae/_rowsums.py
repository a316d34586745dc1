"""Weighted sums of table rows over a list of (row, column, value) entries, as one embedding bag.

A low-level helper shared by the solvers (gradients through Gram rows) and the SAE's opt-in sparse
kernels (`synthsae.sae.sparse`), so neither imports the other: for entries e with output row
rows[e], table row cols[e] and weight vals[e],

    out[b] = sum over the entries e with rows[e] = b of vals[e] * table[cols[e]]      (n, d)

costs O(nnz * d) and never builds the dense (n, m) matrix whose product with the table it equals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bag_offsets(group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(n_groups,) start offset of each group in a list of entries sorted by `group` (nnz,)."""
    counts = torch.bincount(group, minlength=n_groups)
    return torch.cumsum(counts, 0) - counts


def weighted_row_sums(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, table: torch.Tensor,
                      n: int) -> torch.Tensor:
    """sum over the entries e of output row b of vals[e] * table[cols[e]] -> (n, d).

    rows, cols (nnz,) int64 with rows sorted ascending (row-major order, as `nonzero` returns them);
    vals (nnz,) with table's dtype; table (m, d). Differentiable in vals and table.
    """
    return F.embedding_bag(cols, table, bag_offsets(rows, n), mode="sum", per_sample_weights=vals)
