"""benchmarks/train_floor.py: its hand-written relu_l1 step is the step it claims to be.

Lives with the benchmarks (not collected by `python -m pytest`): `python -m pytest benchmarks/test_train_floor.py`.
"""

import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent


def load():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("train_floor", BENCH / "train_floor.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_hand_written_gradients_match_autograd():
    floor = load()
    x, params, _, _ = floor.initial_state(d=8, m=16, B=64, seed=3)
    params[1] = torch.linspace(-0.2, 0.2, 16)  # some latents off, some on
    assert floor.check_gradients(x, params) < 1e-5


def test_step_is_torch_adam_with_unit_norm_rows():
    """Three steps of the pure function against torch.optim.Adam fed the same gradients (decoder
    gradient without its parallel part), with the decoder rows renormalized after each step."""
    floor = load()
    x, params, m1, m2 = floor.initial_state(d=8, m=16, B=64, seed=4)
    leaves = [p.clone().requires_grad_(True) for p in params]
    adam = torch.optim.Adam(leaves, lr=floor.LR, betas=floor.BETAS, eps=floor.EPS)
    for t in range(1, 4):
        _, params, m1, m2 = floor.step(x, params, m1, m2, torch.tensor(float(t)))
        loss, *_ = floor.loss_terms(x, *leaves)
        adam.zero_grad()
        loss.backward()
        with torch.no_grad():
            W_dec, g = leaves[2], leaves[2].grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec
            adam.step()
            W_dec /= W_dec.norm(dim=1, keepdim=True)
    for mine, ref in zip(params, leaves):
        torch.testing.assert_close(mine, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(params[2].norm(dim=1), torch.ones(16))
