"""`Full(repair=True)`: an invalid correlation matrix is replaced by the nearest correlation matrix,
with a warning that says what changed; without repair it keeps raising."""

import warnings

import pytest
import torch
from scipy import stats

from synthsae.world import (
    Constant,
    CorrelationRepairWarning,
    Full,
    World,
    WorldConfig,
    nearest_correlation,
)


def test_nearest_correlation_matches_highams_published_example():
    """N. Higham (2002), section 4: the nearest correlation matrix to [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    has off-diagonal entries 0.7607 and 0.1573 (printed to 4 digits, hence the tolerance)."""
    A = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    X, record = nearest_correlation(A)
    expected = torch.tensor([[1.0, 0.7607, 0.1573], [0.7607, 1.0, 0.7607], [0.1573, 0.7607, 1.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(X, expected, atol=1e-4, rtol=0)
    assert torch.equal(X, X.T) and torch.equal(torch.diagonal(X), torch.ones(3, dtype=torch.float64))
    assert float(torch.linalg.eigvalsh(X).min()) > -1e-12
    assert record.min_eigenvalue == pytest.approx(1 - 2**0.5, abs=1e-12)  # eigenvalues of A: 1, 1 +- sqrt(2)
    assert record.asymmetry == 0.0 and record.diagonal == 0.0
    assert record.frobenius == pytest.approx(float((X - A).norm()), rel=1e-12)


def test_repair_reports_asymmetry_and_diagonal_and_keeps_valid_matrices():
    bad = ((2.0, 0.5), (0.3, 1.0))
    with pytest.warns(CorrelationRepairWarning, match=r"asymmetry max \|C - C\^T\| = 0.2.*\|C_jj - 1\| = 1"):
        world = World(WorldConfig(d=4, m=2, firing=Constant(p=0.3), correlation=Full(matrix=bad, repair=True)))
    F = world._state["corr_factor"]
    C = F @ F.T + torch.diag(world._state["corr_diag"])
    torch.testing.assert_close(torch.diagonal(C), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(C[0, 1], torch.tensor(0.4, dtype=torch.float64))  # the symmetric part's off-diagonal
    good = ((1.0, 0.5), (0.5, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorrelationRepairWarning)  # a valid matrix is used as given, silently
        World(WorldConfig(d=4, m=2, firing=Constant(p=0.3), correlation=Full(matrix=good, repair=True)))
    with pytest.raises(ValueError, match="repair=True"):
        World(WorldConfig(d=4, m=2, firing=Constant(p=0.3), correlation=Full(matrix=bad)))


def test_repaired_world_samples_the_repaired_copula():
    """A non-PSD 3 x 3 matrix, repaired: marginals stay at p, and each pair co-fires as the repaired
    matrix says (bivariate normal probability at the thresholds; z = 5 per count)."""
    bad = ((1.0, 0.9, -0.9), (0.9, 1.0, 0.9), (-0.9, 0.9, 1.0))
    with pytest.warns(CorrelationRepairWarning, match="smallest eigenvalue"):
        world = World(WorldConfig(d=4, m=3, firing=Constant(p=0.3), correlation=Full(matrix=bad, repair=True)))
    C, _ = nearest_correlation(torch.tensor(bad, dtype=torch.float64))
    n = 100_000
    a = world.sample_codes(n, seed=5).active()
    t = stats.norm.ppf(0.3)
    for i in range(3):
        assert abs(int(a[:, i].sum()) - n * 0.3) <= 5 * (n * 0.21) ** 0.5
        for j in range(i + 1, 3):
            rho = float(C[i, j])
            p11 = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([t, t])
            both = int((a[:, i] & a[:, j]).sum())
            assert abs(both - n * p11) <= 5 * (n * p11 * (1 - p11)) ** 0.5, (i, j, both, n * p11)
