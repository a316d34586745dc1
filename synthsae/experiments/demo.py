"""The `synthsae demo` experiment: four SAE variants on a small world with planted features.

The world is the "toy" preset (128 random atoms in d = 32, Zipfian firing, magnitudes U[0.5, 1.5])
plus a small hierarchy (8 parents with 3 children each, half of them mutually exclusive), so that
absorption is defined. Each SAE has m = 256 latents (2x the true features). Hyperparameters were
chosen by measurement so that the comparison table is informative at this size (see the report of
issue 7); nothing in the output is precomputed.
"""

from __future__ import annotations

from typing import Any

from synthsae.errors import require
from synthsae.experiments.config import ExperimentConfig

DEMO_SAMPLES = 500_000  # training samples per SAE
DEMO_BATCH = 256  # small batches: more steps per sample, which these short runs need
DEMO_EVAL_SAMPLES = 20_000
DEMO_M = 256


def _saes(steps: int) -> dict[str, dict[str, Any]]:
    """variant -> its [[sae]] table; `steps` (training steps) sets AEN's schedule."""
    return {
        "relu_l1": {"variant": "relu_l1", "m": DEMO_M, "l1_coefficient": 1e-2},
        "topk": {"variant": "topk", "m": DEMO_M, "k": 4},
        "jumprelu": {"variant": "jumprelu", "m": DEMO_M, "l0_coefficient": 3e-3, "bandwidth": 0.05,
                     "threshold_init": 0.1},
        # the adaptive weights fade in after a third of training (the paper's 10k-step warmup is longer
        # than this whole run)
        "aen": {"variant": "aen", "m": DEMO_M, "l1_coefficient": 3e-3, "warmup_steps": max(1, steps // 3),
                "ramp_steps": max(1, steps // 6)},
    }


DEMO_VARIANTS = tuple(_saes(1))


def demo_config(samples: int = DEMO_SAMPLES, variants: tuple[str, ...] | list[str] = DEMO_VARIANTS,
                eval_samples: int = DEMO_EVAL_SAMPLES, seed: int = 0, device: str = "cpu",
                plots: bool = True) -> ExperimentConfig:
    """The demo's `ExperimentConfig`; `samples` (training samples per SAE, >= DEMO_BATCH), `variants` (a
    subset of relu_l1, topk, jumprelu, aen) and `eval_samples` shrink it."""
    batch = DEMO_BATCH
    require(isinstance(samples, int) and samples >= batch, "--samples", samples,
            f"training needs at least one batch of {batch} samples", f"an int >= {batch}")
    steps = samples // batch
    table = _saes(steps)
    require(len(variants) >= 1, "--variants", variants, "the demo needs at least one variant",
            f"a comma-separated subset of {', '.join(DEMO_VARIANTS)}")
    for v in variants:
        require(v in table, "--variants", v, "the demo has no such variant",
                f"a comma-separated subset of {', '.join(DEMO_VARIANTS)} (other variants: `synthsae run CONFIG.toml`)")
    return ExperimentConfig.from_dict({
        "name": "synthsae demo: SAE variants on a toy world with planted features",
        "seed": seed,
        "device": device,
        "world": {"preset": "toy", "hierarchy": {"roots": 8, "branching": 3, "depth": 1, "mutually_exclusive": 0.5}},
        "sae": [table[v] for v in dict.fromkeys(variants)],
        "train": {"n_samples": samples, "batch_size": batch, "lr": 3e-3, "lr_decay_steps": steps // 5},
        "eval": {"n": eval_samples, "metrics": ["reconstruction", "recovery", "absorption"]},
        "plots": plots,
    })
