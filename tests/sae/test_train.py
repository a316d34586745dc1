"""The trainer: history, exact resume, checkpoint errors, NaN detection, argument validation."""

from __future__ import annotations

import json

import pytest
import torch

from synthsae.sae import TrainHistory, batch_seed, make, train
from synthsae.sae.train import CHECKPOINT_FILE
from synthsae.world import World


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_history_contents(small_world):
    sae = make("topk", 16, 32, k=3, dead_after_steps=5)
    h = train(sae, small_world, 64 * 25, 64, lr=3e-3, log_every=10, progress=False)
    assert h.steps == [10, 20, 25] and h.samples == [640, 1280, 1600]
    assert set(h.terms) == {"mse", "aux", "total"}
    assert all(len(v) == 3 for v in h.terms.values())
    assert len(h.l0) == len(h.explained_variance) == len(h.dead) == len(h.lr) == 3
    assert all(abs(v - 3.0) < 1e-9 for v in h.l0)  # exactly k with positive pre-activations here
    assert h.explained_variance[-1] > h.explained_variance[0]
    assert int(h.fire_count.sum()) == 25 * 64 * 3
    assert h.fire_count.shape == h.steps_since_fired.shape == (32,)
    assert h.dead[-1] == int((h.steps_since_fired >= 5).sum())


def test_history_save_load(small_world, tmp_path):
    h = train(make("relu_l1", 16, 32), small_world, 64 * 8, 64, progress=False)
    h.save(tmp_path)
    back = TrainHistory.load(tmp_path)
    assert back.scalars() == h.scalars()
    assert torch.equal(back.fire_count, h.fire_count) and torch.equal(back.steps_since_fired, h.steps_since_fired)


def test_batches_are_drawn_with_per_step_seeds(small_world):
    seen = []
    orig = small_world.sample

    def spy(n, seed=0, device=None, dtype=torch.float32):
        seen.append(seed)
        return orig(n, seed=seed, device=device, dtype=dtype)

    small_world.sample = spy
    train(make("topk", 16, 32, k=3), small_world, 64 * 4, 64, seed=7, init_b_dec=None, progress=False)
    probe, steps = seen[0], seen[1:]  # the held-out convergence probe set is drawn first, then one batch a step
    assert steps == [batch_seed(7, t) for t in range(4)]
    assert len(set(seen)) == 5 and batch_seed(7, 0) != batch_seed(8, 0)


@pytest.mark.parametrize("name", ["topk", "aen", "batchtopk", "jumprelu"])
def test_resume_is_bit_identical(name, make_world, tmp_path):
    hp = {"k": 3} if "topk" in name else {}
    if name == "aen":
        hp.update(warmup_steps=10, ramp_steps=6)
    kw = dict(batch_size=32, lr=3e-3, seed=4, progress=False, log_every=4, checkpoint_every=5, resample_every=7)
    world = make_world(noise=0.01)
    full = make(name, 16, 32, dead_after_steps=3, **hp)
    h_full = train(full, world, 32 * 30, checkpoint_dir=tmp_path / "a", **kw)
    part = make(name, 16, 32, dead_after_steps=3, **hp)
    train(part, world, 32 * 13, checkpoint_dir=tmp_path / "b", **kw)  # "killed" after step 13
    resumed = make(name, 16, 32, dead_after_steps=3, **hp)  # a fresh process: new, untrained SAE
    h_res = train(resumed, world, 32 * 30, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    states_equal(full, resumed)
    assert h_full.scalars() == h_res.scalars()
    assert torch.equal(h_full.fire_count, h_res.fire_count)


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_with_lr_schedule(make_world, tmp_path):
    kw = dict(batch_size=32, lr=1e-2, seed=1, progress=False, checkpoint_every=4, lr_warmup_steps=5,
              lr_decay_steps=10, grad_clip=0.5)
    full = make("relu_l1", 16, 32)
    train(full, make_world(), 32 * 20, checkpoint_dir=tmp_path / "a", **kw)

    crashing = make_world()
    orig = crashing.sample

    def sample(n, seed=0, device=None, dtype=torch.float32):
        if crashing.calls >= 13:  # crash while drawing step 11's batch (after the init batch and the probe set)
            raise Crash("killed")
        return orig(n, seed=seed, device=device, dtype=dtype)

    crashing.sample = sample
    with pytest.raises(Crash):
        train(make("relu_l1", 16, 32), crashing, 32 * 20, checkpoint_dir=tmp_path / "b", **kw)
    state = json.loads(_metadata(tmp_path / "b" / CHECKPOINT_FILE)["state"])
    assert state["step"] == 8
    resumed = make("relu_l1", 16, 32)
    train(resumed, make_world(), 32 * 20, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    states_equal(full, resumed)


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


def test_existing_checkpoint_needs_resume(small_world, tmp_path):
    train(make("topk", 16, 32, k=3), small_world, 64 * 3, 64, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="resume=True"):
        train(make("topk", 16, 32, k=3), small_world, 64 * 3, 64, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(make("topk", 16, 32, k=3), small_world, 64 * 3, 64, resume=True, progress=False)


def test_mismatched_checkpoint_is_refused(make_world, tmp_path):
    world = make_world()
    train(make("topk", 16, 32, k=3), world, 64 * 3, 64, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="config"):
        train(make("topk", 16, 32, k=4), world, 64 * 6, 64, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="'relu_l1'"):
        train(make("relu_l1", 16, 32), world, 64 * 6, 64, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(make("topk", 16, 32, k=3), world, 64 * 6, 32, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(make("topk", 16, 32, k=3), world, 64 * 6, 64, lr=1.0, checkpoint_dir=tmp_path, resume=True,
              progress=False)
    with pytest.raises(ValueError, match="another world"):
        train(make("topk", 16, 32, k=3), make_world(seed=5), 64 * 6, 64, checkpoint_dir=tmp_path, resume=True,
              progress=False)
    with pytest.raises(ValueError, match="already at step 3"):
        train(make("topk", 16, 32, k=3), world, 64 * 2, 64, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_corrupted_checkpoint_is_refused(small_world, tmp_path):
    train(make("topk", 16, 32, k=3), small_world, 64 * 3, 64, checkpoint_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        train(make("topk", 16, 32, k=3), small_world, 64 * 6, 64, checkpoint_dir=tmp_path, resume=True,
              progress=False)
    from synthsae import io

    io.save_tensors(path, {"a": torch.zeros(2)})  # a valid safetensors file, but not a checkpoint
    with pytest.raises(ValueError, match="not a synthsae training checkpoint"):
        train(make("topk", 16, 32, k=3), small_world, 64 * 6, 64, checkpoint_dir=tmp_path, resume=True,
              progress=False)


def test_nan_stops_training_naming_step_and_term(small_world):
    sae = make("relu_l1", 16, 32)
    orig = sae.forward_train

    def poisoned(x, step):
        out = orig(x, step)
        if step == 3:
            out.terms["l1"] = out.terms["l1"] * float("nan")
            out.terms["total"] = out.terms["mse"] + out.terms["l1"]
        return out

    sae.forward_train = poisoned
    with pytest.raises(FloatingPointError, match=r"step 3: loss term 'l1'"):
        train(sae, small_world, 64 * 6, 64, progress=False)


def test_diverging_lr_is_caught(small_world):
    sae = make("relu_l1", 16, 32, decoder_norm_penalty=True)
    with pytest.raises(FloatingPointError, match="not finite"):
        train(sae, small_world, 64 * 200, 64, lr=1e12, progress=False)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_samples=10, batch_size=64), "n_samples"),
    (dict(n_samples=640, batch_size=0), "batch_size"),
    (dict(n_samples=640, batch_size=64, lr=-1.0), "lr"),
    (dict(n_samples=640, batch_size=64, seed=-3), "seed"),
    (dict(n_samples=640, batch_size=64, grad_clip=0.0), "grad_clip"),
    (dict(n_samples=640, batch_size=64, init_b_dec="median"), "init_b_dec"),
    (dict(n_samples=640, batch_size=64, lr_warmup_steps=-1), "lr_warmup_steps"),
])
def test_invalid_training_arguments(small_world, kwargs, field):
    with pytest.raises(ValueError, match=field):
        train(make("topk", 16, 32, k=3), small_world, progress=False, **kwargs)


def test_world_dimension_mismatch(make_world):
    with pytest.raises(ValueError, match="world.d"):
        train(make("topk", 8, 32, k=3), make_world(d=16), 640, 64, progress=False)


def test_progress_bar_runs(small_world, capsys):
    train(make("topk", 16, 32, k=3), small_world, 64 * 3, 64, progress=True, log_every=1)
    assert "train topk" in capsys.readouterr().err


def test_b_dec_initialization(make_world):
    world = make_world()
    x0_mean = None
    for method in ("mean", "geometric_median", "zeros"):
        sae = make("topk", 16, 32, k=3)
        train(sae, world, 64, 64, lr=1e-12, init_b_dec=method, progress=False)
        if method == "zeros":
            assert sae.b_dec.abs().max() < 1e-6
        elif method == "mean":
            x0_mean = sae.b_dec.detach().clone()
            assert x0_mean.norm() > 0.1
        else:
            assert not torch.allclose(sae.b_dec.detach(), x0_mean)


@pytest.mark.parametrize("name", ["topk", "relu_l1"])
def test_trains_on_the_toy_preset(name, tmp_path):
    """The real World contract: sample(n, seed=, device=, dtype=).x, d; resume still exact."""
    world = World.preset("toy")
    hp = {"k": 4} if name == "topk" else {}
    m = 2 * world.m
    kw = dict(batch_size=64, lr=3e-3, seed=0, progress=False, checkpoint_every=5)
    full = make(name, world.d, m, **hp)
    h = train(full, world, 64 * 20, **kw)
    assert h.explained_variance[-1] > h.explained_variance[0]
    part = make(name, world.d, m, **hp)
    train(part, world, 64 * 8, checkpoint_dir=tmp_path, **kw)
    resumed = make(name, world.d, m, **hp)
    train(resumed, world, 64 * 20, checkpoint_dir=tmp_path, resume=True, **kw)
    states_equal(full, resumed)
