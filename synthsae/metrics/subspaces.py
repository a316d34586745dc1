"""Subspace recovery: principal angles between spans of atoms (rows), via scipy.linalg.subspace_angles.

Where features are only identifiable up to a rotation inside a subspace (a world's subspace
groups, or latents that are unstable across seeds), single latents are not reproducible but their
span can be: principal angles near 0 mean the same subspace.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import subspace_angles

from synthsae.errors import require
from synthsae.metrics.adapters import check_matrix


def principal_angles(A, B, rank_tol: float = 1e-6) -> np.ndarray:
    """Principal angles (radians, descending) between span(rows of A) and span(rows of B).

    A (k_a, d), B (k_b, d): rows span the subspaces; there are min(rank A, rank B) angles.
    Invariant to any invertible recombination of the rows (order, sign, scale, rotation).
    """
    A = check_matrix(A, "A", dtype=torch.float64)
    B = check_matrix(B, "B", cols=A.shape[1], dtype=torch.float64)
    return subspace_angles(_basis(A, rank_tol).T, _basis(B, rank_tol).T)


def _basis(A: torch.Tensor, tol: float, rank: int | None = None) -> np.ndarray:
    """Orthonormal rows spanning the row space of A (or its top-`rank` principal directions)."""
    _, s, Vt = np.linalg.svd(A.numpy(), full_matrices=False)
    r = int((s > tol * max(s[0], 1e-300)).sum()) if rank is None else min(rank, len(s))
    return Vt[:max(r, 1)]


def group_subspace_recovery(W_dec, D, groups, proj_threshold: float = 0.9):
    """For each true subspace group g (groups[j] = g >= 0), principal angles between span(D_g) and the
    top-rank(D_g) principal span of the latents that lie in it (||P_g w|| / ||w|| >= proj_threshold).

    W_dec (m_sae, d), D (m, d): rows are atoms. Returns (metrics, per-group columns). A group with
    fewer assigned latents than its rank is "not covered" (NaN angle).
    """
    W = check_matrix(W_dec, "W_dec", dtype=torch.float64)
    D = check_matrix(D, "D", cols=W.shape[1], dtype=torch.float64)
    g = torch.as_tensor(groups, dtype=torch.long).cpu()
    require(g.shape == (D.shape[0],), "world.groups", tuple(g.shape), "one group id per true feature", f"shape ({D.shape[0]},)")
    Wn = (W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
    ids = sorted(int(v) for v in torch.unique(g) if v >= 0)
    rows = {"group": [], "rank": [], "latents": [], "max_angle_deg": [], "mean_angle_deg": []}
    for gid in ids:
        Bg = _basis(D[g == gid], 1e-6)
        proj = np.linalg.norm(Wn @ Bg.T, axis=1)
        inside = proj >= proj_threshold
        rows["group"].append(gid)
        rows["rank"].append(Bg.shape[0])
        rows["latents"].append(int(inside.sum()))
        if inside.sum() >= Bg.shape[0]:
            Lg = _basis(torch.from_numpy(Wn[inside]), 1e-6, rank=Bg.shape[0])
            ang = np.degrees(subspace_angles(Bg.T, Lg.T))
            rows["max_angle_deg"].append(float(ang.max()))
            rows["mean_angle_deg"].append(float(ang.mean()))
        else:
            rows["max_angle_deg"].append(float("nan"))
            rows["mean_angle_deg"].append(float("nan"))
    table = {k: np.asarray(v) for k, v in rows.items()}
    covered = ~np.isnan(table["max_angle_deg"]) if ids else np.zeros(0, bool)
    metrics = {
        "subspaces.groups": float(len(ids)),
        "subspaces.groups_covered": float(covered.sum()),
        "subspaces.max_angle_deg_mean": float(table["max_angle_deg"][covered].mean()) if covered.any() else float("nan"),
    }
    return metrics, table


def cross_seed_subspace_angles(W_a, W_b, mask_a=None, mask_b=None, rank: int | None = None) -> np.ndarray:
    """Principal angles (degrees) between span(W_a[mask_a]) and span(W_b[mask_b]) (e.g. the unstable
    latents of two seeds); with `rank`, each span is first cut to its top-`rank` principal directions."""
    A = check_matrix(W_a, "W_a", dtype=torch.float64)
    B = check_matrix(W_b, "W_b", cols=A.shape[1], dtype=torch.float64)
    if mask_a is not None:
        A = A[torch.as_tensor(np.asarray(mask_a))]
    if mask_b is not None:
        B = B[torch.as_tensor(np.asarray(mask_b))]
    require(A.shape[0] >= 1 and B.shape[0] >= 1, "masks", (A.shape[0], B.shape[0]), "a span needs at least one latent",
            "masks selecting >= 1 latent on each side")
    An = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)
    Bn = B / B.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return np.degrees(subspace_angles(_basis(An, 1e-6, rank).T, _basis(Bn, 1e-6, rank).T))
