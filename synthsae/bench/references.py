"""Reference rows of every task: a ceiling, a probe ceiling and a floor.

* `ceiling`: the true dictionary with certified exact codes (`synthsae.solvers.sparse_code`,
  non-negative Lasso with a small penalty `CEILING_L1` in the solver's ½-sum convention): what
  the best sparse code on the *true* features achieves, scored by the task's own metrics.
* `probe`: a linear probe per true feature trained on the activations (logistic regression, all
  features at once, full-batch Adam on a train split) and its F1 on a fresh test split: the best
  per-feature F1 a linear read-out of x gets. It is not an SAE: it fills only the task's F1
  columns (`PROBE_KEYS`).
* `random`: an untrained SAE of the task's width (TopK with k = the matched L0, seeded init): the
  floor every trained SAE must clear.
"""

from __future__ import annotations

import torch

CEILING_L1 = 0.01
PROBE_KEYS = ("f1", "firing_f1")  # the task metric keys a probe's per-feature F1 stands for
PROBE_STEPS = 300
PROBE_MAX_N = 50_000  # (n, m) dense labels: 50k x 16k features is 3.3 GB, the most we hold at once


class ExactCodes(torch.nn.Module):
    """An SAE-shaped object over the true dictionary D (m, d): encode = certified exact codes."""

    def __init__(self, world, l1: float = CEILING_L1):
        super().__init__()
        self.W_dec = world.dictionary.detach().float()
        self.bias = world.bias.detach().float() if isinstance(world.bias, torch.Tensor) else torch.zeros(world.d)
        self.l1 = l1
        self.certified = []

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        from synthsae.solvers import sparse_code

        res = sparse_code((x - self.bias).double(), self.W_dec.double(), l1=self.l1, nonneg=True)
        self.certified.append(float(res.converged.float().mean()) if hasattr(res.converged, "float") else float(res.converged))
        return res.z.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.bias

    def forward(self, x):
        return self.decode(self.encode(x))


def probe_f1(world, n: int, seed: int, device=None) -> float:
    """Mean over true features (with positives in the test split) of the test F1 of a logistic
    probe trained on n samples (seed `seed`; n capped at `PROBE_MAX_N`) and tested on n fresh ones."""
    n = min(n, PROBE_MAX_N)
    g = torch.Generator().manual_seed(seed)
    train = world.sample(n, seed=seed * 2 + 1, device=device)
    test = world.sample(n, seed=seed * 2 + 2, device=device)
    xtr, ytr = train.x.float(), (train.codes.to_dense() != 0).float()
    xte, yte = test.x.float(), (test.codes.to_dense() != 0)
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    W = (torch.randn(world.d, world.m, generator=g) * 0.01).to(xtr.device).requires_grad_()
    b = torch.zeros(world.m, device=xtr.device, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=0.05)
    pos = ytr.mean(0).clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        b.copy_(torch.log(pos / (1 - pos)))
    for _ in range(PROBE_STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xtr @ W + b, ytr)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (xte @ W + b) > 0
    tp = (pred & yte).sum(0).double()
    fp = (pred & ~yte).sum(0).double()
    fn = (~pred & yte).sum(0).double()
    has = yte.sum(0) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return float(f1[has].mean())


def random_sae(world, m: int, k: int, seed: int):
    """An untrained TopK SAE (k active latents, seeded init, b_dec = 0)."""
    from synthsae.sae import make

    sae = make("topk", d=world.d, m=m, k=min(k, m), seed=seed + 1000)
    sae.eval()
    return sae
