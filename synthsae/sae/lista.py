"""`lista`: an SAE whose encoder is T unrolled (non-negative) ISTA iterations with learned weights.

Source: Gregor & LeCun 2010, "Learning Fast Approximations of Sparse Coding" (LISTA).

ISTA for min_z 1/2 ||x' - z D||^2 + lam ||z||_1, z >= 0, with step 1/L (L = ||D||_2^2) is
    z <- ReLU(x' D^T / L + z (I - D D^T / L) - lam / L).
LISTA learns the matrices and thresholds of this recursion:
    x' = x - b_dec,  u = x' W_enc + b_enc
    z_0 = ReLU(u - theta),   z_{t+1} = ReLU(u + z_t S - theta)   for t = 0 .. T-1
with W_enc (d, m), S (m, m), theta (m,) shared across iterations, initialized at the ISTA values
for the initial decoder D = W_dec(0) (W_enc = D^T / L, S = I - D D^T / L, theta = ista_lambda / L).
T = 0 is a one-layer ReLU encoder; T -> inf with untrained weights approaches the exact
non-negative Lasso code, which makes LISTA the bridge between amortized SAEs and exact solvers.
x_hat = z_T W_dec + b_dec (unit-norm decoder rows).
Loss: mse + l1_coefficient * s(step) * mean_b sum_j |z_T,bj|  (mse = mean over all elements).
Unlike the 2010 paper (which regressed LISTA onto precomputed optimal codes), it is trained like an
SAE, end to end on reconstruction + sparsity. S costs m^2 parameters: meant for small m.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import SAE, SAEConfig, TrainOutput, register


@dataclasses.dataclass(frozen=True)
class LISTAConfig(SAEConfig):
    """n_iterations: T. l1_coefficient: training penalty. ista_lambda: lam used to initialize
    the thresholds (theta = lam / L)."""

    n_iterations: int = 3
    l1_coefficient: float = 1e-3
    ista_lambda: float = 0.1

    def validate(self) -> None:
        super().validate()
        require(self.n_iterations >= 0, f"{type(self).__name__}.n_iterations", self.n_iterations,
                "the number of unrolled iterations cannot be negative", "an int >= 0")
        self._nonneg("l1_coefficient")
        self._nonneg("ista_lambda")


@register("lista", LISTAConfig)
class LISTASAE(SAE):
    """LISTA encoder SAE (Gregor & LeCun 2010). See module docstring."""

    config: LISTAConfig
    sparsity_terms = {"l1": "l1_coefficient"}  # loss term -> its coefficient (what train(target_l0=) adapts)

    def __init__(self, config: LISTAConfig):
        super().__init__(config)
        D = self.W_dec.detach()
        L = float(torch.linalg.matrix_norm(D.double(), ord=2) ** 2)
        with torch.no_grad():
            self.W_enc.copy_(D.T / L)
        self.S = nn.Parameter(torch.eye(config.m) - (D @ D.T) / L)
        self.theta = nn.Parameter(torch.full((config.m,), config.ista_lambda / L))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        u = self.pre_acts(x)
        z = F.relu(u - self.theta)
        for _ in range(self.config.n_iterations):
            z = F.relu(u + z @ self.S - self.theta)
        return z

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.codes(self._check_input(x))

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:
        z = self.codes(x)
        x_hat = self.decode(z)
        terms = {"mse": common.mse(x, x_hat),
                 "l1": self.config.l1_coefficient * self.sparsity_scale(step) * common.l1(z)}
        terms["total"] = terms["mse"] + terms["l1"]
        return TrainOutput(x_hat, z, terms)
