"""Machinery shared by the SAE variants and the trainer. Each piece lives here once.

Conventions as in `synthsae.sae.base`: W_dec (m, d) with atoms as rows, codes (n, m).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from synthsae.errors import ConfigError


# ---- initialization ---------------------------------------------------------------------------
def random_unit_rows(m: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """(m, d) float32 rows uniform on the unit sphere (normalized Gaussians), from `gen`."""
    w = torch.randn(m, d, generator=gen, dtype=torch.float32, device=gen.device)
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-7) -> torch.Tensor:
    """Geometric median of the rows of x (n, d) by Weiszfeld's algorithm (float64 inside).

    The point minimizing sum_i ||x_i - y||; robust to outliers, used to initialize b_dec
    (Bricken et al. 2023).
    """
    x64 = x.to(torch.float64)
    y = x64.mean(0)
    for _ in range(iters):
        dist = (x64 - y).norm(dim=1).clamp_min(1e-12)
        w = 1.0 / dist
        y_new = (w[:, None] * x64).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * max(1.0, y.norm().item()):
            y = y_new
            break
        y = y_new
    return y.to(x.dtype)


def data_center(x: torch.Tensor, method: str) -> torch.Tensor:
    """The (d,) point used to initialize b_dec: "mean", "geometric_median" or "zeros"."""
    if method == "mean":
        return x.mean(0)
    if method == "geometric_median":
        return geometric_median(x)
    if method == "zeros":
        return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    raise ConfigError(f"init_b_dec = {method!r} is invalid. Expected: 'mean', 'geometric_median' or 'zeros'.")


# ---- decoder norms ----------------------------------------------------------------------------
@torch.no_grad()
def normalize_rows_(W: torch.Tensor) -> None:
    """Scale each row of W (m, d) to unit norm, in place."""
    W.div_(W.norm(dim=1, keepdim=True).clamp_min(1e-12))


@torch.no_grad()
def remove_parallel_grad_(W: torch.Tensor) -> None:
    """Remove from W.grad the component of each row parallel to that row of W (unit rows assumed).

    With unit-norm rows, this keeps the Adam update tangent to the sphere, so renormalizing
    afterwards only corrects second-order drift (Bricken et al. 2023).
    """
    if W.grad is None:
        return
    # (m, 1, 1) row-wise dots as one bmm: no (m, d) temporary (vecdot makes one: 3x slower at
    # 16k x 768), and none of einsum's dispatch (2.5x slower at 128 x 32)
    parallel = torch.bmm(W.grad.unsqueeze(1), W.unsqueeze(2)).view(-1, 1)
    W.grad.addcmul_(parallel, W, value=-1.0)


def l1(codes: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_b sum_j w_j |z_bj| for **non-negative** codes (every variant here ends in a ReLU),
    weights (m,) or None (all 1), computed without an (n, m) abs and its backward. With
    w_j = ||W_dec,j|| it is the decoder-norm-weighted penalty (Anthropic, "Circuits Updates",
    April 2024); `sparse.ActiveCodes.penalty` is the same on the non-zero entries."""
    if weights is None:
        return codes.sum() / codes.shape[0]
    return (codes @ weights).mean()


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of (x - x_hat)^2 (not summed over d; see base module docstring)."""
    return (x - x_hat).pow(2).mean()


# ---- codes and their decoding (the plain path; `synthsae.sae.sparse` has the opt-in kernels) ---
def scatter_codes(idx: torch.Tensor, vals: torch.Tensor, m: int) -> torch.Tensor:
    """Dense (n, m) codes with vals (n, k) at columns idx (n, k), zeros elsewhere."""
    return torch.zeros(idx.shape[0], m, dtype=vals.dtype, device=vals.device).scatter(1, idx, vals)


def decode_topk(idx: torch.Tensor, vals: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """sum_k vals[b, k] W[idx[b, k]] -> (n, d) for exactly-k codes idx, vals (n, k) and rows W (m, d):
    the dense codes times W."""
    return scatter_codes(idx, vals, W.shape[0]) @ W


@dataclasses.dataclass(frozen=True)
class DenseCodes:
    """Non-negative codes z (n, m) as a dense tensor (differentiable): the plain counterpart of
    `sparse.ActiveCodes`, with the same methods."""

    codes: torch.Tensor

    def decode(self, W_dec: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """z W_dec + bias -> (n, d)."""
        return self.codes @ W_dec + bias

    def penalty(self, weights: torch.Tensor | None = None) -> torch.Tensor:
        """mean_b sum_j w_j z_bj (`l1`)."""
        return l1(self.codes, weights)

    def sum_of_squares(self) -> torch.Tensor:
        """mean_b sum_j z_bj^2."""
        return self.codes.pow(2).sum() / self.codes.shape[0]

    def fired(self) -> None:
        """None: the trainer counts firing latents from the dense codes (`TrainOutput`)."""
        return None


# ---- dead latents -----------------------------------------------------------------------------
@torch.no_grad()
def update_fire_stats(fire_count: torch.Tensor, steps_since_fired: torch.Tensor, fired: torch.Tensor) -> None:
    """Add this batch's per-latent firing counts `fired` (m,); count one more step for every latent,
    and reset `steps_since_fired` to 0 where a latent fired."""
    fire_count.add_(fired)
    steps_since_fired.add_(1)
    steps_since_fired.masked_fill_(fired > 0, 0)


def auxk_loss(residual: torch.Tensor, pre_acts: torch.Tensor, dead: torch.Tensor, k_aux: int,
              W_dec: torch.Tensor,
              decode: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = decode_topk,
              ) -> torch.Tensor:
    """AuxK (Gao et al. 2024): reconstruct the residual with the top-k_aux *dead* latents.

    residual: (n, d) x - x_hat, detached (the aux term trains only the dead latents).
    pre_acts: (n, m) encoder pre-activations; dead: (m,) bool. decode(idx, vals, W_dec) -> (n, d)
    sums the selected decoder rows (the SAE's `decode_topk`, which follows its `sparse_kernels`).
    Returns mean over elements of (residual - e_hat)^2, or 0 when no latent is dead.
    """
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre_acts.new_zeros(())
    k = min(k_aux, n_dead)
    masked = pre_acts.masked_fill(~dead, float("-inf"))
    vals, idx = masked.topk(k, dim=1, sorted=False)
    e_hat = decode(idx, F.relu(vals), W_dec)
    return (residual.detach() - e_hat).pow(2).mean()


# ---- schedules --------------------------------------------------------------------------------
def linear_warmup(step: int, warmup_steps: int) -> float:
    """0 -> 1 linearly over `warmup_steps` (1 from then on; 1 always if warmup_steps == 0)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def lr_factor(step: int, n_steps: int, warmup_steps: int, decay_steps: int) -> float:
    """Learning-rate multiplier: linear warmup over the first `warmup_steps`, constant, then a
    linear decay to 0 over the last `decay_steps` of an `n_steps` run."""
    f = linear_warmup(step, warmup_steps)
    if decay_steps > 0:
        f = min(f, (n_steps - step) / decay_steps)
    return max(f, 0.0)


@torch.no_grad()
def ema_(buffer: torch.Tensor, value: torch.Tensor, beta: float) -> None:
    """buffer <- beta * buffer + (1 - beta) * value, in place."""
    buffer.mul_(beta).add_(value, alpha=1.0 - beta)


# ---- resampling -------------------------------------------------------------------------------
@torch.no_grad()
def resample_dead(sae, x: torch.Tensor, optimizer: torch.optim.Optimizer, gen: torch.Generator,
                  encoder_scale: float = 0.2) -> int:
    """Re-initialize dead latents on badly reconstructed inputs (Bricken et al. 2023).

    Each dead latent j gets an input x_i drawn with probability proportional to its squared
    reconstruction error; W_dec,j = unit(x_i - b_dec), the encoder column = that direction times
    `encoder_scale` x the mean norm of alive encoder columns, b_enc,j = 0; Adam moments of these
    slices are zeroed; `steps_since_fired` is reset. Returns the number of resampled latents.
    """
    dead = sae.dead_mask()
    idx = dead.nonzero().flatten()
    if idx.numel() == 0 or not sae.W_dec.requires_grad:
        return 0
    err = (x - sae(x)).pow(2).sum(dim=1)
    probs = err / err.sum() if err.sum() > 0 else torch.full_like(err, 1.0 / len(err))
    pick = torch.multinomial(probs.cpu(), idx.numel(), replacement=True, generator=gen).to(x.device)
    directions = x[pick] - sae.b_dec
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sae.W_dec[idx] = directions
    if sae.W_enc.requires_grad:
        alive = ~dead
        scale = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        sae.W_enc[:, idx] = directions.T * encoder_scale * scale
        sae.b_enc[idx] = 0.0
    sae.reset_latents(idx)
    sae.steps_since_fired[idx] = 0
    for p, dim in ((sae.W_dec, 0), (sae.W_enc, 1), (sae.b_enc, 0)):
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].index_fill_(dim, idx, 0.0)
    return idx.numel()

