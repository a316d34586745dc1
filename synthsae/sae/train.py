"""Training any registered SAE on a `World` stream, with exact resume from checkpoints.

Data: step t trains on `world.sample(batch_size, seed=batch_seed(seed, t), ...)`, a batch drawn
with its own seed derived from (seed, t). A run is therefore a pure function of its arguments, and
a resumed run draws exactly the batches the uninterrupted run would have drawn: no stream state
needs to be captured.

One step: forward_train -> loss terms -> NaN/inf check -> backward -> remove the decoder-row-
parallel gradient (unit-norm variants) -> optional gradient clipping -> Adam step with the
scheduled learning rate -> `sae.after_step` (constraints: unit-norm rows, cone projection) ->
`sae.update` (fire counts, EMAs, thresholds) -> optional dead-latent resampling -> logging ->
checkpoint.

Checkpoints (`checkpoint_dir/checkpoint.safetensors`, written atomically, one file) hold the
model (parameters and buffers), Adam moments, the trainer's generator state, the history and the
not-yet-logged metrics window, with the SAE config, the trainer settings and a fingerprint of the
world in the metadata. `resume=True` on CPU ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from synthsae import io
from synthsae._malloc import reuse_freed_memory
from synthsae._rng import generator, resolve_device
from synthsae.errors import require
from synthsae.sae import common
from synthsae.sae.base import SAE

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "synthsae-train-checkpoint/1"
HISTORY_JSON = "history.json"
HISTORY_TENSORS = "history.safetensors"


def batch_seed(seed: int, step: int) -> int:
    """The seed of the batch of training step `step` of a run seeded `seed` (a 63-bit int)."""
    a, b = np.random.SeedSequence([seed, 1, step]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


def _derived_seed(seed: int, purpose: int) -> int:
    a, b = np.random.SeedSequence([seed, purpose]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


@dataclasses.dataclass
class TrainHistory:
    """What a training run recorded.

    Logged every `log_every` steps (values are means over the steps of that window):
      steps: number of steps done at each entry; samples: samples seen (steps * batch_size);
      terms: loss term name -> list (coefficients applied, as in `sae.loss`); l0: mean active
      latents per sample; explained_variance: 1 - sum (x - x_hat)^2 / sum (x - mean x)^2 per batch;
      dead: number of latents dead at the end of the window (see `SAEConfig.dead_after_steps`);
      lr: learning rate at the last step of the window.
    Final per-latent state: fire_count (m,) int64 samples on which each latent fired over the whole
    run; steps_since_fired (m,) int64.
    """

    variant: str
    batch_size: int
    steps: list[int] = dataclasses.field(default_factory=list)
    samples: list[int] = dataclasses.field(default_factory=list)
    terms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    l0: list[float] = dataclasses.field(default_factory=list)
    explained_variance: list[float] = dataclasses.field(default_factory=list)
    dead: list[int] = dataclasses.field(default_factory=list)
    lr: list[float] = dataclasses.field(default_factory=list)
    fire_count: torch.Tensor | None = None
    steps_since_fired: torch.Tensor | None = None

    @property
    def n_steps(self) -> int:
        return self.steps[-1] if self.steps else 0

    def scalars(self) -> dict[str, Any]:
        """Everything except the per-latent tensors, as JSON-able builtins."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("fire_count", "steps_since_fired")}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in (("fire_count", self.fire_count), ("steps_since_fired", self.steps_since_fired))
                if v is not None}

    def save(self, directory: str | Path) -> Path:
        """Write `history.json` and `history.safetensors` into `directory`."""
        directory = Path(directory)
        io.atomic_write_json(directory / HISTORY_JSON, self.scalars())
        io.save_tensors(directory / HISTORY_TENSORS, self.tensors())
        return directory

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], tensors: dict[str, torch.Tensor], source: str) -> "TrainHistory":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(scalars) - names
        if unknown or "variant" not in scalars or "batch_size" not in scalars:
            raise ValueError(f"{source} is not a synthsae training history (keys {sorted(scalars)})")
        return cls(**scalars, **{k: tensors.get(k) for k in ("fire_count", "steps_since_fired")})

    @classmethod
    def load(cls, directory: str | Path) -> "TrainHistory":
        directory = Path(directory)
        return cls.from_parts(io.read_json(directory / HISTORY_JSON), io.load_tensors(directory / HISTORY_TENSORS),
                              str(directory))


# ---- the trainer ------------------------------------------------------------------------------
def train(
    sae: SAE,
    world: Any,
    n_samples: int,
    batch_size: int,
    lr: float = 3e-4,
    seed: int = 0,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    progress: bool = True,
    *,
    lr_warmup_steps: int = 0,
    lr_decay_steps: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    grad_clip: float | None = None,
    init_b_dec: str | None = "geometric_median",
    resample_every: int | None = None,
    log_every: int | None = None,
) -> TrainHistory:
    """Train `sae` in place on batches from `world`; return its `TrainHistory`.

    sae: any registered SAE (`synthsae.sae.make`); moved to `device`.
    world: anything with `d` and `sample(n, seed=, device=, dtype=)` returning an object with
        `.x` (n, d) (a `synthsae.World`). Step t uses the batch seeded `batch_seed(seed, t)`.
    n_samples, batch_size: the run has n_samples // batch_size steps (n_samples >= batch_size).
    lr, lr_warmup_steps, lr_decay_steps, betas: Adam; linear warmup, linear decay to 0 over the
        last lr_decay_steps of the run (so changing n_samples on resume changes that tail).
    grad_clip: max global gradient norm (None = no clipping).
    init_b_dec: at step 0, set b_dec to the "mean" or "geometric_median" of batch_size samples
        (drawn with a seed of their own), to "zeros", or None to keep the SAE's own b_dec.
    resample_every: every this many steps, re-initialize dead latents (`common.resample_dead`).
    log_every: steps per history entry (None = n_steps // 500, at least 1).
    checkpoint_dir, checkpoint_every: write a checkpoint every checkpoint_every steps and at the
        end. An existing checkpoint there is an error unless resume=True; resume=True with no
        checkpoint starts from scratch. A checkpoint written for another SAE config, world or
        trainer setting, or a corrupted file, raises `ValueError`.
    A non-finite loss term stops training with `FloatingPointError` naming the step and term.
    On CPU with glibc, freed memory is kept for reuse while training runs and handed back when it
    returns (`synthsae._malloc.reuse_freed_memory`; opt out with SYNTHSAE_MALLOC=default).
    """
    _validate(sae, world, n_samples, batch_size, lr, seed, checkpoint_every, lr_warmup_steps, lr_decay_steps,
              betas, grad_clip, init_b_dec, resample_every, log_every)
    dev = resolve_device(device)
    n_steps = n_samples // batch_size
    log_every = log_every or max(1, n_steps // 500)
    settings = {
        "batch_size": batch_size, "lr": float(lr), "seed": seed, "lr_warmup_steps": lr_warmup_steps,
        "lr_decay_steps": lr_decay_steps, "betas": [float(b) for b in betas],
        "grad_clip": None if grad_clip is None else float(grad_clip), "init_b_dec": init_b_dec,
        "resample_every": resample_every, "log_every": log_every,
    }
    sae.to(dev)
    sae.train()
    params = [p for p in sae.parameters() if p.requires_grad]
    optimizer = _adam(params, lr, betas)
    trainer_gen = generator(_derived_seed(seed, 3), "cpu")
    history = TrainHistory(variant=sae.name, batch_size=batch_size)
    pending: list[torch.Tensor] = []
    start = 0
    fingerprint = _world_fingerprint(world)

    ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if resume and ckpt is None:
        raise ValueError("resume = True is invalid without a checkpoint_dir. Expected: checkpoint_dir=<folder>.")
    if ckpt is not None and ckpt.exists():
        if not resume:
            raise ValueError(
                f"{ckpt} already exists: pass resume=True to continue that run, or choose another checkpoint_dir."
            )
        start, history, pending = _load_checkpoint(ckpt, sae, optimizer, trainer_gen, settings, fingerprint, dev)
        require(start <= n_steps, "n_samples", n_samples,
                f"the checkpoint in {checkpoint_dir} is already at step {start} > n_samples // batch_size = {n_steps}",
                f"n_samples >= {start * batch_size}")
    elif init_b_dec is not None:
        x0 = world.sample(batch_size, seed=_derived_seed(seed, 2), device=dev, dtype=torch.float32).x
        with torch.no_grad():
            sae.b_dec.copy_(common.data_center(x0, init_b_dec))

    names: list[str] | None = list(history.terms) or None
    bar = _progress(progress, n_steps, start, sae.name)
    step = start
    # 16k-latent steps allocate 64 MiB blocks: keep freed memory for reuse (see synthsae._malloc)
    with reuse_freed_memory(dev):
        try:
            for step in range(start, n_steps):
                x = world.sample(batch_size, seed=batch_seed(seed, step), device=dev, dtype=torch.float32).x
                step_lr = lr * common.lr_factor(step, n_steps, lr_warmup_steps, lr_decay_steps)
                for group in optimizer.param_groups:
                    group["lr"] = step_lr
                out = sae.forward_train(x, step)
                _check_finite(out.terms, step)
                optimizer.zero_grad(set_to_none=True)
                out.terms["total"].backward()
                if sae.unit_norm_decoder and sae.W_dec.requires_grad:
                    common.remove_parallel_grad_(sae.W_dec)
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                sae.after_step(step)
                sae.update(out, step)
                if resample_every and (step + 1) % resample_every == 0:
                    if common.resample_dead(sae, x, optimizer, trainer_gen):
                        sae.after_step(step)

                if names is None:
                    names = [k for k in out.terms]
                    history.terms = {k: [] for k in names}
                pending.append(_metrics(x, out, names))
                if (step + 1) % log_every == 0:
                    _flush(history, pending, sae, step + 1, step_lr)
                    pending = []
                    if bar is not None:
                        bar.set_postfix(loss=f"{history.terms['total'][-1]:.4g}", l0=f"{history.l0[-1]:.1f}",
                                        dead=history.dead[-1])
                if ckpt is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == n_steps):
                    _save_checkpoint(ckpt, sae, optimizer, trainer_gen, settings, fingerprint, step + 1, history, pending)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    final = _copy_history(history)
    if pending:  # a partial window at the end is reported, but kept pending in the checkpoint
        _flush(final, pending, sae, n_steps, lr * common.lr_factor(n_steps - 1, n_steps, lr_warmup_steps,
                                                                      lr_decay_steps))
    final.fire_count = sae.fire_count.detach().cpu().clone()
    final.steps_since_fired = sae.steps_since_fired.detach().cpu().clone()
    return final


# ---- pieces ---------------------------------------------------------------------------------
def _validate(sae, world, n_samples, batch_size, lr, seed, checkpoint_every, lr_warmup_steps, lr_decay_steps,
              betas, grad_clip, init_b_dec, resample_every, log_every) -> None:
    require(isinstance(sae, SAE), "sae", type(sae).__name__, "not a synthsae SAE",
            "an SAE from synthsae.sae.make(name, d, m, ...)")
    require(hasattr(world, "sample") and hasattr(world, "d"), "world", type(world).__name__,
            "it has no `sample` method or `d` attribute", "a synthsae.World")
    require(world.d == sae.config.d, "world.d", world.d, f"the SAE expects inputs of dimension d = {sae.config.d}",
            f"a world with d = {sae.config.d}")
    for name, v in (("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, v, "must be a positive integer",
                "an int >= 1")
    require(isinstance(n_samples, int) and n_samples >= batch_size, "n_samples", n_samples,
            f"at least one batch of batch_size = {batch_size} is needed", f"an int >= {batch_size}")
    require(lr > 0, "lr", lr, "the learning rate must be positive", "a float > 0")
    require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
            "seeds are non-negative integers", "an int >= 0")
    for name, v in (("lr_warmup_steps", lr_warmup_steps), ("lr_decay_steps", lr_decay_steps)):
        require(isinstance(v, int) and v >= 0, name, v, "a step count cannot be negative", "an int >= 0")
    require(len(betas) == 2 and all(0 <= b < 1 for b in betas), "betas", betas, "Adam betas lie in [0, 1)",
            "two floats in [0, 1)")
    require(grad_clip is None or grad_clip > 0, "grad_clip", grad_clip, "a norm bound must be positive",
            "a float > 0 or None")
    require(init_b_dec in (None, "mean", "geometric_median", "zeros"), "init_b_dec", init_b_dec,
            "unknown initialization", "'mean', 'geometric_median', 'zeros' or None")
    for name, v in (("resample_every", resample_every), ("log_every", log_every)):
        require(v is None or (isinstance(v, int) and v >= 1), name, v, "must be a positive integer",
                "an int >= 1 or None")


def _adam(params, lr, betas) -> torch.optim.Adam:
    """Adam; the fused kernel (one pass over each tensor) where this torch build has it."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


def _progress(progress: bool, total: int, initial: int, name: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="step")


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    if math.isfinite(float(terms["total"].detach())):  # a Python float: cheaper than a 0-d isfinite tensor
        return
    for name, value in terms.items():
        if not bool(torch.isfinite(value)):
            raise FloatingPointError(
                f"training stopped at step {step}: loss term {name!r} = {float(value.detach())} is not finite. "
                "Try a lower lr, grad_clip, or smaller coefficients."
            )


@torch.no_grad()
def _metrics(x: torch.Tensor, out, names: list[str]) -> torch.Tensor:
    """One row: the loss terms, then L0, then explained variance (stays on the device)."""
    terms = [out.terms[k].detach().reshape(()) for k in names]
    l0 = out.l0()
    # sums of squares as dot products of the flattened residuals: one op each instead of pow + sum
    r = (x - out.x_hat).reshape(-1)
    c = (x - x.mean(dim=0)).reshape(-1)
    ev = 1.0 - torch.dot(r, r) / torch.dot(c, c).clamp_min(1e-30)
    return torch.stack(terms + [l0, ev]).to(torch.float64)


def _flush(history: TrainHistory, pending: list[torch.Tensor], sae: SAE, steps_done: int, lr: float) -> None:
    mean = torch.stack(pending).mean(dim=0).tolist()
    names = list(history.terms)
    for k, v in zip(names, mean):
        history.terms[k].append(v)
    history.l0.append(mean[len(names)])
    history.explained_variance.append(mean[len(names) + 1])
    history.dead.append(int(sae.dead_mask().sum()))
    history.steps.append(steps_done)
    history.samples.append(steps_done * history.batch_size)
    history.lr.append(float(lr))


def _copy_history(h: TrainHistory) -> TrainHistory:
    return TrainHistory(**json.loads(json.dumps(h.scalars())))


def _world_fingerprint(world: Any) -> dict[str, Any]:
    fp: dict[str, Any] = {"d": int(world.d), "m": int(getattr(world, "m", -1))}
    D = getattr(world, "dictionary", None)
    if isinstance(D, torch.Tensor):
        fp["dictionary_sha256"] = hashlib.sha256(D.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    return fp


def _save_checkpoint(path: Path, sae: SAE, optimizer, gen: torch.Generator, settings, fingerprint, step: int,
                     history: TrainHistory, pending: list[torch.Tensor]) -> None:
    tensors = {f"model/{k}": v for k, v in sae.state_dict().items()}
    params = optimizer.param_groups[0]["params"]
    for i, p in enumerate(params):
        for key, v in optimizer.state.get(p, {}).items():
            tensors[f"optim/{i}/{key}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    tensors["trainer/generator"] = gen.get_state()
    if pending:
        tensors["trainer/pending"] = torch.stack(pending)
    state = {
        "step": step, "variant": sae.name, "sae_config": sae.config.to_dict(), "settings": settings,
        "world": fingerprint, "history": history.scalars(), "n_params": len(params),
        # per-parameter state keys, so that an incomplete checkpoint is detected on load
        "optim_keys": [list(optimizer.state.get(p, {})) for p in params],
    }
    io.save_tensors(path, tensors, metadata={"format": CHECKPOINT_FORMAT, "state": json.dumps(state)})


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors = io.load_tensors(path)  # clear ValueError if missing / truncated / not safetensors
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise KeyError("format")
        state = json.loads(meta["state"])
    except Exception:
        raise ValueError(
            f"{path} is not a synthsae training checkpoint (missing or unreadable metadata); "
            "it may be corrupted or written by another program"
        ) from None
    return state, tensors


def _like(value: torch.Tensor, param: torch.Tensor, key: str) -> torch.Tensor:
    """A fresh copy of an optimizer state tensor; moments get the parameter's memory layout
    (the fused Adam kernel walks a parameter and its moments as flat memory)."""
    if key == "step" or value.shape != param.shape:
        return value.clone()
    return torch.empty_like(param, dtype=value.dtype).copy_(value)


def _load_checkpoint(path: Path, sae: SAE, optimizer, gen: torch.Generator, settings, fingerprint, dev):
    state, tensors = _read_checkpoint(path)
    if state.get("variant") != sae.name or state.get("sae_config") != sae.config.to_dict():
        raise ValueError(
            f"{path} was written for SAE {state.get('variant')!r} with config {state.get('sae_config')}, "
            f"but this SAE is {sae.name!r} with config {sae.config.to_dict()}. "
            "Resume with the same SAE config, or use another checkpoint_dir."
        )
    for key, value in settings.items():
        if state["settings"].get(key) != value:
            raise ValueError(
                f"{path} was written with {key} = {state['settings'].get(key)!r}, but this call has "
                f"{key} = {value!r}. Resume with the same training settings (only n_samples may change)."
            )
    if state.get("world") != fingerprint:
        raise ValueError(f"{path} was written for another world ({state.get('world')}), not this one ({fingerprint}).")
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    sae.load_state(model, source=str(path))
    params = optimizer.param_groups[0]["params"]
    if state.get("n_params") != len(params):
        raise ValueError(f"{path}: optimizer state for {state.get('n_params')} parameters, this SAE has {len(params)}")
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for i, keys in enumerate(state["optim_keys"]):
            if keys:
                opt_state[i] = {key: _like(tensors[f"optim/{i}/{key}"], params[i], key) for key in keys}
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: optimizer state is incomplete ({err}); the checkpoint may be corrupted") from None
    sd = optimizer.state_dict()
    sd["state"] = opt_state
    try:
        optimizer.load_state_dict(sd)
    except Exception as err:
        raise ValueError(f"{path}: optimizer state does not fit this SAE ({err})") from None
    gen.set_state(tensors["trainer/generator"])
    pending_t = tensors.get("trainer/pending")
    pending = [row.to(dev) for row in pending_t] if pending_t is not None else []
    history = TrainHistory.from_parts(state["history"], {}, str(path))
    return int(state["step"]), history, pending
