"""Cosine similarities between two dictionaries and one-to-one (Hungarian) matching.

Dictionaries are (m, d) matrices whose **rows are atoms** (a world's D, an SAE's W_dec).
Similarities are |cos| by default: a latent and its negation span the same direction, so every
metric built here is invariant to the order, the sign and the norm of rows.

Matching maximizes the total |cos| over one-to-one pairs (Hungarian / linear assignment). Two
routes: `"dense"` runs `scipy.optimize.linear_sum_assignment` on the full matrix (exact);
`"sparse"` keeps the top-k |cos| of every row of the smaller side and solves the assignment on
that candidate graph with `scipy.sparse.csgraph.min_weight_full_bipartite_matching` (exact on the
graph; k doubles until a full matching exists). `"auto"` is dense up to `DENSE_LIMIT` entries.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from synthsae.errors import require
from synthsae.metrics.adapters import check_matrix

DENSE_LIMIT = 4096 * 4096  # entries; beyond this dense LSA costs > ~1 s and > 1 GB (measured, docs/metrics.md)
CHUNK = 2048


def normalize_rows(A: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm; an all-zero row stays zero (its cosine with anything is 0)."""
    return A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)


def cosine_matrix(A, B, absolute: bool = True) -> torch.Tensor:
    """(m_a, m_b) cosines between rows of A (m_a, d) and rows of B (m_b, d); |cos| if `absolute`."""
    A = check_matrix(A, "A")
    B = check_matrix(B, "B", cols=A.shape[1])
    C = normalize_rows(A) @ normalize_rows(B).T
    return C.abs() if absolute else C


@dataclasses.dataclass
class CosineSummary:
    """One chunked pass over |cos(A_i, B_j)| without storing the full matrix.

    row_max/row_arg (m_a,): best |cos| of each row of A in B. col_max/col_arg (m_b,): the same
    for B in A. row_count (m_a,): rows of B with |cos| >= count_threshold, per row of A.
    topk_val/topk_idx (m_a, k): the k best |cos| of each row of A (for sparse matching).
    """

    row_max: torch.Tensor
    row_arg: torch.Tensor
    col_max: torch.Tensor
    col_arg: torch.Tensor
    row_count: torch.Tensor | None
    topk_val: torch.Tensor | None
    topk_idx: torch.Tensor | None


def cosine_summary(A, B, k: int = 0, count_threshold: float | None = None, chunk: int = CHUNK) -> CosineSummary:
    """Row/column maxima (and optional top-k, threshold counts) of |cos| between rows of A and B."""
    A = normalize_rows(check_matrix(A, "A"))
    B = normalize_rows(check_matrix(B, "B", cols=A.shape[1]))
    ma, mb = A.shape[0], B.shape[0]
    row_max = torch.empty(ma)
    row_arg = torch.empty(ma, dtype=torch.long)
    col_max = torch.full((mb,), -1.0)
    col_arg = torch.zeros(mb, dtype=torch.long)
    row_count = torch.zeros(ma, dtype=torch.long) if count_threshold is not None else None
    k = min(k, mb)
    topk_val = torch.empty(ma, k) if k else None
    topk_idx = torch.empty(ma, k, dtype=torch.long) if k else None
    Bt = B.T.contiguous()
    for s in range(0, ma, chunk):
        C = (A[s:s + chunk] @ Bt).abs_()
        v, i = C.max(dim=1)
        row_max[s:s + chunk], row_arg[s:s + chunk] = v.cpu(), i.cpu()
        cv, ci = C.max(dim=0)
        better = cv.cpu() > col_max
        col_max = torch.where(better, cv.cpu(), col_max)
        col_arg = torch.where(better, ci.cpu() + s, col_arg)
        if row_count is not None:
            row_count[s:s + chunk] = (C >= count_threshold).sum(dim=1).cpu()
        if k:
            tv, ti = C.topk(k, dim=1)
            topk_val[s:s + chunk], topk_idx[s:s + chunk] = tv.cpu(), ti.cpu()
    return CosineSummary(row_max, row_arg, col_max, col_arg, row_count, topk_val, topk_idx)


@dataclasses.dataclass
class Matching:
    """A one-to-one matching between rows of A and rows of B (min(m_a, m_b) pairs).

    rows, cols: matched indices into A and B. cos: the signed cosine of each pair.
    method: "dense" or "sparse"; k: candidates per row used by the sparse route (0 if dense).
    """

    rows: np.ndarray
    cols: np.ndarray
    cos: np.ndarray
    method: str
    k: int = 0

    @property
    def mcc(self) -> float:
        """Mean |cos| over matched pairs (the SAELens / SAEBench MCC)."""
        return float(np.abs(self.cos).mean())

    def a_to_b(self, m_a: int) -> np.ndarray:
        """(m_a,) index into B matched to each row of A, -1 if unmatched."""
        out = np.full(m_a, -1, dtype=np.int64)
        out[self.rows] = self.cols
        return out


def hungarian_match(A, B, method: str = "auto", k: int = 32, chunk: int = CHUNK,
                    summary: CosineSummary | None = None) -> Matching:
    """Maximum-total-|cos| one-to-one matching between rows of A (m_a, d) and B (m_b, d).

    Invariant to permutations, signs and norms of rows. See the module docstring for the routes.
    `summary`: a `cosine_summary(A, B, k=...)` already computed (saves one pass when m_a <= m_b).
    """
    require(method in ("auto", "dense", "sparse"), "method", method, "unknown matching route",
            "'auto', 'dense' or 'sparse'")
    require(isinstance(k, int) and k >= 1, "k", k, "the sparse route needs candidates", "an int >= 1")
    A = check_matrix(A, "A")
    B = check_matrix(B, "B", cols=A.shape[1])
    An, Bn = normalize_rows(A), normalize_rows(B)
    if method == "auto":
        method = "dense" if A.shape[0] * B.shape[0] <= DENSE_LIMIT else "sparse"
    if method == "dense":
        C = normalize_rows(A.double()) @ normalize_rows(B.double()).T  # float64: ties resolved identically to sparse
        r, c = linear_sum_assignment(-C.abs().numpy())
        return Matching(r, c, C[r, c].numpy(), "dense", 0)
    # sparse: candidates from the smaller side so that a full matching covers it
    swap = A.shape[0] > B.shape[0]
    S, L = (Bn, An) if swap else (An, Bn)
    kk = min(k, L.shape[0])
    reuse = summary is not None and not swap and summary.topk_val is not None and summary.topk_val.shape[1] >= kk
    while True:
        if reuse:
            summ, reuse = summary, False
            kk = summ.topk_val.shape[1]
        else:
            summ = cosine_summary(S, L, k=kk, chunk=chunk)
        m_s = S.shape[0]
        rows = np.repeat(np.arange(m_s), kk)
        # cost 1 + eps - |cos| > 0 everywhere: csgraph treats explicit zeros as missing edges
        cost = (1.0 + 1e-6 - summ.topk_val.double().numpy()).ravel()
        G = sp.csr_matrix((cost, (rows, summ.topk_idx.numpy().ravel())), shape=(m_s, L.shape[0]))
        try:
            r, c = min_weight_full_bipartite_matching(G)
            break
        except ValueError:
            if kk >= L.shape[0]:
                raise
            kk = min(2 * kk, L.shape[0])
    Sd, Ld = normalize_rows((B if swap else A).double()), normalize_rows((A if swap else B).double())
    cos = (Sd[torch.as_tensor(r)] * Ld[torch.as_tensor(c)]).sum(dim=1).numpy()
    if swap:
        r, c = c, r
        order = np.argsort(r)
        r, c, cos = r[order], c[order], cos[order]
    return Matching(np.asarray(r), np.asarray(c), cos, "sparse", kk)


def mcc(A, B, method: str = "auto") -> float:
    """Mean |cos| of the Hungarian matching between rows of A and B (SAELens MCC)."""
    return hungarian_match(A, B, method=method).mcc


def mmcs(A, B) -> tuple[float, float]:
    """Mean max |cos| both ways: (mean_i max_j |cos(A_i, B_j)|, mean_j max_i |cos(A_i, B_j)|)."""
    s = cosine_summary(A, B)
    return float(s.row_max.double().mean()), float(s.col_max.double().mean())
