import numpy as np
import pytest
import torch

from synthsae.metrics import (
    LinearSAE,
    cross_seed_subspace_angles,
    group_subspace_recovery,
    principal_angles,
    reappearance,
    stability,
)
from synthsae.testing.metrics import ExplicitWorld



def orthonormal(m, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:m].float()


def hadamard4() -> torch.Tensor:
    """A rotation of R^4 whose every entry is +-1/2: every rotated atom has |cos| = 0.5 with every original."""
    H = torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    return H / 2


def test_same_sae_twice_is_fully_stable():
    D = orthonormal(12, 16)
    world = ExplicitWorld(D, [0.1] * 12)
    sae = LinearSAE.from_dictionary(D)
    res = stability([sae, sae], world=world, n=2000, batch_size=512)
    assert all(np.all(p == 1.0) for p in res.probabilities)
    assert res.metrics["stability.stable_fraction"] == 1.0
    assert res.metrics["stability.ev_share_stable"] == pytest.approx(1.0, abs=1e-9)


def test_reappearance_invariant_to_permutation_sign_and_scale():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(30, 8, generator=g)
    B = A + 0.5 * torch.randn(30, 8, generator=g)
    C = torch.randn(30, 8, generator=g)
    perm = torch.randperm(30, generator=g)
    s = torch.where(torch.rand(30, generator=g) < 0.5, -2.0, 0.3)
    p1 = reappearance([A, B, C], threshold=0.7)
    p2 = reappearance([A, (B * s[:, None])[perm], C], threshold=0.7)
    np.testing.assert_array_equal(p1[0], p2[0])
    np.testing.assert_array_equal(p1[1][perm.numpy()], p2[1])


def test_rotated_subspace_basis_is_unstable_but_spans_the_same_subspace():
    D = torch.eye(12)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, -1, -1, -1, -1])
    R = D.clone()
    R[0:4] = hadamard4() @ D[0:4]
    R[4:8] = hadamard4() @ D[4:8]
    p_true, p_rot = reappearance([D, R], threshold=0.7)
    np.testing.assert_array_equal(p_rot, [0.0] * 8 + [1.0] * 4)  # every rotated latent sits at |cos| 0.5
    world = ExplicitWorld(D, [0.2] * 12, groups=groups)
    res = stability([LinearSAE(D.T, D), LinearSAE(R.T, R)], world=world, n=1000, batch_size=500)
    assert res.metrics["stability.stable_fraction"] == pytest.approx(4 / 12)
    # ... but the unstable latents span exactly the same subspace across the two "seeds"
    ang = cross_seed_subspace_angles(D, R, ~res.stable[0], ~res.stable[1])
    assert ang.shape == (8,) and ang.max() == pytest.approx(0.0, abs=1e-5)
    # ... and that subspace is the world's groups
    metrics, table = group_subspace_recovery(R, D, groups)
    assert metrics["subspaces.groups_covered"] == 2
    assert np.nanmax(table["max_angle_deg"]) == pytest.approx(0.0, abs=1e-5)


def test_principal_angles_known_values():
    e = torch.eye(3)
    # span{e0} vs span{cos t e0 + sin t e1}: one angle t
    t = 0.3
    a = principal_angles(e[:1], torch.tensor([[np.cos(t), np.sin(t), 0.0]]))
    assert a == pytest.approx([t], abs=1e-9)
    # the angles do not depend on the basis chosen for a span
    assert principal_angles(e[:2], torch.tensor([[1.0, 1.0, 0.0], [3.0, -1.0, 0.0]])).max() == pytest.approx(0.0, abs=1e-9)
    assert principal_angles(e[:1], e[1:2]) == pytest.approx([np.pi / 2])


def test_uncovered_group_is_nan_not_zero():
    D = torch.eye(6)
    groups = [0, 0, 0, -1, -1, -1]
    W = torch.eye(6)[3:]  # no latent inside group 0
    metrics, table = group_subspace_recovery(W, D, groups)
    assert metrics["subspaces.groups_covered"] == 0 and np.isnan(table["max_angle_deg"][0])


def test_stability_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        reappearance([torch.eye(3)])
    with pytest.raises(ValueError, match="d = 3"):
        reappearance([torch.eye(3), torch.eye(4)])
