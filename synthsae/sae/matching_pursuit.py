"""`matching_pursuit`: an SAE whose encoder is greedy (non-negative) matching pursuit on its decoder.

Source: the Matching Pursuit SAE of SAELens (`MatchingPursuitTrainingSAE`, architecture
"matching_pursuit"), a row of the SynthSAEBench table, trained there with max_iterations = L0.
Classical matching pursuit: Mallat & Zhang 1993.

Encoder (tied: there is no separate encoder; `W_enc` reads as W_dec^T and `b_enc` as zeros):
    r = x - b_dec;  z = 0
    repeat k times (k = `k`, SAELens's max_iterations):
        c = r W_dec^T                         (n, m) correlations with the unit decoder rows
        j = argmax_j c_j;  v = max(c_j, 0)    the largest *positive* correlation (codes are >= 0)
        z_j += v;  r -= v W_dec,j             a latent may be picked again: its code accumulates
    A sample stops early (its later picks add nothing) once its residual norm is below
    `residual_threshold` (0 = never), or, with `stop_on_duplicate_support`, once an iteration
    leaves its support unchanged (the pick was a latent already active, or v = 0); the value of
    that last pick is still added, as in SAELens.
    So each sample has at most k non-zero codes, and ||r|| never increases (with unit rows,
    ||r - v d||^2 = ||r||^2 - v^2).
Decoder: x_hat = z W_dec + b_dec; decoder rows are kept at unit norm (SAELens initializes them at
    unit norm but does not renormalize while training; the pursuit's coefficient r.d_j is the
    least-squares step only for unit rows, so here they stay unit).
Loss: mse only (mean over all elements of (x - x_hat)^2); no sparsity term, no AuxK.
Trained: W_dec and b_dec. Gradients flow through the selected coefficients v and the residual
    updates (the argmax choices themselves are constants), as in SAELens.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


@dataclasses.dataclass(frozen=True)
class MatchingPursuitConfig(SAEConfig):
    """k: pursuit iterations = the most non-zero codes per sample (SAELens's `max_iterations`;
    SynthSAEBench sets it to the target L0). residual_threshold: a sample stops once its residual
    norm is below this (0 = never; SAELens's default 1e-2). stop_on_duplicate_support: a sample
    stops once an iteration leaves its support unchanged (SAELens's default True)."""

    k: int = 16
    residual_threshold: float = 1e-2
    stop_on_duplicate_support: bool = True

    def validate(self) -> None:
        super().validate()
        self._k("k")
        self._nonneg("residual_threshold")


class Pursuit(NamedTuple):
    """What `pursue` returns, for t <= k iterations actually run (t < k when every sample stopped).

    idx, vals: (n, t) the latent picked at each iteration and the value added to its code (0 once
        a sample has stopped, or when no correlation was positive). A latent may appear twice.
    residual: (n, d) the final residual r = x - b_dec - z W_dec (up to round-off).
    norms: (t + 1, n) residual norms before the first and after each iteration, or None.
    """

    idx: torch.Tensor
    vals: torch.Tensor
    residual: torch.Tensor
    norms: torch.Tensor | None

    def codes(self, m: int) -> torch.Tensor:
        """(n, m) dense codes: the values summed per latent (repeated picks accumulate)."""
        n = self.idx.shape[0]
        z = torch.zeros(n, m, dtype=self.vals.dtype, device=self.vals.device)
        return z.scatter_add(1, self.idx, self.vals)


def pursue(r: torch.Tensor, W_dec: torch.Tensor, k: int, residual_threshold: float = 0.0,
           stop_on_duplicate_support: bool = False, trace: bool = False) -> Pursuit:
    """Non-negative matching pursuit of r (n, d) on the rows of W_dec (m, d) (unit rows assumed).

    Differentiable in r and W_dec through the picked values (see the module docstring for the
    iteration and the stopping rules). trace=True also returns the residual norm after each
    iteration. Samples are independent: a sample's codes do not depend on the rest of the batch.
    """
    n = r.shape[0]
    done = torch.zeros(n, dtype=torch.bool, device=r.device)
    # which latents are active, for the duplicate-support rule; codes only grow (values >= 0), so a
    # pick changes the support iff its value is > 0 and the latent was not active yet
    active = torch.zeros(n, W_dec.shape[0], dtype=torch.bool, device=r.device) if stop_on_duplicate_support else None
    rows = torch.arange(n, device=r.device)
    picks, values = [], []
    norms = [r.detach().norm(dim=1)] if trace else None
    for _ in range(k):
        with torch.no_grad():  # the choice is a constant: no (n, m) product kept for backward
            j = (r @ W_dec.T).argmax(dim=1)
        atoms = W_dec[j]  # (n, d)
        v = (r * atoms).sum(dim=1).clamp_min(0) * (~done).to(r.dtype)
        r = r - v.unsqueeze(1) * atoms
        picks.append(j)
        values.append(v)
        if trace:
            norms.append(r.detach().norm(dim=1))
        with torch.no_grad():
            if active is not None:
                grew = (v > 0) & ~active[rows, j]
                active[rows, j] |= v > 0
                done |= ~grew
            if residual_threshold > 0:
                done |= r.norm(dim=1) < residual_threshold
            if (active is not None or residual_threshold > 0) and bool(done.all()):
                break
    return Pursuit(torch.stack(picks, dim=1), torch.stack(values, dim=1), r,
                   torch.stack(norms) if trace else None)


@register("matching_pursuit", MatchingPursuitConfig)
class MatchingPursuitSAE(SAE):
    """Matching Pursuit SAE (SAELens's "matching_pursuit"). See module docstring.

    Parameters: `W_dec` (m, d), `b_dec` (d,). `W_enc` is a read-only view W_dec^T (detached, so
    resampling and optimizers leave it alone) and `b_enc` zeros, for code that reads every SAE's
    encoder; neither is saved or trained.
    """

    config: MatchingPursuitConfig

    def __init__(self, config: MatchingPursuitConfig):
        super().__init__(config)
        # tied: drop the base class's separate encoder (same initial W_dec as every other variant)
        del self.W_enc
        del self.b_enc
        self._tied = True  # from here on W_enc / b_enc are answered by __getattr__

    def __getattr__(self, name: str):
        # not before _tied: the base __init__ must be able to register (then drop) its W_enc
        if not self.__dict__.get("_tied"):
            return super().__getattr__(name)
        if name == "W_enc":
            return self.W_dec.detach().T
        if name == "b_enc":
            return torch.zeros(self.config.m, dtype=self.W_dec.dtype, device=self.W_dec.device)
        return super().__getattr__(name)

    def pursuit(self, x: torch.Tensor, trace: bool = False) -> Pursuit:
        """The pursuit of x - b_dec, x (n, d) already checked (see `pursue`)."""
        cfg = self.config
        return pursue(x - self.b_dec, self.W_dec, cfg.k, cfg.residual_threshold, cfg.stop_on_duplicate_support,
                      trace)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # differentiable in x like every encoder (the Lipschitz metric takes its Jacobian)
        return self.pursuit(self._check_input(x)).codes(self.config.m)

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        codes = self.pursuit(x).codes(self.config.m)
        x_hat = self.decode(codes)
        mse = common.mse(x, x_hat)
        return TrainOutput(x_hat, codes, {"mse": mse, "total": mse})
