"""Sparse kernels: SAE products whose cost grows with the number of non-zero codes, not with n·m.

A trained SAE fires only a few of its m latents per sample, yet a dense training step still pays
four (n, d) x (d, m)-sized products besides the encoder's forward one: the decoder product, its two
gradients, and the encoder's weight gradient x^T g, whose g (n, m) is zero wherever a ReLU-like
activation was off. Here those four are computed over the non-zero entries only (nnz = n * L0):

* `decode(z, W_dec)`: x_hat = z W_dec as an embedding bag over the non-zeros of each row of z.
  Autograd differentiates the bag natively: dW_dec scatters vals * g rows, dz is the dot product of
  g with the selected decoder rows (a sampled matmul), and flows back into z at the non-zeros only.
* `decode_topk(idx, vals, W_dec)`: the same for exactly-k codes given as (n, k) indices and values.
* `encode_linear(x, W, b, c)`: the dense forward (x - c) W + b (every pre-activation is needed to
  decide which latents fire), with a backward that computes dW = (x - c)^T g over the non-zeros of
  g, as an embedding bag of the rows of x - c grouped by latent.

All three compute the same sums as the dense products in another order, so they agree to float
round-off (tested in tests/sae/test_sparse.py). `decode` and `encode_linear` switch themselves on
only for large dictionaries with sparse operands on CPU (`worth_it`); below that, BLAS on dense
operands is faster. `decode_topk` uses its bag for large dictionaries on any device.
All choices are deterministic functions of the operands, so runs stay bit-reproducible on CPU.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

# Measured on CPU (benchmarks/README.md, train.py): at m = 512 an embedding bag's backward costs
# several times a dense matmul; at m = 16,384 a relu_l1 step is 1.4x faster sparse at density
# 1/41 and 5x at 1/1200.
MIN_LATENTS = 4096
MAX_DENSITY = 1 / 32


def worth_it(t: torch.Tensor) -> bool:
    """True when t (n, m) is a large-dictionary CPU operand with at most MAX_DENSITY non-zeros.

    CPU only: the thresholds were measured on CPU, and on a GPU the non-zero count costs a
    host synchronisation per product; GPUs keep the dense products until measured there.
    """
    n, m = t.shape
    return (t.device.type == "cpu" and m >= MIN_LATENTS
            and int(torch.count_nonzero(t)) <= MAX_DENSITY * n * m)


def bag_pays(m: int, k: int) -> bool:
    """True when exactly-k codes over m latents are decoded as an embedding bag (`decode_topk`):
    a large dictionary (m >= MIN_LATENTS) with k <= MAX_DENSITY * m."""
    return m >= MIN_LATENTS and k <= MAX_DENSITY * m


def decode_topk(idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_k vals[b, k] W_dec[idx[b, k]] for idx, vals (n, k) -> (n, d): exactly-k codes.

    An embedding bag (O(n k d), no dense (n, m) product) when `bag_pays`; otherwise the dense
    product of the scattered codes.
    """
    m = W_dec.shape[0]
    if bag_pays(m, idx.shape[1]):
        return F.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")
    return scatter_codes(idx, vals, m) @ W_dec


def scatter_codes(idx: torch.Tensor, vals: torch.Tensor, m: int) -> torch.Tensor:
    """Dense (n, m) codes with vals (n, k) at columns idx (n, k), zeros elsewhere."""
    return torch.zeros(idx.shape[0], m, dtype=vals.dtype, device=vals.device).scatter(1, idx, vals)


def bag_offsets(group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(n_groups,) start offset of each group in a list of entries sorted by `group` (nnz,)."""
    counts = torch.bincount(group, minlength=n_groups)
    return torch.cumsum(counts, 0) - counts


def decode(z: torch.Tensor, W_dec: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """bias + z W_dec for codes z (n, m), decoder W_dec (m, d), bias (d,) or None -> (n, d).

    Sparse (embedding bag over the non-zeros) when `worth_it(z)`, else one dense (add)mm.
    """
    if not worth_it(z.detach()):
        return z @ W_dec if bias is None else torch.addmm(bias, z, W_dec)
    rows, cols = z.detach().nonzero(as_tuple=True)  # row-major: each sample's entries are contiguous
    bags = decode_entries(rows, cols, z[rows, cols], W_dec, z.shape[0])
    return bags if bias is None else bags + bias


def decode_entries(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor,
                   n: int) -> torch.Tensor:
    """sum over entries e of row b of vals[e] W_dec[cols[e]] -> (n, d); entries (nnz,) in row-major
    order. One embedding bag per sample: no dense (n, m) product."""
    return F.embedding_bag(cols, W_dec, bag_offsets(rows, n), mode="sum", per_sample_weights=vals)


class _Encoder(torch.autograd.Function):
    """(x - c) W + b for x (n, d), W (d, m), b (m,), c (d,) -> (n, m), with a sparse-aware backward.

    Forward: one addmm with the folded bias b - c W (no (n, d) centred copy of x). Backward, for
    the incoming gradient g (n, m), dense or sparse COO (from `ActiveCodes`), with column sums s:
    dW = (x - c)^T g (see `weight_grad`), db = s, dc = -W s, dx = g W^T.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, W, c)
        return torch.addmm(b - c @ W, x, W)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, W, c = ctx.saved_tensors
        need_x, need_W, need_b, need_c = ctx.needs_input_grad
        m = W.shape[1]
        if g.is_sparse:
            rows, cols = g._indices()
            vals = g._values()
            s = torch.zeros(m, dtype=vals.dtype, device=vals.device).index_add_(0, cols, vals)
            grad_x = torch.sparse.mm(g, W.T) if need_x else None
        else:
            s = g.sum(0) if (need_b or need_c) else None
            grad_x = g @ W.T if need_x else None
        grad_W = weight_grad(x - c, g) if need_W else None
        grad_c = -(W @ s) if need_c else None
        return grad_x, grad_W, s if need_b else None, grad_c


def weight_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x^T g for x (n, d), g (n, m) dense or sparse COO -> (d, m); over g's non-zeros only when g is
    sparse COO or `worth_it(g)`.

    Sparse form: row j of (x^T g)^T is sum over the samples b where g[b, j] != 0 of g[b, j] x_b,
    an embedding bag of the rows of x with the entries grouped by latent j.
    """
    if g.is_sparse:
        rows, cols = g._indices()
        weights = g._values()
    elif worth_it(g):
        rows, cols = g.nonzero(as_tuple=True)
        weights = g[rows, cols]
    else:
        return x.T @ g
    order = torch.argsort(cols, stable=True)  # group entries by latent (stable: deterministic sums)
    grad_t = F.embedding_bag(rows[order], x, bag_offsets(cols[order], g.shape[1]), mode="sum",
                             per_sample_weights=weights[order])
    return grad_t.T  # (d, m) view of the (m, d) result


def encode_linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Encoder pre-activations (x - c) W + b, (n, d) -> (n, m), for W (d, m), b (m,), c (d,).

    Same values as `torch.addmm(b - c @ W, x, W)`; in the backward, the W gradient is computed over
    the non-zeros of the incoming gradient when that is cheaper (`weight_grad`), and b's and c's
    gradients come from one column sum instead of an (n, m) x (m, d) product.
    """
    return _Encoder.apply(x, W, b, c)


# ---- ReLU codes kept as their non-zero entries ------------------------------------------------
class _Pick(torch.autograd.Function):
    """a[rows, cols] -> (nnz,), whose gradient reaches a as a sparse COO tensor: the encoder's
    backward then sees only these entries, and no dense (n, m) gradient is ever built."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows, cols)
        ctx.shape = a.shape
        return a[rows, cols]

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        rows, cols = ctx.saved_tensors
        grad = torch.sparse_coo_tensor(torch.stack([rows, cols]), g, ctx.shape, is_coalesced=True,
                                       check_invariants=False)  # row-major unique entries by construction
        return grad, None, None


@dataclasses.dataclass(frozen=True)
class ActiveCodes:
    """The non-zero entries of ReLU codes z = ReLU(a) (n, m): z[rows[e], cols[e]] = vals[e].

    rows, cols (nnz,) int64 in row-major order; vals (nnz,) differentiable (equal to a there, since
    ReLU is the identity on its support); codes (n, m) the dense codes, detached (for statistics).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    codes: torch.Tensor

    def decode(self, W_dec: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """bias + z W_dec -> (n, d), as an embedding bag over the entries."""
        return decode_entries(self.rows, self.cols, self.vals, W_dec, self.codes.shape[0]) + bias

    def fired(self) -> torch.Tensor:
        """(m,) int64: on how many samples each latent is non-zero."""
        return torch.bincount(self.cols, minlength=self.codes.shape[1])

    def penalty(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """mean_b sum_j w_j z_bj (the l1 norm of non-negative codes; weights (m,) or None = 1)."""
        v = self.vals if weights is None else self.vals * weights[self.cols]
        return v.sum() / self.codes.shape[0]


def active_relu(a: torch.Tensor) -> ActiveCodes | None:
    """ReLU(a) for pre-activations a (n, m) as `ActiveCodes` when `worth_it`, else None (the caller
    then takes the dense path)."""
    z = F.relu(a.detach())
    if not worth_it(z):
        return None
    rows, cols = z.nonzero(as_tuple=True)
    return ActiveCodes(rows, cols, _Pick.apply(a, rows, cols), z)
