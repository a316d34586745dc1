"""Training checks (issue 18) and the one training entry point (issue 16): finite parameters and
buffers, divergence, non-finite data, wrong argument types, the settings object, extra_loss."""

from __future__ import annotations

import pytest
import torch

from synthsae.experiments.config import ExperimentConfig
from synthsae.experiments.config import TrainSettings as ConfigTrainSettings
from synthsae.sae import TrainSettings, make, train
from synthsae.sae.train import CHECKPOINT_FILE
from synthsae.world import World


@pytest.fixture(scope="module")
def toy():
    return World.preset("toy")


# ---- finiteness ---------------------------------------------------------------------------------
def test_jumprelu_nan_thresholds_with_a_finite_loss_are_caught(toy):
    """The audit's case: a huge lr leaves NaN thresholds while every loss term stays finite."""
    sae = make("jumprelu", toy.d, 64)
    with pytest.raises(FloatingPointError, match=r"parameter 'log_threshold' .* steps 1-100 .*while the loss was finite"):
        train(sae, toy, 64 * 200, 64, lr=100.0, progress=False, divergence_ev=None)


def test_a_nan_buffer_names_the_buffer_and_the_step(small_world):
    sae = make("aen", 16, 32)
    orig = sae.after_step

    def poisoned(step):
        orig(step)
        if step == 6:
            sae.ema[3] = float("nan")

    sae.after_step = poisoned
    with pytest.raises(FloatingPointError, match=r"buffer 'ema' of the aen SAE has 1 non-finite values .*steps 5-8"):
        train(sae, small_world, 64 * 20, 64, progress=False, check_every=4)


def test_a_broken_state_is_not_checkpointed(small_world, tmp_path):
    sae = make("relu_l1", 16, 32)
    orig = sae.after_step

    def poisoned(step):
        orig(step)
        if step == 9:  # steps done = 10: a checkpoint step, checked before it is written
            with torch.no_grad():
                sae.b_enc[0] = float("inf")

    sae.after_step = poisoned
    with pytest.raises(FloatingPointError, match=r"parameter 'b_enc' .* steps 6-10"):
        train(sae, small_world, 64 * 20, 64, progress=False, checkpoint_dir=tmp_path, checkpoint_every=5,
              check_every=1000)
    from safetensors import safe_open
    import json

    with safe_open(str(tmp_path / CHECKPOINT_FILE), framework="pt") as fh:
        assert json.loads(fh.metadata()["state"])["step"] == 5  # the good one; step 10's state was refused


# ---- divergence ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, hp", [("topk", {"k": 4}), ("relu_l1", {})])
def test_divergence_without_nan_is_an_error_naming_the_step(toy, name, hp):
    sae = make(name, toy.d, 256, **hp)
    with pytest.raises(FloatingPointError, match=r"training diverged at step 50: .*explained variance stayed below -1"):
        train(sae, toy, 64 * 300, 64, lr=100.0, progress=False, log_every=10)


def test_too_short_to_call_diverged_warns_and_the_check_can_be_disabled(toy):
    with pytest.warns(RuntimeWarning, match="ends its 30 training steps at EV .* reconstructs worse than the mean"):
        train(make("topk", toy.d, 256, k=4), toy, 64 * 30, 64, lr=100.0, progress=False)
    h = train(make("topk", toy.d, 256, k=4), toy, 64 * 120, 64, lr=100.0, progress=False, divergence_ev=None)
    assert h.explained_variance[-1] < -1e3


def test_a_slow_start_of_a_wide_sae_is_not_a_divergence(toy):
    """relu_l1 with m = 32 d starts at EV ~ -255 and climbs slowly at lr 1e-3: no error."""
    sae = make("relu_l1", toy.d, 32 * toy.d)
    h = train(sae, toy, 64 * 150, 64, lr=1e-3, progress=False, log_every=5, probe_evals=0)
    assert h.initial_ev < -100 and h.explained_variance[-1] > h.initial_ev


# ---- the data ----------------------------------------------------------------------------------
def test_non_finite_world_data_says_the_data_is_non_finite(small_world):
    orig = small_world.sample

    def sample(n, seed=0, device=None, dtype=torch.float32):
        batch = orig(n, seed=seed, device=device, dtype=dtype)
        if small_world.calls == 6:  # init batch, probe set, then steps 0, 1, 2, 3 <- this one
            batch.x[2, 5] = float("nan")
        return batch

    small_world.sample = sample
    with pytest.raises(FloatingPointError, match=r"step 3: the training batch .* 1 non-finite .* the data is non-finite"):
        train(make("relu_l1", 16, 32), small_world, 64 * 10, 64, progress=False)


def test_a_nan_world_fails_before_training(make_world):
    world = make_world()
    world.dictionary[4] = float("nan")
    with pytest.raises(FloatingPointError, match="the data is non-finite"):
        train(make("topk", 16, 32, k=3), world, 64 * 10, 64, progress=False)


# ---- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    (dict(n_samples=True, batch_size=64), "n_samples"),
    (dict(n_samples=640.0, batch_size=64), "n_samples"),
    (dict(n_samples=640, batch_size=64, lr="1e-3"), "lr"),
    (dict(n_samples=640, batch_size=64, lr=float("nan")), "lr"),
    (dict(n_samples=640, batch_size=True), "batch_size"),
    (dict(n_samples=640, batch_size=64, seed=1.5), "seed"),
    (dict(n_samples=640, batch_size=64, betas=(0.9, "x")), "betas"),
    (dict(n_samples=640, batch_size=64, grad_clip=True), "grad_clip"),
    (dict(n_samples=640, batch_size=64, target_l0="25"), "target_l0"),
    (dict(n_samples=640, batch_size=64, l0_freeze=1.0), "l0_freeze"),
    (dict(n_samples=640, batch_size=64, probe_evals=-1), "probe_evals"),
    (dict(n_samples=640, batch_size=64, divergence_ev=0.5), "divergence_ev"),
    (dict(n_samples=640, batch_size=64, init_b_dec=3), "init_b_dec"),
])
def test_wrong_types_and_values_are_named(small_world, kwargs, field):
    with pytest.raises(ValueError, match=rf"train\.{field}(\[\d\])? = .* is invalid"):
        train(make("topk", 16, 32, k=3), small_world, progress=False, **kwargs)


def test_unknown_keyword_suggests_the_right_one(small_world):
    with pytest.raises(ValueError, match="Did you mean 'batch_size'"):
        train(make("topk", 16, 32, k=3), small_world, n_samples=640, batchsize=64, progress=False)


def test_checkpoint_dir_that_is_a_file_is_refused(small_world, tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match="checkpoint_dir = .* existing file, not a folder"):
        train(make("topk", 16, 32, k=3), small_world, 640, 64, checkpoint_dir=path, progress=False)
    assert path.read_text() == "a,b\n"


def test_positional_misuse_names_the_new_call(small_world):
    settings = TrainSettings(n_samples=640, batch_size=64)
    with pytest.raises(ValueError, match=r"TrainSettings\(n_samples=\.\.\., batch_size=\.\.\.\)"):
        train(make("topk", 16, 32, k=3), small_world, "640", progress=False)
    with pytest.raises(ValueError, match="already holds batch_size"):
        train(make("topk", 16, 32, k=3), small_world, settings, 64, progress=False)
    with pytest.raises(ValueError, match="progress"):
        train(make("topk", 16, 32, k=3), small_world, settings, progress="no")


# ---- one settings object -------------------------------------------------------------------------
def test_settings_object_keywords_and_positional_forms_train_identically(small_world):
    settings = TrainSettings(n_samples=64 * 6, batch_size=64, lr=3e-3, seed=2)
    runs = [
        lambda sae: train(sae, small_world, settings, progress=False),
        lambda sae: train(sae, small_world, n_samples=64 * 6, batch_size=64, lr=3e-3, seed=2, progress=False),
        lambda sae: train(sae, small_world, 64 * 6, 64, lr=3e-3, seed=2, progress=False),
        lambda sae: train(sae, small_world, settings.replace(lr=1.0), lr=3e-3, progress=False),
    ]
    states = []
    for run in runs:
        sae = make("relu_l1", 16, 32)
        run(sae)
        states.append(sae.state_dict())
    for other in states[1:]:
        assert all(torch.equal(states[0][k], other[k]) for k in states[0])


def test_experiment_configs_use_the_trainer_settings():
    assert ConfigTrainSettings is TrainSettings
    c = ExperimentConfig.from_toml('seed = 3\n[train]\nn_samples = 4096\ntarget_l0 = 25\nl0_freeze = 0.2\n'
                                 '[[sae]]\nvariant = "relu_l1"\n')
    assert c.train.target_l0 == 25.0 and c.train.l0_freeze == 0.2
    assert c.train.train_kwargs(c.seed)["seed"] == 3
    assert ExperimentConfig.from_toml(c.to_toml()) == c
    with pytest.raises(ValueError, match="train.lr"):
        ExperimentConfig.from_toml('[train]\nlr = "fast"\n[[sae]]\nvariant = "topk"\nk = 4\n')


# ---- extra_loss and step_offset ----------------------------------------------------------------
def test_extra_loss_terms_are_added_recorded_and_checked(small_world):
    def hook(x, out, step):
        return {"pull": 0.1 * out.x_hat.pow(2).mean()}

    a = make("relu_l1", 16, 32)
    h = train(a, small_world, 64 * 6, 64, log_every=1, extra_loss=hook, progress=False)
    assert set(h.terms) == {"mse", "l1", "total", "pull"}
    assert all(abs(t - (m + l + p)) < 1e-5 for t, m, l, p in zip(h.terms["total"], h.terms["mse"], h.terms["l1"],
                                                                 h.terms["pull"]))
    b = make("relu_l1", 16, 32)
    train(b, small_world, 64 * 6, 64, progress=False)
    assert not torch.equal(a.W_dec, b.W_dec)  # the hook's term was trained on

    with pytest.raises(FloatingPointError, match=r"step 0: loss term 'pull'"):
        train(make("relu_l1", 16, 32), small_world, 640, 64, progress=False,
              extra_loss=lambda x, out, step: {"pull": torch.tensor(float("nan"))})
    with pytest.raises(ValueError, match="already loss terms"):
        train(make("relu_l1", 16, 32), small_world, 640, 64, progress=False,
              extra_loss=lambda x, out, step: {"mse": out.terms["mse"]})
    with pytest.raises(ValueError, match="named scalar tensors"):
        train(make("relu_l1", 16, 32), small_world, 640, 64, progress=False, extra_loss=lambda x, out, step: 1.0)


def test_step_offset_shifts_the_sae_schedule_not_the_batches(small_world):
    sae = make("relu_l1", 16, 32)
    seen = []
    orig = sae.forward_train

    def spy(x, step):
        seen.append(step)
        return orig(x, step)

    sae.forward_train = spy
    train(sae, small_world, 64 * 3, 64, step_offset=100, progress=False)
    assert seen == [100, 101, 102]
