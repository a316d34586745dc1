"""A user's own SAE for the bench tests: a ReLU SAE with a softplus-smoothed l1 penalty, written
only against the public contract (docs/bench.md)."""

import dataclasses

import torch
import torch.nn.functional as F

from synthsae.sae import SAE, SAEConfig, TrainOutput


@dataclasses.dataclass(frozen=True)
class TinyConfig(SAEConfig):
    l1_coefficient: float = 1e-3


class TinySAE(SAE):
    config_class = TinyConfig
    sparsity_terms = {"sparsity": "l1_coefficient"}  # reached a target L0 through train(target_l0=...)

    def encode(self, x):
        return F.relu(self.pre_acts(self._check_input(x)))

    def forward_train(self, x, step):
        z = F.relu(self.pre_acts(x))
        x_hat = self.decode(z)
        mse = (x - x_hat).pow(2).mean()
        terms = {"mse": mse, "sparsity": self.config.l1_coefficient * z.sum(1).mean()}
        terms["total"] = terms["mse"] + terms["sparsity"]
        return TrainOutput(x_hat, z, terms)


class NoSparsity(SAE):
    """Breaks the contract: nothing sets its L0."""

    config_class = TinyConfig

    def encode(self, x):
        return F.relu(self.pre_acts(x))

    def forward_train(self, x, step):
        z = self.encode(x)
        x_hat = self.decode(z)
        return TrainOutput(x_hat, z, {"total": (x - x_hat).pow(2).mean()})


class NoEncode(SAE):
    """Breaks the contract: no encode."""

    config_class = TinyConfig
    sparsity_terms = {"sparsity": "l1_coefficient"}

    def forward_train(self, x, step):
        raise NotImplementedError


class NotAnSAE:
    pass
