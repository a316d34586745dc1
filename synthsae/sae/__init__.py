"""The SAE zoo and its trainer.

Every SAE architecture the research compares, one file per variant, registered by name:

    >>> from synthsae.sae import make, available, train
    >>> sae = make("topk", d=64, m=256, k=8)
    >>> history = train(sae, world, n_samples=100_000, batch_size=1024, progress=False)  # doctest: +SKIP

Conventions (see `synthsae.sae.base`): W_dec is (m, d) with atoms as rows, x_hat = z W_dec + b_dec;
the reconstruction term is the mean over all elements of (x - x_hat)^2.
"""

from synthsae.sae.base import SAE, SAEConfig, TrainOutput, available, make
# Importing the variant modules registers them.
from synthsae.sae.relu_l1 import ReluL1Config, ReluL1SAE
from synthsae.sae.gated import GatedConfig, GatedSAE
from synthsae.sae.topk import TopKConfig, TopKSAE
from synthsae.sae.batchtopk import BatchTopKConfig, BatchTopKSAE
from synthsae.sae.jumprelu import JumpReLUConfig, JumpReLUSAE
from synthsae.sae.matryoshka import MatryoshkaConfig, MatryoshkaSAE
from synthsae.sae.aen import AENConfig, AENSAE
from synthsae.sae.frozen import (
    FrozenDecoderConfig,
    FrozenDecoderSAE,
    FrozenEncoderConfig,
    FrozenEncoderSAE,
    SoftFrozenDecoderConfig,
    SoftFrozenDecoderSAE,
)
from synthsae.sae.lista import LISTAConfig, LISTASAE
from synthsae.sae.matching_pursuit import MatchingPursuitConfig, MatchingPursuitSAE
from synthsae.sae.train import TrainHistory, TrainSettings, batch_seed, train

__all__ = [
    "SAE", "SAEConfig", "TrainOutput", "TrainHistory", "TrainSettings", "available", "make", "train", "batch_seed",
    "ReluL1Config", "GatedConfig", "TopKConfig", "BatchTopKConfig", "JumpReLUConfig", "MatryoshkaConfig",
    "AENConfig", "FrozenDecoderConfig", "SoftFrozenDecoderConfig", "FrozenEncoderConfig", "LISTAConfig",
    "MatchingPursuitConfig",
    "ReluL1SAE", "GatedSAE", "TopKSAE", "BatchTopKSAE", "JumpReLUSAE", "MatryoshkaSAE", "AENSAE",
    "FrozenDecoderSAE", "SoftFrozenDecoderSAE", "FrozenEncoderSAE", "LISTASAE", "MatchingPursuitSAE",
]
