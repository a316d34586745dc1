"""Opt-in sparse kernels: SAE products whose cost grows with the number of non-zero codes, not n·m.

Used only by an SAE whose config sets `sparse_kernels=True`; the choice is made in one place, the
helpers of `synthsae.sae.base.SAE` (`pre_acts`, `decode_with`, `decode_topk`, `relu_codes`). By
default every SAE runs the plain dense ops of its formula.

A trained SAE fires only a few of its m latents per sample, yet a dense training step still pays
four (n, d) x (d, m)-sized products besides the encoder's forward one: the decoder product, its two
gradients, and the encoder's weight gradient x^T g, whose g (n, m) is zero wherever a ReLU-like
activation was off. Here those four are computed over the non-zero entries only (nnz = n * L0):

* `decode(z, W_dec, bias)`: x_hat = z W_dec (+ bias) as an embedding bag over the non-zeros of each
  row of z. Autograd differentiates the bag natively: dW_dec scatters vals * g rows, dz is the dot
  product of g with the selected decoder rows, and flows back into z at the non-zeros only.
* `decode_topk(idx, vals, W_dec)`: the same for exactly-k codes given as (n, k) indices and values.
* `encode_linear(x, W, b, c)`: the dense forward (x - c) W + b (every pre-activation is needed to
  decide which latents fire), with a backward that computes dW = (x - c)^T g over the non-zeros of
  g, as an embedding bag of the rows of x - c grouped by latent.
* `active_relu(a)`: ReLU codes kept as their non-zero entries (`ActiveCodes`), whose gradient
  reaches the encoder as a sparse COO tensor, so no dense (n, m) gradient is built at all.

They compute the same sums as the dense products in another order, so they agree with the plain
path to float round-off, not bit for bit (tests/sae/test_sparse.py). Each is a deterministic
function of its operands, so a run with the kernels on is bit-reproducible on CPU.

Where they pay (CPU, benchmarks/README.md): large dictionaries with sparse codes, e.g. 16,384
latents at a trained L0 of ~35 (density 1/470). Where they do not: dense codes (an embedding bag
costs several times a BLAS product per non-zero, so a fresh relu_l1 firing on half its latents is
slower) and small dictionaries. On a GPU, `nonzero` costs a host synchronisation per product; the
kernels have not been measured there.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from synthsae._rowsums import bag_offsets, weighted_row_sums


def decode_topk(idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_k vals[b, k] W_dec[idx[b, k]] for idx, vals (n, k) -> (n, d): exactly-k codes as an
    embedding bag (O(n k d), no dense (n, m) product)."""
    return F.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")


def decode(z: torch.Tensor, W_dec: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """bias + z W_dec for codes z (n, m), decoder W_dec (m, d), bias (d,) or None -> (n, d), as an
    embedding bag over the non-zeros of z."""
    rows, cols = z.detach().nonzero(as_tuple=True)  # row-major: each sample's entries are contiguous
    bags = weighted_row_sums(rows, cols, z[rows, cols], W_dec, z.shape[0])
    return bags if bias is None else bags + bias


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
    """x^T g for x (n, d), g (n, m) dense or sparse COO -> (d, m), over g's non-zeros only.

    Row j of (x^T g)^T is the sum over the samples b where g[b, j] != 0 of g[b, j] x_b: an
    embedding bag of the rows of x with the entries grouped by latent j.
    """
    if g.is_sparse:
        rows, cols = g._indices()
        weights = g._values()
    else:
        rows, cols = g.nonzero(as_tuple=True)
        weights = g[rows, cols]
    order = torch.argsort(cols, stable=True)  # group entries by latent (stable: deterministic sums)
    grad_t = F.embedding_bag(rows[order], x, bag_offsets(cols[order], g.shape[1]), mode="sum",
                             per_sample_weights=weights[order])
    return grad_t.T  # (d, m) view of the (m, d) result


def encode_linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Encoder pre-activations (x - c) W + b, (n, d) -> (n, m), for W (d, m), b (m,), c (d,).

    Same values as the plain `(x - c) @ W + b` up to float round-off; in the backward, the W
    gradient is computed over the non-zeros of the incoming gradient (`weight_grad`), and b's and
    c's gradients come from one column sum instead of an (n, m) x (m, d) product.
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
    The same methods as the plain `common.DenseCodes`.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    codes: torch.Tensor

    def decode(self, W_dec: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """bias + z W_dec -> (n, d), as an embedding bag over the entries."""
        return weighted_row_sums(self.rows, self.cols, self.vals, W_dec, self.codes.shape[0]) + bias

    def fired(self) -> torch.Tensor:
        """(m,) int64: on how many samples each latent is non-zero."""
        return torch.bincount(self.cols, minlength=self.codes.shape[1])

    def penalty(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """mean_b sum_j w_j z_bj (the l1 norm of non-negative codes; weights (m,) or None = 1)."""
        v = self.vals if weights is None else self.vals * weights[self.cols]
        return v.sum() / self.codes.shape[0]

    def sum_of_squares(self) -> torch.Tensor:
        """mean_b sum_j z_bj^2."""
        return self.vals.pow(2).sum() / self.codes.shape[0]


def active_relu(a: torch.Tensor) -> ActiveCodes:
    """ReLU(a) for pre-activations a (n, m) as `ActiveCodes`."""
    z = F.relu(a.detach())
    rows, cols = z.nonzero(as_tuple=True)
    return ActiveCodes(rows, cols, _Pick.apply(a, rows, cols), z)
