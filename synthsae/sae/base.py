"""The SAE base class, its config base class and the registry of variants.

Conventions shared by every variant (they are the contract of `synthsae.sae`):

* Shapes. Inputs x are (n, d); codes z are (n, m). The decoder `W_dec` is (m, d): its **rows are
  the atoms** (as a world's dictionary D, and as SAELens `W_dec`), so x_hat = z W_dec + b_dec.
  The encoder `W_enc` is (d, m), `b_enc` (m,), `b_dec` (d,). Unless a variant says otherwise the
  encoder sees the centred input x - b_dec.
* Loss normalization. The reconstruction term `mse` is the mean over **all elements** of
  (x - x_hat)^2, i.e. ||x - x_hat||^2 / (n d). Sparsity penalties are a mean over the batch of a
  sum over latents (e.g. l1 = mean_b sum_j |z_bj|). Papers that sum the squared error over d use
  coefficients d times larger than ours for the same trade-off.
* `loss(x, step)` returns a dict of named scalar terms, each already multiplied by its
  coefficient, plus `"total"` (their sum, the quantity minimized). A variant may add a detached
  diagnostic that is not part of the total (matryoshka's full-width `mse`; its total uses
  `prefix_mse`). `step` drives schedules (sparsity warmup, AEN weights).
* Stateful bookkeeping (fire counts, steps since a latent last fired, EMAs, thresholds) lives in
  buffers, so it is saved with the model; it is updated by `update(out, step)`, which the trainer
  calls after each optimizer step, never by `encode` / `loss`.
* `encode` is always the inference-time encoder (e.g. BatchTopK uses its learned threshold there);
  the training-time path is `forward_train`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from synthsae import io
from synthsae._rng import generator, resolve_device
from synthsae.config import Config
from synthsae.errors import ConfigError, require
from synthsae.memory import check_sae_memory
from synthsae.registry import Registry
from synthsae.sae import common, sparse

SAE_CONFIGS: Registry[type["SAEConfig"]] = Registry("SAE variant")
SAES: Registry[type["SAE"]] = Registry("SAE variant")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DIGEST_KEY = "weights_sha256"  # in config.json: the sha256 of model.safetensors (see SAE.save)


@dataclasses.dataclass(frozen=True)
class SAEConfig(Config):
    """Hyperparameters shared by every SAE variant (a config family keyed by the variant name).

    d: input dimension. m: number of latents.
    seed: seed of the random initialization (decoder rows uniform on the sphere, encoder = decoder^T).
    sparsity_warmup_steps: the sparsity coefficient(s) ramp linearly from 0 to their value over
        this many steps (0 = no warmup).
    dead_after_steps: a latent that has not fired for this many training steps counts as dead
        (used by AuxK, resampling and the dead-latent count).
    sparse_kernels: False (default): every product is the plain dense PyTorch op of the variant's
        formula. True (opt-in speed option): the decoder product, its gradients and the encoder's
        weight gradient are computed over the non-zero codes only (`synthsae.sae.sparse`); same
        values and gradients to float round-off, not bit for bit. It pays for large dictionaries
        with sparse codes on CPU (16,384 latents at L0 ~35, with `synthsae.reuse_freed_memory()`:
        topk and trained relu_l1 train at 2.4-2.6x the samples/s, benchmarks/README.md) and costs
        more where codes are dense (a fresh 16k relu_l1 fires on half its latents: 6x slower per
        step) or dictionaries are small.
    """

    family = SAE_CONFIGS

    d: int
    m: int
    seed: int = 0
    sparsity_warmup_steps: int = 0
    dead_after_steps: int = 1000
    sparse_kernels: bool = False

    def validate(self) -> None:
        name = type(self).__name__
        for field in ("d", "m"):
            v = getattr(self, field)
            require(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"{name}.{field}", v,
                    "a dimension must be a positive integer", "an int >= 1")
        require(self.seed >= 0, f"{name}.seed", self.seed, "seeds are non-negative", "an int >= 0")
        require(self.sparsity_warmup_steps >= 0, f"{name}.sparsity_warmup_steps", self.sparsity_warmup_steps,
                "a step count cannot be negative", "an int >= 0")
        require(self.dead_after_steps >= 1, f"{name}.dead_after_steps", self.dead_after_steps,
                "a latent needs at least one step to be called dead", "an int >= 1")
        require(isinstance(self.sparse_kernels, bool), f"{name}.sparse_kernels", self.sparse_kernels,
                "this switch is a boolean", "True or False")

    # helpers for subclasses' validate()
    def _nonneg(self, field: str) -> None:
        v = getattr(self, field)
        require(v >= 0, f"{type(self).__name__}.{field}", v, "a coefficient cannot be negative", "a float >= 0")

    def _positive(self, field: str) -> None:
        v = getattr(self, field)
        require(v > 0, f"{type(self).__name__}.{field}", v, "this value must be strictly positive", "a number > 0")

    def _k(self, field: str = "k") -> None:
        v = getattr(self, field)
        require(1 <= v <= self.m, f"{type(self).__name__}.{field}", v,
                f"k must be between 1 and the number of latents m = {self.m}", f"an int in [1, {self.m}]")


class TrainOutput:
    """What one training forward pass produces.

    x_hat: (n, d) reconstruction. terms: named scalar loss terms (coefficients applied) plus "total".
    codes: (n, m) dense codes (zeros where inactive); a variant with exactly-k codes may instead
    pass `topk=(idx, vals)`, each (n, k), and `m`, and the dense codes are built only if asked for
    (given together with codes, topk only makes the fire counts cheaper).
    fired: optional (m,) int64 per-latent non-zero counts, when the variant has them already.
    extras: variant-specific tensors `update` needs.
    """

    def __init__(self, x_hat: torch.Tensor, codes: torch.Tensor | None, terms: dict[str, torch.Tensor],
                 extras: dict[str, torch.Tensor] | None = None, *,
                 topk: tuple[torch.Tensor, torch.Tensor] | None = None, m: int | None = None,
                 fired: torch.Tensor | None = None):
        if codes is None and (topk is None or m is None):
            raise ValueError("TrainOutput needs dense codes, or topk=(idx, vals) together with m")
        self.x_hat, self.terms, self.extras = x_hat, terms, extras or {}
        self._codes, self._topk, self._m = codes, topk, m
        if fired is not None:  # per-latent counts the variant already has (e.g. from sparse codes)
            self._fired = fired

    @property
    def codes(self) -> torch.Tensor:
        """(n, m) dense codes."""
        if self._codes is None:
            idx, vals = self._topk
            self._codes = common.scatter_codes(idx, vals, self._m)
        return self._codes

    def fired_per_latent(self) -> torch.Tensor:
        """(m,) int64: on how many samples of the batch each latent is non-zero (computed once)."""
        if "_fired" not in self.__dict__:
            if self._topk is not None:
                idx, vals = self._topk
                self._fired = torch.bincount(idx[vals != 0], minlength=self._m)
            else:
                # |z| -> sign -> column sums: a float reduction, several times faster on CPU than
                # summing a bool (n, m) mask over dim 0; exact, since counts stay far below 2**24
                self._fired = self._codes.detach().abs().sign_().sum(dim=0).long()
        return self._fired

    def l0(self) -> torch.Tensor:
        """Mean number of non-zero codes per sample (a 0-d float32 tensor)."""
        n = self._topk[0].shape[0] if self._codes is None else self._codes.shape[0]
        return self.fired_per_latent().sum().to(torch.float32) / n


def register(name: str, config_class: type[SAEConfig]):
    """Class decorator: register an SAE class and its config class under `name`."""

    def decorate(cls: type[SAE]) -> type[SAE]:
        config_class.kind = name
        SAE_CONFIGS.register(name)(config_class)
        SAES.register(name)(cls)
        cls.name = name
        cls.config_class = config_class
        return cls

    return decorate


def available() -> list[str]:
    """Names of every registered SAE variant, sorted."""
    return SAES.available()


def make(name: str, d: int, m: int, **hyperparameters: Any) -> "SAE":
    """Build the SAE variant `name` for inputs of dimension d with m latents.

    Unknown names and unknown or invalid hyperparameters raise `ValueError` (with a "did you mean").
    """
    cls = SAES.get(name)
    config = cls.config_class.from_dict({"d": d, "m": m, **hyperparameters}, path=f"make({name!r})")
    return cls(config)


class SAE(nn.Module):
    """Base class of all SAEs. See the module docstring for shapes and conventions.

    Parameters every variant has: `W_enc` (d, m), `b_enc` (m,), `W_dec` (m, d), `b_dec` (d,).
    Buffers: `fire_count` (m,) int64 (training samples on which each latent was non-zero) and
    `steps_since_fired` (m,) int64.
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[SAEConfig]] = SAEConfig

    def __init__(self, config: SAEConfig):
        super().__init__()
        require(isinstance(config, self.config_class), f"{type(self).__name__}(config)", config,
                "wrong config class", self.config_class.__name__)
        self.config = config
        d, m = config.d, config.m
        check_sae_memory(d, m, type(self).__name__, torch.empty((), dtype=torch.get_default_dtype()).element_size())
        W_dec = common.random_unit_rows(m, d, generator(config.seed))
        self.W_dec = nn.Parameter(W_dec)
        # encoder = decoder^T (Gao et al. 2024), stored row-major like every other tensor
        self.W_enc = nn.Parameter(W_dec.T.contiguous())
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("fire_count", torch.zeros(m, dtype=torch.long))
        self.register_buffer("steps_since_fired", torch.zeros(m, dtype=torch.long))

    # ---- what a variant declares --------------------------------------------------------------
    @property
    def unit_norm_decoder(self) -> bool:
        """True if decoder rows are kept at unit norm (parallel gradient removed, renormalized)."""
        return True

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Codes (n, m) of inputs x (n, d), inference mode."""
        raise NotImplementedError

    def forward_train(self, x: torch.Tensor, step: int) -> TrainOutput:  # pragma: no cover
        """Training-time forward pass: reconstruction, codes and loss terms."""
        raise NotImplementedError

    # ---- the numerical path: plain dense ops, or the opt-in sparse kernels -----------------------
    # Every product the sparse kernels can replace goes through one of these helpers, which pick
    # the path from `config.sparse_kernels` alone (nothing else: no size or density thresholds).
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(x - b_dec) W_enc, (n, d) -> (n, m) (plain dense ops on both paths).

        Computed as x W_enc - b_dec W_enc: the same map, but autograd then gets b_dec's gradient
        from a (d,) x (d, m) product instead of a second (n, m) x (m, d) matmul for d/dx.
        """
        return x @ self.W_enc - self.b_dec @ self.W_enc

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations (x - b_dec) W_enc + b_enc, (n, d) -> (n, m).

        With `sparse_kernels`, the same values from `sparse.encode_linear`, whose backward computes
        the W_enc gradient over the non-zeros of the incoming gradient.
        """
        if self.config.sparse_kernels:
            return sparse.encode_linear(x, self.W_enc, self.b_enc, self.b_dec)
        # b_dec folded into the bias, as in `project`: one matmul-plus-bias
        return torch.addmm(self.b_enc - self.b_dec @ self.W_enc, x, self.W_enc)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = z W_dec + b_dec, z (n, m) -> (n, d)."""
        return self.decode_with(z, self.W_dec, self.b_dec)

    def decode_with(self, z: torch.Tensor, W: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """z W (+ bias) for codes z (n, k), decoder rows W (k, d) (the decoder, a slice of it or a
        detached copy), bias (d,) or None -> (n, d). With `sparse_kernels`, an embedding bag over
        the non-zeros of z (`sparse.decode`)."""
        if self.config.sparse_kernels:
            return sparse.decode(z, W, bias)
        return z @ W if bias is None else torch.addmm(bias, z, W)

    def decode_topk(self, idx: torch.Tensor, vals: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """sum_k vals[b, k] W[idx[b, k]] for exactly-k codes idx, vals (n, k) and rows W (m, d) -> (n, d)
        (no bias). Plain: the dense codes times W; with `sparse_kernels`, k rows per sample."""
        if self.config.sparse_kernels:
            return sparse.decode_topk(idx, vals, W)
        return common.decode_topk(idx, vals, W)

    def relu_codes(self, a: torch.Tensor) -> common.DenseCodes | sparse.ActiveCodes:
        """ReLU(a) for pre-activations a (n, m), as `common.DenseCodes` (plain) or, with
        `sparse_kernels`, `sparse.ActiveCodes` (the non-zero entries only; the gradient then reaches
        the encoder as a sparse tensor). Both offer codes, decode, penalty, sum_of_squares, fired."""
        if self.config.sparse_kernels:
            return sparse.active_relu(a)
        return common.DenseCodes(F.relu(a))

    # ---- shared behaviour ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction decode(encode(x)), (n, d) -> (n, d)."""
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Named loss terms (coefficients applied) and "total" for a batch x (n, d)."""
        return self.forward_train(self._check_input(x), step).terms

    def dead_mask(self) -> torch.Tensor:
        """(m,) bool: latents that have not fired for `config.dead_after_steps` training steps."""
        return self.steps_since_fired >= self.config.dead_after_steps

    @torch.no_grad()
    def update(self, out: TrainOutput, step: int) -> None:
        """Bookkeeping after an optimizer step (fire counts; variants add EMAs). Override + super()."""
        common.update_fire_stats(self.fire_count, self.steps_since_fired, out.fired_per_latent())

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Re-impose parameter constraints after an optimizer step (unit-norm decoder rows)."""
        if self.unit_norm_decoder and self.W_dec.requires_grad:
            common.normalize_rows_(self.W_dec)

    def sparsity_scale(self, step: int) -> float:
        """Multiplier (0..1) of the sparsity coefficients at `step` (linear warmup)."""
        return common.linear_warmup(step, self.config.sparsity_warmup_steps)

    def reset_latents(self, idx: torch.Tensor) -> None:
        """Hook for resampling: re-initialize variant-specific per-latent parameters. Override."""

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != self.config.d:
            raise ConfigError(
                f"x has shape {tuple(x.shape)}: expected (n, {self.config.d}) for this SAE with d = {self.config.d}."
            )
        return x.to(device=self.W_dec.device, dtype=self.W_dec.dtype)

    # ---- save / load --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write `model.safetensors` (parameters and buffers) then `config.json` into `directory`.

        config.json records the weights' sha256 (`weights_sha256`), so `load` refuses a folder whose two
        files do not belong together (a save interrupted between them, a file copied from elsewhere)."""
        directory = io.make_folder(directory)
        _, digest = io.save_tensors_digest(directory / WEIGHTS_FILE, self.state_dict(), metadata={"variant": self.name})
        io.atomic_write_json(directory / CONFIG_FILE, {**self.config.to_dict(), DIGEST_KEY: digest})
        return directory

    @staticmethod
    def load(directory: str | Path, device: str | torch.device | None = None) -> "SAE":
        """Rebuild an SAE saved with `save`; the variant is read from the config's "kind".

        Verified: the weights' digest against config.json, the variant recorded with the weights against
        the config's kind, the tensors' names and shapes, and that every float is finite."""
        from synthsae.errors import fail as io_fail  # local: keeps this method's change self-contained

        directory = Path(directory)
        config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        data = io.read_json(config_file)
        recorded = data.pop(DIGEST_KEY, None) if isinstance(data, dict) else None
        config = SAEConfig.from_dict(data, path=str(config_file))
        saved = io.read_tensor_file(weights_file)
        variant = saved.metadata.get("variant")
        if variant is not None and variant != config.kind:
            io_fail(f"{config_file}: kind", config.kind, f"{weights_file} holds the weights of a {variant!r} SAE",
                    f"kind = {variant!r} (the variant the weights were trained as)")
        for key, value in saved.tensors.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                io_fail(f"{weights_file}: {key}", f"{int((~torch.isfinite(value)).sum())} NaN/inf entries",
                        "a model with non-finite weights or state gives NaN codes", "finite values (retrain, or "
                        "load an earlier checkpoint)")
        sae = SAES.get(config.kind)(config)
        sae.load_state(saved.tensors, source=str(weights_file))
        # last, so that the specific errors above (variant, shapes) win when they apply
        if recorded is not None and recorded != saved.sha256:
            io_fail(f"{config_file}: {DIGEST_KEY}", recorded, f"{weights_file} has digest {saved.sha256}, so the "
                    "two files were not written by the same save (interrupted save, copied or edited file)",
                    "a folder written by one SAE.save (save the SAE again)")
        return sae.to(resolve_device(device))

    def load_state(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Load a state dict, raising a clear `ValueError` on missing/extra keys or wrong shapes."""
        own = self.state_dict()
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        if missing or extra:
            raise ConfigError(f"{source} does not match a {self.name!r} SAE: missing {missing}, unexpected {extra}")
        for k, v in own.items():
            if tensors[k].shape != v.shape or tensors[k].dtype != v.dtype:
                raise ConfigError(
                    f"{source}: tensor {k!r} has shape {tuple(tensors[k].shape)} {tensors[k].dtype}, "
                    f"expected {tuple(v.shape)} {v.dtype} for config {self.config.to_dict()}"
                )
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(tensors[k])

    def extra_repr(self) -> str:
        return f"{self.name}: d={self.config.d}, m={self.config.m}"
