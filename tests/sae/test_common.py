"""The shared machinery in synthsae.sae.common."""

from __future__ import annotations

import torch
from scipy.optimize import minimize

from synthsae._rng import generator
from synthsae.sae import common, make, train


def test_geometric_median_minimizes_sum_of_distances():
    x = torch.randn(200, 5, generator=generator(0), dtype=torch.float64)
    x[:10] += 50.0  # outliers pull the mean, barely the median
    gm = common.geometric_median(x)
    objective = lambda y: float((x - torch.as_tensor(y)).norm(dim=1).sum())  # noqa: E731
    ref = minimize(objective, x.mean(0).numpy(), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 20000})
    assert objective(gm.numpy()) <= ref.fun + 1e-6
    assert gm.norm() < x.mean(0).norm()


def test_remove_parallel_grad_leaves_tangent_component():
    W = common.random_unit_rows(10, 6, generator(1)).requires_grad_(True)
    g = torch.randn(10, 6, generator=generator(2))
    W.grad = g.clone()
    common.remove_parallel_grad_(W)
    torch.testing.assert_close((W.grad * W).sum(1), torch.zeros(10), rtol=0, atol=1e-6)
    torch.testing.assert_close(W.grad, g - (g * W).sum(1, keepdim=True) * W.detach())


def test_lr_factor_schedule():
    f = [common.lr_factor(t, 20, 4, 5) for t in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4:15] == [1.0] * 11
    assert f[15:] == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert common.linear_warmup(3, 0) == 1.0


def test_auxk_only_dead_latents_get_gradient():
    m, d = 12, 5
    W = common.random_unit_rows(m, d, generator(3)).requires_grad_(True)
    pre = torch.randn(8, m, generator=generator(4)).abs().requires_grad_(True)
    resid = torch.randn(8, d, generator=generator(5))
    dead = torch.zeros(m, dtype=torch.bool)
    assert float(common.auxk_loss(resid, pre, dead, 3, W)) == 0.0
    dead[[1, 4, 7, 9]] = True
    loss = common.auxk_loss(resid, pre, dead, 3, W)
    loss.backward()
    assert (W.grad[~dead] == 0).all() and (W.grad[dead] != 0).any()
    assert (pre.grad[:, ~dead] == 0).all()
    assert ((pre.grad[:, dead] != 0).sum(1) <= 3).all()
    # by hand: top-3 dead pre-activations per row
    masked = pre.detach().masked_fill(~dead, float("-inf"))
    v, i = masked.topk(3, dim=1)
    z = torch.zeros(8, m).scatter(1, i, v)
    torch.testing.assert_close(loss, ((resid - z @ W.detach()) ** 2).mean())


def test_fire_stats():
    fc, ssf = torch.zeros(3, dtype=torch.long), torch.tensor([5, 5, 5])
    common.update_fire_stats(fc, ssf, (torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 3.0]]) != 0).sum(0))
    assert fc.tolist() == [2, 0, 1] and ssf.tolist() == [0, 6, 0]


def test_resampling_revives_dead_latents(make_world):
    world = make_world(d=16, m=8, k=2)
    fire = {}
    for resample_every in (None, 10):
        sae = make("relu_l1", 16, 32, dead_after_steps=5)
        with torch.no_grad():
            sae.b_enc[:16] = -100.0  # half the latents cannot fire
        h = train(sae, world, 64 * 30, 64, lr=3e-3, resample_every=resample_every, progress=False)
        fire[resample_every] = int((h.fire_count[:16] > 0).sum())
    assert fire[None] == 0  # control: without resampling they stay dead
    assert fire[10] >= 8  # resampling brings most of them back


def test_resampling_resets_adam_moments(make_world):
    world = make_world()
    sae = make("relu_l1", 16, 32, dead_after_steps=1)
    x = world.sample(64, seed=0).x
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    sae.loss(x, 0)["total"].backward()
    opt.step()
    with torch.no_grad():
        sae.steps_since_fired[:4] = 10
    n = common.resample_dead(sae, x, opt, generator(0))
    assert n == 4
    assert (opt.state[sae.W_dec]["exp_avg"][:4] == 0).all()
    assert (opt.state[sae.W_enc]["exp_avg_sq"][:, :4] == 0).all()
    assert (sae.steps_since_fired[:4] == 0).all()
    torch.testing.assert_close(sae.W_dec[:4].norm(dim=1), torch.ones(4))
