"""Training any registered SAE on a `World` stream, with exact resume from checkpoints.

One entry point, one settings object:

    train(sae, world, TrainSettings(n_samples=..., batch_size=..., lr=...), device=..., checkpoint_dir=...)
    train(sae, world, n_samples=..., batch_size=..., lr=...)      # the same, settings as keywords
    train(sae, world, settings, lr=1e-3)                          # a settings object with changes

`TrainSettings` is the frozen, validated object the Python API, experiment configs (`[train]`),
recipes and sweeps share. What does not change the numbers (device, checkpoint folder, resume,
progress bar) and the `extra_loss` hook are arguments of `train` itself.

Data: step t trains on `world.sample(batch_size, seed=batch_seed(seed, t), ...)`, a batch drawn
with its own seed derived from (seed, t). A run is therefore a pure function of its arguments, and
a resumed run draws exactly the batches the uninterrupted run would have drawn: no stream state
needs to be captured.

One step: forward_train -> loss terms (sparsity terms scaled by the target-L0 controller; plus
`extra_loss` terms) -> NaN/inf check -> backward -> remove the decoder-row-parallel gradient
(unit-norm variants) -> optional gradient clipping -> Adam step with the scheduled learning rate
-> `sae.after_step` (constraints) -> `sae.update` (fire counts, EMAs, thresholds) -> L0 controller
-> optional dead-latent resampling -> probe evaluation (convergence) -> logging -> finiteness of
every parameter and buffer (every `check_every` steps, before each checkpoint and at the end) ->
checkpoint.

Checks (each stops training with a `FloatingPointError` naming the step):
* a non-finite loss term names the term; when the batch itself is non-finite the error says the
  data is non-finite (a broken world), not the optimization;
* a non-finite parameter or buffer (e.g. JumpReLU thresholds blown up by a huge lr while the
  loss stays finite) names the tensor and the step window in which it went bad;
* divergence: every logged window over the last twentieth of the steps so far (at least 50
  steps) has EV below `divergence_ev` (default -1: a squared error more than twice the data's
  variance) and a squared error more than 10x the best one before (the initial batch's
  included). An error, not a warning: every number computed from such an SAE is meaningless,
  continuing wastes the budget, and a warning in a long sweep log goes unseen (the audit found
  exactly that). Both conditions matter: a wide SAE's random initialization legitimately starts
  far below EV 0 (-255 for relu_l1 with m = 32 d) and climbs slowly at a small lr, and single
  batches can spike and recover (measured on the toy and hierarchy presets: legitimate runs grew
  their error at most 2.3x over their best, divergent ones 100x to 1e13x). A run that ends below
  the threshold without meeting the rule gets a `RuntimeWarning`.

Checkpoints (`checkpoint_dir/checkpoint.safetensors`, written atomically, one file) hold the
model (parameters and buffers), Adam moments, the trainer's generator state, the target-L0
controller, the history and the not-yet-logged metrics window, with the SAE config, the trainer
settings and a fingerprint of the world in the metadata. `resume=True` on CPU ends bit-identical
to an uninterrupted run.

Convergence (`synthsae.sae.convergence`): every run evaluates a fixed held-out probe set at
`probe_evals` points and records EV, recovery against the world's dictionary and L0, and from them
`TrainHistory.convergence` (converged / collapsed, `TrainHistory.summary()`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from synthsae import io
from synthsae._rng import generator, resolve_device
from synthsae.config import Config
from synthsae.errors import ConfigError, fail, require, unknown_name
from synthsae.sae import common
from synthsae.sae.base import SAE
from synthsae.sae.convergence import Convergence, Probe, auto_probe_samples, plateau_end, probe_points
from synthsae.sae.l0_control import L0Controller, check_targetable

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "synthsae-train-checkpoint/2"
HISTORY_JSON = "history.json"
HISTORY_TENSORS = "history.safetensors"

# `init_b_dec = "keep"` keeps the SAE's own b_dec (TOML has no null; train(init_b_dec=None) means the same)
INIT_B_DEC = ("geometric_median", "mean", "zeros", "keep")
DIVERGENCE_STEPS = 50  # divergence must persist at least this many steps (a spike may recover)
DIVERGENCE_GROWTH = 10.0  # ... with a squared error this many times its best so far


def batch_seed(seed: int, step: int) -> int:
    """The seed of the batch of training step `step` of a run seeded `seed` (a 63-bit int)."""
    a, b = np.random.SeedSequence([seed, 1, step]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


def _derived_seed(seed: int, purpose: int) -> int:
    a, b = np.random.SeedSequence([seed, purpose]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


# ---- settings -----------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class TrainSettings(Config):
    """Everything that determines a training run's numbers (validated on construction).

    n_samples, batch_size: the run has n_samples // batch_size steps (n_samples >= batch_size).
    lr, betas: Adam. lr_warmup_steps, lr_decay_steps: linear warmup; linear decay to 0 over the
        last lr_decay_steps (so changing n_samples on resume changes that tail).
    seed: seed of the training batches and the trainer's own randomness; None = 0 in `train`, the
        experiment's root seed in an experiment config.
    checkpoint_every: steps between checkpoints (when `train` has a checkpoint_dir).
    grad_clip: max global gradient norm (None = no clipping).
    init_b_dec: at step 0, set b_dec to the "mean" or "geometric_median" of batch_size samples
        (drawn with a seed of their own), to "zeros", or "keep" the SAE's own b_dec.
    resample_every: every this many steps, re-initialize dead latents (`common.resample_dead`).
    log_every: steps per history entry (None = n_steps // 500, at least 1).
    step_offset: the SAE's schedules (sparsity warmup, AEN weights) see step_offset + t at step t;
        for continuing to train an SAE that already did step_offset steps (fine-tunes).
    target_l0: train to this L0 by adapting the weight of the variant's sparsity terms
        (`synthsae.sae.l0_control`); only for variants with a sparsity coefficient.
    l0_freeze: fraction of the last steps at which that weight is frozen (a fixed objective).
    check_every: steps between finiteness checks of every parameter and buffer.
    divergence_ev: stop when the EV stays below this while the error grew tenfold (None = never
        check); see the module docstring.
    probe_samples: size of the held-out convergence probe set (None = n_samples / 20 clipped to
        [512, 4096]). probe_evals: evaluations of it, evenly spaced, the last at the end, plus the
        start of the lr decay and half of it (0 = no convergence diagnostic). converged_tol: the
        convergence criterion, the largest change of probe EV and recovery over the last doubling of
        training before the lr decay (`synthsae.sae.convergence`).
    """

    error_label = "train"  # errors name fields as in the [train] table: train.lr = ...

    n_samples: int = 500_000
    batch_size: int = 1024
    lr: float = 3e-4
    seed: int | None = None
    checkpoint_every: int = 1000
    lr_warmup_steps: int = 0
    lr_decay_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None
    init_b_dec: str = "geometric_median"
    resample_every: int | None = None
    log_every: int | None = None
    step_offset: int = 0
    target_l0: float | None = None
    l0_freeze: float = 0.2
    check_every: int = 100
    divergence_ev: float | None = -1.0
    probe_samples: int | None = None
    probe_evals: int = 10
    converged_tol: float = 0.01

    def validate(self) -> None:
        p = "train"

        def integer(name: str, minimum: int, optional: bool = False, hint: str = "") -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            require(_is_int(v), f"{p}.{name}", v, "expected an integer (not a bool, float or string)",
                    f"an int >= {minimum}{hint}")
            require(v >= minimum, f"{p}.{name}", v, f"must be at least {minimum}", f"an int >= {minimum}{hint}")
            object.__setattr__(self, name, int(v))

        def real(name: str, ok: Callable[[float], bool], expected: str, optional: bool = False) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            require(_is_real(v), f"{p}.{name}", v, "expected a finite number (not a bool or string)", expected)
            require(ok(v), f"{p}.{name}", v, "out of range", expected)
            object.__setattr__(self, name, float(v))

        integer("batch_size", 1)
        integer("checkpoint_every", 1)
        require(_is_int(self.n_samples), f"{p}.n_samples", self.n_samples,
                "expected an integer (not a bool, float or string)", f"an int >= batch_size = {self.batch_size}")
        require(self.n_samples >= self.batch_size, f"{p}.n_samples", self.n_samples,
                f"at least one batch of batch_size = {self.batch_size} is needed", f"an int >= {self.batch_size}")
        object.__setattr__(self, "n_samples", int(self.n_samples))
        real("lr", lambda v: v > 0, "a float > 0, e.g. 3e-4")
        integer("seed", 0, optional=True, hint=" (or None)")
        integer("lr_warmup_steps", 0)
        integer("lr_decay_steps", 0)
        betas = self.betas
        require(isinstance(betas, (tuple, list)) and len(betas) == 2 and all(_is_real(b) and 0 <= b < 1 for b in betas),
                f"{p}.betas", betas, "Adam betas are two numbers in [0, 1)", "two floats in [0, 1), e.g. (0.9, 0.999)")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        real("grad_clip", lambda v: v > 0, "a float > 0 (or None: no clipping)", optional=True)
        require(isinstance(self.init_b_dec, str) and self.init_b_dec in INIT_B_DEC, f"{p}.init_b_dec", self.init_b_dec,
                "unknown initialization", " or ".join(map(repr, INIT_B_DEC)))
        integer("resample_every", 1, optional=True, hint=" (or None)")
        integer("log_every", 1, optional=True, hint=" (or None)")
        integer("step_offset", 0)
        real("target_l0", lambda v: v > 0, "a number of active latents > 0 (or None)", optional=True)
        real("l0_freeze", lambda v: 0 <= v < 1, "a fraction in [0, 1), e.g. 0.25")
        integer("check_every", 1)
        real("divergence_ev", lambda v: v <= 0, "an EV threshold <= 0, e.g. -1 (or None: no check)", optional=True)
        integer("probe_samples", 2, optional=True, hint=" (or None: automatic)")
        integer("probe_evals", 0, hint=" (0: no convergence diagnostic)")
        real("converged_tol", lambda v: 0 < v < 1, "an absolute change of EV / recovery in (0, 1), e.g. 0.01")

    @property
    def n_steps(self) -> int:
        return self.n_samples // self.batch_size

    def resolved(self, root_seed: int = 0) -> "TrainSettings":
        """A copy with seed set (None -> root_seed)."""
        return self if self.seed is not None else self.replace(seed=root_seed)

    def train_kwargs(self, root_seed: int) -> dict[str, Any]:
        """The settings as keyword arguments of `train`, seed resolved (None -> root_seed)."""
        return {f.name: getattr(self.resolved(root_seed), f.name) for f in dataclasses.fields(self)}

    def fingerprint(self, log_every: int) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed (not n_samples, checkpoint_every, check_every)."""
        out = self.to_dict()
        for key in ("n_samples", "checkpoint_every", "check_every"):
            out.pop(key)
        out["log_every"] = log_every
        return out


_SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))


def resolve_settings(settings: Any, batch_size: Any = None, options: dict[str, Any] | None = None) -> TrainSettings:
    """The `TrainSettings` of a `train(sae, world, settings, batch_size, **options)` call."""
    options = dict(options or {})
    for key in options:
        if key not in _SETTINGS_FIELDS:
            unknown_name("training setting (keyword argument of synthsae.train)", key,
                         _SETTINGS_FIELDS + ("device", "checkpoint_dir", "resume", "progress", "extra_loss"))
    if "init_b_dec" in options and options["init_b_dec"] is None:
        options["init_b_dec"] = "keep"  # the historical spelling of "keep the SAE's own b_dec"
    if isinstance(settings, TrainSettings):
        require(batch_size is None, "train(..., batch_size)", batch_size, "a TrainSettings already holds batch_size",
                "train(sae, world, settings) or train(sae, world, settings, batch_size=...)")
        return settings.replace(**options) if options else settings
    if settings is not None:
        # the positional short form train(sae, world, n_samples, batch_size, ...)
        if not _is_int(settings):
            fail("train(sae, world, settings)", settings, f"a {type(settings).__name__} is neither a TrainSettings "
                 "nor a number of samples", "train(sae, world, TrainSettings(n_samples=..., batch_size=...)) or "
                 "train(sae, world, n_samples=..., batch_size=..., lr=...)")
        require("n_samples" not in options, "n_samples", options.get("n_samples"), "given both positionally and by "
                "keyword", "one of them")
        options["n_samples"] = settings
    if batch_size is not None:
        require("batch_size" not in options, "batch_size", options.get("batch_size"), "given both positionally and "
                "by keyword", "one of them")
        options["batch_size"] = batch_size
    return TrainSettings(**options)


# ---- history ------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainHistory:
    """What a training run recorded.

    Logged every `log_every` steps (values are means over the steps of that window):
      steps: number of steps done at each entry; samples: samples seen (steps * batch_size);
      terms: loss term name -> list (coefficients applied, as in `sae.loss`, times the target-L0
      factor for sparsity terms; `extra_loss` terms included); l0: mean active latents per sample;
      explained_variance: 1 - sum (x - x_hat)^2 / sum (x - mean x)^2 per batch;
      dead: number of latents dead at the end of the window (see `SAEConfig.dead_after_steps`);
      lr: learning rate at the last step of the window.
    initial_ev: explained variance on the first batch, before any step (the divergence reference).
    Target L0 (when `target_l0` is set): sparsity_factor: the controller's multiplier f at each log
      entry; sparsity_coefficients: coefficient field -> effective value (f x configured value).
    Probe (convergence): probe_steps, probe_ev, probe_recovery (None without a dictionary),
      probe_l0 at each evaluation of the held-out probe set; convergence: `Convergence.to_dict()`
      of the whole run (see `convergence_result()` and `summary()`).
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
    initial_ev: float | None = None
    target_l0: float | None = None
    sparsity_factor: list[float] = dataclasses.field(default_factory=list)
    sparsity_coefficients: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    probe_steps: list[int] = dataclasses.field(default_factory=list)
    probe_ev: list[float] = dataclasses.field(default_factory=list)
    probe_recovery: list[float | None] = dataclasses.field(default_factory=list)
    probe_l0: list[float] = dataclasses.field(default_factory=list)
    convergence: dict[str, Any] | None = None
    fire_count: torch.Tensor | None = None
    steps_since_fired: torch.Tensor | None = None

    @property
    def n_steps(self) -> int:
        return self.steps[-1] if self.steps else 0

    def convergence_result(self) -> Convergence | None:
        """The convergence diagnostic as a `Convergence` (None when the run had no probe evaluation)."""
        return None if self.convergence is None else Convergence.from_dict(self.convergence)

    def summary(self) -> str:
        """One line: variant, steps, and the convergence verdict with its numbers."""
        c = self.convergence_result()
        head = f"{self.variant}: {self.n_steps} steps of {self.batch_size}"
        return f"{head}; " + (c.summary() if c is not None else "no convergence diagnostic (probe_evals = 0)")

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
            raise ConfigError(f"{source} is not a synthsae training history (keys {sorted(scalars)})")
        return cls(**scalars, **{k: tensors.get(k) for k in ("fire_count", "steps_since_fired")})

    @classmethod
    def load(cls, directory: str | Path) -> "TrainHistory":
        directory = Path(directory)
        return cls.from_parts(io.read_json(directory / HISTORY_JSON), io.load_tensors(directory / HISTORY_TENSORS),
                              str(directory))


ExtraLoss = Callable[[torch.Tensor, Any, int], dict[str, torch.Tensor]]


# ---- the trainer ------------------------------------------------------------------------------
def train(
    sae: SAE,
    world: Any,
    settings: TrainSettings | int | None = None,
    batch_size: int | None = None,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    extra_loss: ExtraLoss | None = None,
    **options: Any,
) -> TrainHistory:
    """Train `sae` in place on batches from `world`; return its `TrainHistory`.

    sae: any registered SAE (`synthsae.sae.make`); moved to `device`.
    world: anything with `d` and `sample(n, seed=, device=, dtype=)` returning an object with
        `.x` (n, d) (a `synthsae.World`); its `dictionary` (m, d), if any, scores convergence.
    settings: a `TrainSettings`; keyword `options` (its field names: n_samples=, lr=, target_l0=,
        ...) build one or change the given one. `train(sae, world, n_samples, batch_size, ...)`
        (two positional ints) is the short form.
    checkpoint_dir: write a checkpoint every `checkpoint_every` steps and at the end. An existing
        checkpoint there is an error unless resume=True; resume=True with no checkpoint starts
        from scratch. A checkpoint written for another SAE config, world or trainer setting, or a
        corrupted file, raises `ValueError`. Only n_samples may change on resume.
    extra_loss: optional hook `extra_loss(x, out, step) -> {name: 0-d tensor}` (x the (n, d) batch,
        out the SAE's `TrainOutput`, step the SAE's step): terms added to the loss, recorded in
        the history and checked like the SAE's own. Pass the same hook when resuming.
    Stops with `FloatingPointError` on non-finite losses, parameters, buffers or data, and on
    divergence (module docstring). Never changes process-wide settings (threads, allocator, RNG).
    """
    s = resolve_settings(settings, batch_size, options)
    _check_call(sae, world, s, extra_loss, resume, progress)
    dev = resolve_device(device)
    seed = 0 if s.seed is None else s.seed
    n_steps = s.n_steps
    log_every = s.log_every or max(1, n_steps // 500)
    fingerprint_settings = s.replace(seed=seed).fingerprint(log_every)
    terms_to_scale = check_targetable(sae, s.target_l0) if s.target_l0 is not None else None
    ckpt = _checkpoint_path(checkpoint_dir, resume)

    sae.to(dev)
    sae.train()
    params = [p for p in sae.parameters() if p.requires_grad]
    optimizer = _adam(params, s.lr, s.betas)
    trainer_gen = generator(_derived_seed(seed, 3), "cpu")
    controller = (L0Controller(s.target_l0, terms_to_scale, n_steps, s.l0_freeze, dev)
                  if terms_to_scale is not None else None)
    history = TrainHistory(variant=sae.name, batch_size=s.batch_size, target_l0=s.target_l0)
    pending: list[torch.Tensor] = []
    start = 0
    fingerprint = _world_fingerprint(world)

    if ckpt is not None and ckpt.exists():
        if not resume:
            raise ConfigError(
                f"{ckpt} already exists: pass resume=True to continue that run, or choose another checkpoint_dir."
            )
        start, history, pending = _load_checkpoint(ckpt, sae, optimizer, trainer_gen, controller,
                                                   fingerprint_settings, fingerprint, dev)
        require(start <= n_steps, "n_samples", s.n_samples,
                f"the checkpoint in {checkpoint_dir} is already at step {start} > n_samples // batch_size = {n_steps}",
                f"n_samples >= {start * s.batch_size}")
    elif s.init_b_dec != "keep":
        x0 = world.sample(s.batch_size, seed=_derived_seed(seed, 2), device=dev, dtype=torch.float32).x
        _require_finite_data(x0, "the batch that initializes b_dec")
        with torch.no_grad():
            sae.b_dec.copy_(common.data_center(x0, s.init_b_dec))

    probe, points = _make_probe(world, s, seed, n_steps, dev)
    _keep_probe_points(history, points)  # a resume with another n_samples has another probe schedule
    names: list[str] | None = list(history.terms) or None
    bar = _progress(progress, n_steps, start, sae.name)
    checked = start  # steps done at the last finiteness check that passed
    try:
        for step in range(start, n_steps):
            t = s.step_offset + step  # the step the SAE's own schedules see
            x = world.sample(s.batch_size, seed=batch_seed(seed, step), device=dev, dtype=torch.float32).x
            step_lr = s.lr * common.lr_factor(step, n_steps, s.lr_warmup_steps, s.lr_decay_steps)
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            out = sae.forward_train(x, t)
            terms = out.terms if controller is None else controller.scale(out.terms)
            if extra_loss is not None:
                terms = _add_extra(terms, extra_loss(x, out, t))
            _check_finite(terms, step, x)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if sae.unit_norm_decoder and sae.W_dec.requires_grad:
                common.remove_parallel_grad_(sae.W_dec)
            if s.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            optimizer.step()
            sae.after_step(t)
            sae.update(out, t)
            if controller is not None:
                controller.observe(out.l0(), step, sae.sparsity_scale(t) >= 1.0)
            if s.resample_every and (step + 1) % s.resample_every == 0:
                if common.resample_dead(sae, x, optimizer, trainer_gen):
                    sae.after_step(t)

            if names is None:
                names = list(terms)
                history.terms = {k: [] for k in names}
            pending.append(_metrics(x, out, terms, names))
            if step == 0:
                history.initial_ev = float(pending[-1][-1])
            done = step + 1
            at_checkpoint = ckpt is not None and (done % s.checkpoint_every == 0 or done == n_steps)
            if done % s.check_every == 0 or at_checkpoint or done == n_steps:
                _check_state_finite(sae, checked, done, s.check_every)
                checked = done
            if done in points:
                _record_probe(history, probe, sae, done)
            if done % log_every == 0:
                _flush(history, pending, sae, done, step_lr, controller)
                pending = []
                _check_divergence(history, s, n_steps)
                if bar is not None:
                    bar.set_postfix(loss=f"{history.terms['total'][-1]:.4g}", l0=f"{history.l0[-1]:.1f}",
                                    dead=history.dead[-1])
            if at_checkpoint:
                _save_checkpoint(ckpt, sae, optimizer, trainer_gen, controller, fingerprint_settings, fingerprint,
                                 done, history, pending)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    _check_state_finite(sae, checked, n_steps, s.check_every)
    final = _copy_history(history)
    if pending:  # a partial window at the end is reported, but kept pending in the checkpoint
        _flush(final, pending, sae, n_steps,
               s.lr * common.lr_factor(n_steps - 1, n_steps, s.lr_warmup_steps, s.lr_decay_steps), controller)
    if final.explained_variance and s.divergence_ev is not None and final.explained_variance[-1] < s.divergence_ev:
        warnings.warn(f"the {sae.name} SAE ends its {n_steps} training steps at EV {final.explained_variance[-1]:.4g} "
                      f"< {s.divergence_ev:g} (too short a run to call it diverged): it reconstructs worse than the "
                      "mean. Train longer or check lr.", RuntimeWarning, stacklevel=2)
    if probe is not None:
        c = Convergence.measure(final.probe_steps, final.probe_ev, final.probe_recovery, final.probe_l0, n_steps,
                                s.converged_tol, s.target_l0, probe.x.shape[0], s.lr_decay_steps)
        final.convergence = None if c is None else c.to_dict()
    final.fire_count = sae.fire_count.detach().cpu().clone()
    final.steps_since_fired = sae.steps_since_fired.detach().cpu().clone()
    return final


# ---- pieces ---------------------------------------------------------------------------------
def _check_call(sae, world, s: TrainSettings, extra_loss, resume, progress) -> None:
    require(isinstance(sae, SAE), "sae", type(sae).__name__, "not a synthsae SAE",
            "an SAE from synthsae.sae.make(name, d, m, ...)")
    require(hasattr(world, "sample") and hasattr(world, "d"), "world", type(world).__name__,
            "it has no `sample` method or `d` attribute", "a synthsae.World")
    require(world.d == sae.config.d, "world.d", world.d, f"the SAE expects inputs of dimension d = {sae.config.d}",
            f"a world with d = {sae.config.d}")
    require(extra_loss is None or callable(extra_loss), "extra_loss", extra_loss, "not callable",
            "a function (x, out, step) -> {name: scalar tensor}, or None")
    for name, v in (("resume", resume), ("progress", progress)):
        require(isinstance(v, bool), name, v, "expected a boolean", "True or False")


def _checkpoint_path(checkpoint_dir, resume: bool) -> Path | None:
    if checkpoint_dir is None:
        if resume:
            raise ConfigError("resume = True is invalid without a checkpoint_dir. Expected: checkpoint_dir=<folder>.")
        return None
    require(isinstance(checkpoint_dir, (str, Path)) and str(checkpoint_dir) != "", "checkpoint_dir", checkpoint_dir,
            "not a folder path", "a str or pathlib.Path naming a folder (created if missing)")
    folder = Path(checkpoint_dir)
    require(not folder.exists() or folder.is_dir(), "checkpoint_dir", str(folder),
            "it is an existing file, not a folder", "a folder path (created if missing), e.g. "
            f"{str(folder.with_suffix('')) + '_checkpoint'!r}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail("checkpoint_dir", str(folder), f"the folder cannot be created ({err.strerror or err})",
             "a writable folder path")
    return folder / CHECKPOINT_FILE


def _adam(params, lr, betas) -> torch.optim.Adam:
    """Adam; the fused kernel (one pass over each tensor) where this torch build has it."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


def _progress(progress: bool, total: int, initial: int, name: str):
    from synthsae.progress import progress_bar  # a bar on a terminal, a line per 5% in a log

    return progress_bar(total, f"train {name}", enabled=progress, initial=initial, unit="step")


def _make_probe(world, s: TrainSettings, seed: int, n_steps: int, dev) -> tuple[Probe | None, set[int]]:
    if s.probe_evals == 0:
        return None, set()
    n = s.probe_samples or auto_probe_samples(s.n_samples)
    x = world.sample(n, seed=_derived_seed(seed, 4), device=dev, dtype=torch.float32).x
    _require_finite_data(x, "the held-out convergence probe set")
    probe = Probe(x, getattr(world, "dictionary", None), _derived_seed(seed, 5), s.batch_size)
    return probe, set(probe_points(n_steps, s.probe_evals, plateau_end(n_steps, s.lr_decay_steps)))


def _keep_probe_points(history: TrainHistory, points: set[int]) -> None:
    keep = [i for i, step in enumerate(history.probe_steps) if step in points]
    for name in ("probe_steps", "probe_ev", "probe_recovery", "probe_l0"):
        values = getattr(history, name)
        setattr(history, name, [values[i] for i in keep])


def _record_probe(history: TrainHistory, probe: Probe, sae: SAE, done: int) -> None:
    ev, recovery, l0 = probe.evaluate(sae)
    history.probe_steps.append(done)
    history.probe_ev.append(ev)
    history.probe_recovery.append(recovery)
    history.probe_l0.append(l0)


def _add_extra(terms: dict[str, torch.Tensor], extra: Any) -> dict[str, torch.Tensor]:
    if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.numel() == 1
                                              for k, v in extra.items()):
        fail("extra_loss(x, out, step)", extra, "the hook must return named scalar tensors",
             "a dict {name: 0-d tensor}, e.g. {'kl': 0.5 * kl}")
    clash = sorted(set(extra) & set(terms))
    require(not clash, "extra_loss(x, out, step)", clash, "these names are already loss terms of the SAE (or 'total')",
            f"other names than {sorted(terms)}")
    out = dict(terms)
    total = terms["total"]
    for name, value in extra.items():
        value = value.reshape(())
        out[name] = value
        total = total + value.to(total.dtype)
    out["total"] = total
    return out


def _require_finite_data(x: torch.Tensor, what: str, step: int | None = None) -> None:
    if bool(torch.isfinite(x).all()):
        return
    bad = int((~torch.isfinite(x)).sum())
    where = f"training stopped at step {step}: " if step is not None else ""
    raise FloatingPointError(
        f"{where}{what} drawn from the world has {bad} non-finite values out of {x.numel()}: the data is "
        "non-finite, not the training. Check the world (its dictionary, magnitudes, bias and noise parameters; "
        "a loaded world may carry NaN tensors)."
    )


def _check_finite(terms: dict[str, torch.Tensor], step: int, x: torch.Tensor) -> None:
    if math.isfinite(float(terms["total"].detach())):  # a Python float: cheaper than a 0-d isfinite tensor
        return
    _require_finite_data(x, "the training batch", step)
    for name in [k for k in terms if k != "total"] + ["total"]:  # name the culprit, not the sum
        value = terms[name]
        if not bool(torch.isfinite(value)):
            raise FloatingPointError(
                f"training stopped at step {step}: loss term {name!r} = {float(value.detach())} is not finite "
                "(the data batch is finite). Try a lower lr, grad_clip, or smaller coefficients."
            )


def _float_state(sae: SAE) -> list[tuple[str, str, torch.Tensor]]:
    out = [("parameter", n, p) for n, p in sae.named_parameters()]
    out += [("buffer", n, b) for n, b in sae.named_buffers() if b.is_floating_point()]
    return out


@torch.no_grad()
def _check_state_finite(sae: SAE, last_ok: int, done: int, every: int) -> None:
    """Raise naming the first non-finite parameter or buffer. One fused reduction (a sum of sums:
    NaN and inf propagate) and one host sync; the per-tensor search runs only when it fails."""
    state = _float_state(sae)
    if not state:
        return
    if bool(torch.isfinite(torch.stack([t.detach().sum(dtype=torch.float32) for _, _, t in state]).sum())):
        return
    for kind, name, t in state:  # the sum can also overflow from large finite values: check exactly
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            window = (f"step {done}" if done - last_ok <= 1 else
                      f"steps {last_ok + 1}-{done} (checked every check_every = {every} steps and at checkpoints)")
            raise FloatingPointError(
                f"training stopped: {kind} {name!r} of the {sae.name} SAE has {bad} non-finite values out of "
                f"{t.numel()}, which appeared during {window}, while the loss was finite. Try a lower lr, "
                "grad_clip, or smaller coefficients; the SAE was not checkpointed in this state."
            )


def _check_divergence(history: TrainHistory, s: TrainSettings, n_steps: int) -> None:
    """Diverged: every logged window of the last `divergence_span(n_steps)` steps has EV below
    divergence_ev, and their squared error (1 - EV, relative to the variance) is more than
    `DIVERGENCE_GROWTH` times the smallest one before them (the initial batch's included)."""
    if s.divergence_ev is None or history.initial_ev is None:
        return
    done = history.steps[-1]
    span = divergence_span(n_steps)
    if done < span:
        return
    recent = [ev for step, ev in zip(history.steps, history.explained_variance) if step > done - span]
    if not all(ev < s.divergence_ev for ev in recent):
        return
    earlier = [ev for step, ev in zip(history.steps, history.explained_variance) if step <= done - span]
    best_error = min(1.0 - ev for ev in earlier + [history.initial_ev])
    error = min(1.0 - ev for ev in recent)
    if error > DIVERGENCE_GROWTH * max(best_error, 1e-12):
        raise FloatingPointError(
            f"training diverged at step {done}: the {history.variant} SAE's explained variance stayed below "
            f"{s.divergence_ev:g} over steps {done - span + 1}-{done} (best there {1.0 - error:.4g}; it was "
            f"{1.0 - best_error:.4g} before): its reconstructions are farther from x than the mean is. Lower lr "
            f"(now {s.lr:g}) or set grad_clip; divergence_ev=None disables this check."
        )


def divergence_span(n_steps: int) -> int:
    """Steps over which divergence must persist: a twentieth of the run, at least `DIVERGENCE_STEPS`."""
    return max(DIVERGENCE_STEPS, n_steps // 20)


@torch.no_grad()
def _metrics(x: torch.Tensor, out, terms: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """One row: the loss terms, then L0, then explained variance (stays on the device)."""
    row = [terms[k].detach().reshape(()).to(torch.float64) for k in names]
    l0 = out.l0()
    # sums of squares as dot products of the flattened residuals: one op each instead of pow + sum
    r = (x - out.x_hat).reshape(-1)
    c = (x - x.mean(dim=0)).reshape(-1)
    ev = 1.0 - torch.dot(r, r) / torch.dot(c, c).clamp_min(1e-30)
    return torch.stack(row + [l0.to(torch.float64), ev.to(torch.float64)])


def _flush(history: TrainHistory, pending: list[torch.Tensor], sae: SAE, steps_done: int, lr: float,
           controller: L0Controller | None) -> None:
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
    if controller is not None:
        history.sparsity_factor.append(float(controller.factor()))
        for field, value in controller.coefficients(sae.config).items():
            history.sparsity_coefficients.setdefault(field, []).append(value)


def _copy_history(h: TrainHistory) -> TrainHistory:
    return TrainHistory(**json.loads(json.dumps(h.scalars())))


def _world_fingerprint(world: Any) -> dict[str, Any]:
    fp: dict[str, Any] = {"d": int(world.d), "m": int(getattr(world, "m", -1))}
    D = getattr(world, "dictionary", None)
    if isinstance(D, torch.Tensor):
        fp["dictionary_sha256"] = hashlib.sha256(D.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    return fp


# ---- checkpoints ------------------------------------------------------------------------------
def _save_checkpoint(path: Path, sae: SAE, optimizer, gen: torch.Generator, controller: L0Controller | None,
                     settings, fingerprint, step: int, history: TrainHistory, pending: list[torch.Tensor]) -> None:
    tensors = {f"model/{k}": v for k, v in sae.state_dict().items()}
    params = optimizer.param_groups[0]["params"]
    for i, p in enumerate(params):
        for key, v in optimizer.state.get(p, {}).items():
            tensors[f"optim/{i}/{key}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    tensors["trainer/generator"] = gen.get_state()
    if controller is not None:
        tensors.update({f"l0_control/{k}": v for k, v in controller.state().items()})
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
    except Exception:
        meta = {}
    fmt = meta.get("format")
    if isinstance(fmt, str) and fmt.startswith("synthsae-train-checkpoint/") and fmt != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is a training checkpoint in format {fmt!r}, written by another synthsae version "
                         f"(this one reads {CHECKPOINT_FORMAT!r}): it cannot be resumed. Use another checkpoint_dir "
                         "or delete it to start over.")
    try:
        if fmt != CHECKPOINT_FORMAT:
            raise KeyError("format")
        state = json.loads(meta["state"])
    except Exception:
        raise ConfigError(
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


def _load_checkpoint(path: Path, sae: SAE, optimizer, gen: torch.Generator, controller: L0Controller | None,
                     settings, fingerprint, dev):
    state, tensors = _read_checkpoint(path)
    if state.get("variant") != sae.name or state.get("sae_config") != sae.config.to_dict():
        raise ConfigError(
            f"{path} was written for SAE {state.get('variant')!r} with config {state.get('sae_config')}, "
            f"but this SAE is {sae.name!r} with config {sae.config.to_dict()}. "
            "Resume with the same SAE config, or use another checkpoint_dir."
        )
    for key, value in settings.items():
        if state["settings"].get(key) != value:
            raise ConfigError(
                f"{path} was written with {key} = {state['settings'].get(key)!r}, but this call has "
                f"{key} = {value!r}. Resume with the same training settings (only n_samples may change)."
            )
    if state.get("world") != fingerprint:
        raise ConfigError(f"{path} was written for another world ({state.get('world')}), not this one ({fingerprint}).")
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    sae.load_state(model, source=str(path))
    params = optimizer.param_groups[0]["params"]
    if state.get("n_params") != len(params):
        raise ConfigError(f"{path}: optimizer state for {state.get('n_params')} parameters, this SAE has {len(params)}")
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    try:
        for i, keys in enumerate(state["optim_keys"]):
            if keys:
                opt_state[i] = {key: _like(tensors[f"optim/{i}/{key}"], params[i], key) for key in keys}
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{path}: optimizer state is incomplete ({err}); the checkpoint may be corrupted") from None
    sd = optimizer.state_dict()
    sd["state"] = opt_state
    try:
        optimizer.load_state_dict(sd)
    except Exception as err:
        raise ConfigError(f"{path}: optimizer state does not fit this SAE ({err})") from None
    gen.set_state(tensors["trainer/generator"])
    if controller is not None:
        controller.load({k[len("l0_control/"):]: v for k, v in tensors.items() if k.startswith("l0_control/")},
                        str(path))
    pending_t = tensors.get("trainer/pending")
    pending = [row.to(dev) for row in pending_t] if pending_t is not None else []
    history = TrainHistory.from_parts(state["history"], {}, str(path))
    return int(state["step"]), history, pending
