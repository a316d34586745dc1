import numpy as np
import pytest
import torch

from synthsae.metrics import cosine_matrix, expected_max_abs_cos, hungarian_match, mcc, mmcs


def rand_dict(m, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g)


def scramble(W, seed):
    """Permute rows, flip random signs, rescale rows by random positive factors."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(W.shape[0], generator=g)
    sign = torch.where(torch.rand(W.shape[0], generator=g) < 0.5, -1.0, 1.0)
    scale = 0.1 + 5 * torch.rand(W.shape[0], generator=g)
    return (W * (sign * scale)[:, None])[perm], perm


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_true_dictionary_matches_itself_exactly(method):
    D = rand_dict(50, 20, 0)
    W, perm = scramble(D, 1)
    mt = hungarian_match(D, W, method=method, k=4)
    assert mt.mcc == pytest.approx(1.0, abs=1e-6)
    # the matching undoes the permutation: D[j] is row inv[j] of W
    inv = torch.argsort(perm).numpy()
    np.testing.assert_array_equal(mt.a_to_b(50), inv)


@pytest.mark.parametrize("shape", [(40, 40), (30, 70), (70, 30)])
def test_sparse_route_with_all_candidates_equals_dense(shape):
    A, B = rand_dict(shape[0], 12, 2), rand_dict(shape[1], 12, 3)
    dense = hungarian_match(A, B, method="dense")
    sparse = hungarian_match(A, B, method="sparse", k=max(shape))
    assert len(sparse.rows) == min(shape)
    assert np.abs(sparse.cos).sum() == pytest.approx(np.abs(dense.cos).sum(), rel=1e-9)


def test_sparse_route_grows_k_until_a_full_matching_exists():
    # every row of A has the same best candidates -> k = 1 cannot give a full matching
    A = rand_dict(1, 8, 4).repeat(10, 1) + 1e-3 * rand_dict(10, 8, 5)
    B = rand_dict(30, 8, 6)
    mt = hungarian_match(A, B, method="sparse", k=1)
    assert mt.k > 1 and len(set(mt.cols.tolist())) == 10
    dense = hungarian_match(A, B, method="dense")
    assert np.abs(mt.cos).sum() == pytest.approx(np.abs(dense.cos).sum(), rel=1e-9)


def test_matching_invariant_to_permutation_sign_and_scale():
    A, B = rand_dict(60, 16, 7), rand_dict(80, 16, 8)
    B2, _ = scramble(B, 9)
    A2, _ = scramble(A, 10)
    for method in ("dense", "sparse"):
        assert mcc(A2, B2, method) == pytest.approx(mcc(A, B, method), abs=1e-6)
    assert mmcs(A2, B2) == pytest.approx(mmcs(A, B), abs=1e-6)


def test_mcc_is_bounded_by_mmcs():
    A, B = rand_dict(60, 16, 11), rand_dict(90, 16, 12)
    assert mcc(A, B) <= mmcs(A, B)[0] + 1e-9


def test_random_dictionary_mmcs_matches_theory():
    """E[max_j |cos(u, v_j)|] over m_sae independent random directions, from the Beta law of cos^2.

    For a fixed true atom the SAE rows are iid uniform, so each true atom's best |cos| has exactly this
    law and MMCS(true -> sae) has this expectation. R independent replicates; 4-sigma bound on their mean.
    """
    d, m_true, m_sae, R = 16, 32, 64, 30
    mean, std = expected_max_abs_cos(d, m_sae)
    vals = [mmcs(rand_dict(m_true, d, 100 + r), rand_dict(m_sae, d, 200 + r))[0] for r in range(R)]
    se = np.std(vals, ddof=1) / np.sqrt(R)
    assert abs(np.mean(vals) - mean) <= 4 * se
    # the spread of one true atom's max is the theoretical std; the mean over 32 of them is smaller
    assert np.std(vals, ddof=1) <= std


def test_expected_max_abs_cos_extremes():
    # one direction in d = 2: |cos| = |cos(theta)|, theta uniform -> E = 2/pi
    assert expected_max_abs_cos(2, 1)[0] == pytest.approx(2 / np.pi, rel=1e-6)
    # more candidates -> larger expected maximum
    assert expected_max_abs_cos(64, 1000)[0] > expected_max_abs_cos(64, 10)[0]


def test_bad_inputs_raise_clear_errors():
    A = rand_dict(5, 8, 0)
    with pytest.raises(ValueError, match="columns"):
        cosine_matrix(A, rand_dict(5, 9, 1))
    bad = A.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        hungarian_match(A, bad)
    with pytest.raises(ValueError, match="route"):
        hungarian_match(A, A, method="fast")
