"""Seeded small (world, SAE, evaluate options) cases whose Reports are pinned in
data/reference_reports.json (captured from the hand-wired `evaluate` before the metric registry)."""

from __future__ import annotations

import torch

from synthsae.metrics import LinearSAE
from synthsae.testing.metrics import ExplicitWorld

FAST = dict(n=3000, batch_size=1024, lipschitz_power_iters=5, lipschitz_samples=32, steering_samples=32)
ALL = ("reconstruction", "recovery", "absorption", "subspaces", "downstream", "steering", "lipschitz", "amortization")


def _orthonormal(m: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:m].float()


def _noisy_sae(D: torch.Tensor, m_sae: int, seed: int, noise: float = 0.3, bias: float = -0.05) -> LinearSAE:
    """Latents = the true atoms (repeated / cut to m_sae) plus noise, ReLU encoder = decoder^T."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(m_sae) % D.shape[0]
    W = D[idx] + noise * torch.randn(m_sae, D.shape[1], generator=g) / D.shape[1] ** 0.5
    return LinearSAE(W.T.clone(), W, b_enc=torch.full((m_sae,), bias), b_dec=0.01 * torch.randn(D.shape[1], generator=g))


def _world_flat():
    return ExplicitWorld(_orthonormal(16, 32, 0), [0.2] * 16, magnitudes=(0.5, 1.5), noise=0.01)


def _world_tree():
    parents = [-1, -1, -1, 0, 1, 2, 0] + [-1] * 5
    return ExplicitWorld(_orthonormal(12, 24, 1), [0.5] * 7 + [0.1] * 5, parents=parents, magnitudes=(0.8, 1.2))


def _world_groups():
    groups = [0, 0, 0, 1, 1, 1, 2, 2, -1, -1]
    return ExplicitWorld(_orthonormal(10, 20, 2), [0.3] * 10, groups=groups, magnitudes=(0.5, 1.0))


def _real_world():
    from synthsae.world import World
    from synthsae.world.presets import preset_config

    return World(preset_config("toy"))


def cases():
    """name -> (sae, world, evaluate keyword arguments)."""
    flat, tree, groups = _world_flat(), _world_tree(), _world_groups()
    out = {
        "flat_more_latents": (_noisy_sae(flat.dictionary, 20, 0), flat, dict(FAST, seed=3)),
        "flat_fewer_latents_all": (_noisy_sae(flat.dictionary, 12, 1), flat,
                                   dict(FAST, seed=4, metrics=ALL, amortization_l1=0.05, amortization_l2=0.1)),
        "tree_default": (_noisy_sae(tree.dictionary, 12, 2, noise=0.5), tree, dict(FAST, seed=5)),
        "tree_all_l2_zero": (_noisy_sae(tree.dictionary, 14, 3), tree,
                             dict(FAST, seed=6, metrics=ALL, amortization_l1=0.02, matching="sparse", matching_k=4)),
        "groups_default": (_noisy_sae(groups.dictionary, 10, 4, noise=0.2), groups,
                           dict(FAST, seed=7, thresholds=(0.3, 0.6, 0.9))),
        "flat_only_core_big_n": (_noisy_sae(flat.dictionary, 16, 5), flat,
                                 dict(n=12_000, batch_size=5000, seed=8, metrics=("reconstruction",), decode="sae")),
    }
    out["tree_all_without_l1"] = (_noisy_sae(tree.dictionary, 12, 6), tree, dict(FAST, seed=11, metrics=ALL))
    silent_child = ExplicitWorld(torch.eye(4), [0.5, 0.0, 0.5, 0.5], parents=[-1, 0, -1, -1])
    out["tree_without_events"] = (LinearSAE.from_dictionary(silent_child.dictionary), silent_child,
                                  dict(n=500, metrics=("absorption",)))
    world = _real_world()
    sae = _noisy_sae(world.dictionary.float(), 160, 9, noise=0.5, bias=-0.2)
    out["toy_preset_all"] = (sae, world, dict(FAST, seed=10, metrics=ALL, amortization_l1=0.1, amortization_l2=0.05))
    return out
