"""Two-sample tests for statistical claims (seeded, CPU, float64)."""

from __future__ import annotations

import torch

from synthsae.errors import require


def mmd_permutation_test(x, y, n_permutations: int = 999, seed: int = 0, bandwidth: float | None = None) -> float:
    """p-value of the permutation test of "x and y come from the same distribution", with the
    (biased) squared MMD of a Gaussian kernel as statistic (Gretton et al. 2012, JMLR 13).

    x (n1, d), y (n2, d). bandwidth: kernel width σ in k(a, b) = exp(−‖a − b‖²/(2σ²)); None = the
    median pairwise distance of the pooled sample. p = (1 + #{perm stat ≥ observed}) / (1 + B):
    under the null, P(p ≤ α) ≤ α for every α, so the false-rejection rate at level α is ≤ α.
    Cost O((n1 + n2)² (d + B)).
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    require(x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1] and len(x) > 1 and len(y) > 1,
            "x.shape / y.shape", (tuple(x.shape), tuple(y.shape)), "need two 2-D samples of the same width",
            "(n1, d) and (n2, d) with n1, n2 >= 2")
    require(isinstance(n_permutations, int) and n_permutations >= 1, "n_permutations", n_permutations,
            "need at least one permutation", "an int >= 1, e.g. 999")
    z = torch.cat([x, y])
    n, n1 = len(z), len(x)
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        bandwidth = float(d2[torch.triu_indices(n, n, 1).unbind()].median().sqrt())
    require(bandwidth > 0, "bandwidth", bandwidth, "a zero bandwidth (all points equal?)", "a float > 0")
    K = torch.exp(-d2 / (2 * bandwidth**2))
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.arange(n)] + [torch.randperm(n, generator=g) for _ in range(n_permutations)])
    # weights a = +1/n1 on the (permuted) first group, −1/n2 on the rest: MMD² = aᵀ K a
    a = torch.full((len(perms), n), -1.0 / (n - n1), dtype=torch.float64)
    a.scatter_(1, perms[:, :n1], 1.0 / n1)
    stats = ((a @ K) * a).sum(1)
    return float((1 + (stats[1:] >= stats[0]).sum()) / (1 + n_permutations))
