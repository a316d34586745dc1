"""One autograd node for the dense SAE path of small dictionaries.

At toy sizes (d = 32, m = 128, batch 1024) each of the five products of a training step takes
~0.15 ms on one CPU thread, about as long as a handful of elementwise ops with their autograd
bookkeeping. Autograd on the eager ops of

    a = (x - b_dec) W_enc + b_enc,   z = act(a),   x_hat = z W_dec + b_dec,   mse = mean (x - x_hat)^2

spends most of a step outside the products. `forward` computes the same values with one
`torch.autograd.Function` whose backward is written out once, for every variant whose activation
has a *mask Jacobian*: z = a on the entries it keeps (all positive), 0 elsewhere, so that
dz/da = diag(1[z > 0]) (ReLU, TopK followed by ReLU, BatchTopK). With r = x_hat - x, g_x = dL/dx_hat:

    g_x    = (2 / (n d)) dL/dmse * r + dL/dx_hat            (n, d)
    dW_dec = z^T g_x,  g_z = g_x W_dec^T + dL/dz            (m, d), (n, m)
    g_a    = 1[z > 0] * g_z + dL/da,  s = column sums of g_a
    dW_enc = (x - b_dec)^T g_a,  db_enc = s,  db_dec = sum_b g_x - W_enc s
    dx     = -(2 / (n d)) dL/dmse * r + g_a W_enc^T

Gradients reaching z or a from outside (an l1 penalty on z, AuxK on a) are added where autograd
would add them, so `forward` is exact for any loss built on its outputs. The variants call it
through `SAE.reconstruct`, which falls back to plain autograd where it does not apply (`applies`):
large dictionaries keep the sparse kernels of `synthsae.sae.sparse`, other devices keep the eager
ops until the fused node is measured and tested there. Parameter gradients equal autograd's to
float32 round-off (tests/sae/test_fused.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from synthsae.sae import sparse

# Switch for tests and measurements: False sends every variant through plain autograd.
ENABLED = True


@dataclasses.dataclass(frozen=True)
class Dense:
    """The dense training path's tensors: pre-activations a (n, m), codes z (n, m), reconstruction
    x_hat (n, d) and mse (0-d, mean over all elements of (x - x_hat)^2)."""

    a: torch.Tensor
    z: torch.Tensor
    x_hat: torch.Tensor
    mse: torch.Tensor


def applies(x: torch.Tensor, m: int) -> bool:
    """True where `forward` is used: CPU inputs and a dictionary below `sparse.MIN_LATENTS`
    latents (larger ones keep the sparse kernels)."""
    return ENABLED and x.device.type == "cpu" and m < sparse.MIN_LATENTS


class _DenseSAE(torch.autograd.Function):
    """(x, W_enc, b_enc, b_dec, W_dec) -> (mse, x_hat, z, a); see the module docstring."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, W_dec, activation):
        a = torch.addmm(b_enc - b_dec @ W_enc, x, W_enc)  # folded bias: no centred copy of x
        z = activation(a)
        x_hat = torch.addmm(b_dec, z, W_dec)
        r = x_hat - x
        flat = r.view(-1)
        mse = torch.dot(flat, flat) / flat.numel()  # one reduction instead of pow + mean
        ctx.save_for_backward(x, W_enc, b_dec, W_dec, z, r)
        ctx.set_materialize_grads(False)  # unused outputs (z, a) cost no zero tensors
        return mse, x_hat, z, a

    @staticmethod
    def backward(ctx, g_mse, g_xhat, g_z, g_a):
        x, W_enc, b_dec, W_dec, z, r = ctx.saved_tensors
        need_x, need_W_enc, need_b_enc, need_b_dec, need_W_dec, _ = ctx.needs_input_grad
        # dL/dx_hat
        g_r = None if g_mse is None else r * (g_mse * (2.0 / r.numel()))  # dL/dr, r = x_hat - x
        g_x = g_r
        if g_xhat is not None:
            g_x = g_xhat if g_x is None else g_x + g_xhat
        grad_W_dec = None
        if g_x is not None:
            grad_W_dec = z.T @ g_x if need_W_dec else None
            g_dec = g_x @ W_dec.T
            g_z = g_dec if g_z is None else g_dec.add_(g_z)
        # dL/da: through the mask Jacobian of the activation, plus what reaches a directly
        g_pre = None if g_z is None else torch.ops.aten.threshold_backward(g_z, z, 0)
        if g_a is not None:
            g_pre = g_a if g_pre is None else g_pre.add_(g_a)

        grad_x = grad_W_enc = grad_b_enc = grad_b_dec = None
        s = None if g_pre is None else g_pre.sum(0)
        if need_W_enc and g_pre is not None:
            # (x - b_dec)^T g_a = x^T g_a - b_dec s^T, one addmm on a rank-one start
            grad_W_enc = torch.addmm(torch.outer(b_dec, s), x.T, g_pre, beta=-1)
        if need_b_enc and s is not None:
            grad_b_enc = s
        if need_b_dec:
            if g_x is not None:
                grad_b_dec = g_x.sum(0)
            if s is not None:
                grad_b_dec = -(W_enc @ s) if grad_b_dec is None else torch.addmv(grad_b_dec, W_enc, s, alpha=-1)
        if need_x:  # x enters through r directly and through the encoder
            if g_r is not None:
                grad_x = -g_r
            if g_pre is not None:
                grad_x = g_pre @ W_enc.T if grad_x is None else torch.addmm(grad_x, g_pre, W_enc.T)
        return grad_x, grad_W_enc, grad_b_enc, grad_b_dec, grad_W_dec, None


def forward(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor,
            W_dec: torch.Tensor, activation: Callable[[torch.Tensor], torch.Tensor]) -> Dense:
    """The dense SAE path as one autograd node, for x (n, d), W_enc (d, m), b_enc (m,), b_dec (d,),
    W_dec (m, d) (atoms are rows).

    activation: pre-activations a (n, m) -> codes z (n, m) with a mask Jacobian: every entry of z
    is either a[b, j] > 0 (kept) or 0 (dropped). It is called on a tensor without autograd history.
    Values equal those of the eager ops (the mse to float round-off: it is one dot product);
    gradients flow to every input that requires them.
    """
    mse, x_hat, z, a = _DenseSAE.apply(x, W_enc, b_enc, b_dec, W_dec, activation)
    return Dense(a, z, x_hat, mse)
