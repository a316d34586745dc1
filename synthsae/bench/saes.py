"""Which SAEs a bench compares: registered variants by name, or a user's own class.

A spec is a string:

* `"topk"`, `"relu_l1"`, ...: a registered variant (`synthsae.sae.available()`);
* `"path/to/my_sae.py:MySAE"`: the class `MySAE` defined in that file (imported by path);
* `"package.module:MySAE"`: the class `MySAE` of an importable module.

The SAE contract a user class must follow (checked by `conformance`, which names what is missing):

* a subclass of `synthsae.sae.SAE` with a `config_class`, a frozen dataclass subclass of
  `synthsae.sae.SAEConfig` (fields d, m, seed, ...), built as `MySAE(config)`;
* `encode(x (n, d)) -> z (n, m)`, `decode(z) -> x_hat (n, d)`, `forward_train(x, step) ->
  TrainOutput` with a scalar `"total"` loss term; `W_dec` of shape (m, d) (rows = atoms);
* a way to reach a target L0: either a config field `k` (TopK-like: set to the target), or a
  `sparsity_terms = {"loss term": "coefficient field"}` class attribute (the trainer's L0
  controller adapts that coefficient, `train(target_l0=...)`).

A user class that is not registered is registered under its spec's short name (`my_sae:MySAE`),
so the trainer's checkpoints and `SAE.load` work for it as for ours.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch

from synthsae.errors import ConfigError, fail

_LOADED: dict[str, type] = {}  # spec -> class (a file imported once per process)


@dataclasses.dataclass(frozen=True)
class SAESpec:
    """A resolved spec. spec: what is passed to workers (absolute file path for a file spec);
    label: the name in tables; cls: the SAE class; how: "k" (TopK-like) or "target_l0"."""

    spec: str
    label: str
    cls: type
    how: str

    def build(self, d: int, m: int, k: int, seed: int, **extra: Any):
        """(sae, train keyword arguments) for L0 = k: k set on TopK-like SAEs, target_l0 otherwise."""
        hyper = dict(extra)
        kwargs: dict[str, Any] = {}
        if self.how == "k":
            hyper["k"] = k
        else:
            kwargs["target_l0"] = float(k)
        config = self.cls.config_class.from_dict({"d": d, "m": m, "seed": seed, **hyper}, path=f"--sae {self.label}")
        return self.cls(config), kwargs


def resolve(spec: str) -> SAESpec:
    """The `SAESpec` of a spec string (see module docstring); a clear error when it cannot be used."""
    from synthsae.sae.base import SAES

    if not isinstance(spec, str) or not spec.strip():
        fail("--sae", spec, "an SAE is named by a string", "a variant name (e.g. topk), path/to/file.py:Class or "
             "package.module:Class")
    spec = spec.strip()
    if ":" not in spec:
        if spec not in SAES:
            from synthsae.errors import unknown_name

            unknown_name("SAE variant (or give path/to/file.py:Class or package.module:Class)", spec, SAES.available())
        cls = SAES.get(spec)
        return SAESpec(spec, spec, cls, matching(cls, spec))
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            fail("--sae", spec, f"the file {path} does not exist", "path/to/file.py:Class with an existing file")
        full = f"{path}:{name}"
        cls = _LOADED.get(full) or _from_file(path, name, spec)
        label = f"{path.stem}:{name}"
    else:
        full = spec
        cls = _LOADED.get(full) or _from_module(where, name, spec)
        label = f"{where.rsplit('.', 1)[-1]}:{name}"
    _LOADED[full] = cls
    conformance(cls, spec, run=False)  # the static part first: a class we cannot even register
    from synthsae.sae.base import SAE_CONFIGS, register

    registered_here = False
    if getattr(cls, "name", "base") == "base" or cls.name not in SAES or SAES.get(cls.name) is not cls:
        if label in SAES and SAES.get(label) is not cls:  # the same file imported again: the newest class wins
            SAES._items.pop(label)
            SAE_CONFIGS._items.pop(label, None)
        if label not in SAES:
            register(label, cls.config_class)(cls)
            registered_here = True
    try:
        conformance(cls, spec)
    except ConfigError:
        if registered_here:
            SAES._items.pop(label, None)
            SAE_CONFIGS._items.pop(label, None)
        raise
    return SAESpec(full, label, cls, matching(cls, spec))


def _from_file(path: Path, name: str, spec: str) -> type:
    module_name = f"synthsae_user_sae_{abs(hash(str(path)))}"
    try:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    except Exception as err:
        raise ConfigError(f"--sae = {spec!r} is invalid: importing {path} failed with {type(err).__name__}: {err}. "
                          "Expected: a Python file that imports cleanly.") from err
    return _attribute(module, name, spec, str(path))


def _from_module(module_path: str, name: str, spec: str) -> type:
    try:
        module = importlib.import_module(module_path)
    except Exception as err:
        raise ConfigError(f"--sae = {spec!r} is invalid: importing module {module_path!r} failed with "
                          f"{type(err).__name__}: {err}. Expected: an importable package.module:Class.") from err
    return _attribute(module, name, spec, module_path)


def _attribute(module, name: str, spec: str, where: str) -> type:
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and not k.startswith("_"))
        fail("--sae", spec, f"{where} defines no {name!r}", f"one of the classes it defines: {', '.join(found) or 'none'}")
    return getattr(module, name)


def matching(cls: type, spec: str) -> str:
    """How `cls` is brought to a target L0: "k" or "target_l0" (error when neither applies)."""
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    if "k" in fields:
        return "k"
    if getattr(cls, "sparsity_terms", None):
        return "target_l0"
    fail("--sae", spec, f"{cls.__name__} cannot be compared at matched L0: its config has no field `k` and the class "
         "declares no `sparsity_terms`", "a config field `k` (active latents per sample) or a class attribute "
         "sparsity_terms = {'loss term': 'coefficient field'} (see docs/bench.md)")


def conformance(cls: Any, spec: str, d: int = 8, m: int = 16, k: int = 2, run: bool = True) -> None:
    """Check a user SAE class against the contract (module docstring); raise a `ConfigError` naming
    every missing piece. run=False: only what can be checked without building it (a class must be
    registered, which gives its config a kind, before it can be built)."""
    from synthsae.sae.base import SAE, SAEConfig, TrainOutput

    def bad(why: str, expected: str):
        fail(f"--sae {spec}", getattr(cls, "__name__", cls), why, expected)

    if not (isinstance(cls, type) and issubclass(cls, SAE)):
        bad("it is not a subclass of synthsae.sae.SAE", "class MySAE(synthsae.sae.SAE) (see docs/bench.md)")
    cfg_cls = getattr(cls, "config_class", None)
    if cfg_cls is None or cfg_cls is SAEConfig or not (isinstance(cfg_cls, type) and issubclass(cfg_cls, SAEConfig)):
        bad("it has no config_class of its own", "a class attribute config_class = MyConfig, a frozen dataclass "
            "subclass of synthsae.sae.SAEConfig")
    missing = [meth for meth in ("encode", "forward_train") if getattr(cls, meth) is getattr(SAE, meth)]
    if missing:
        bad(f"it does not implement {', '.join(missing)}", "encode(x) -> (n, m) codes and forward_train(x, step) -> "
            "TrainOutput")
    how = matching(cls, spec)
    if not run:
        return
    try:
        sae = cls(cfg_cls.from_dict({"d": d, "m": m, "seed": 0, **({"k": k} if how == "k" else {})}))
    except Exception as err:
        bad(f"building it as {cls.__name__}({cfg_cls.__name__}(d={d}, m={m})) failed: {type(err).__name__}: {err}",
            "a constructor taking only its config")
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(0))
    checks = []
    try:
        W = sae.W_dec
        if tuple(W.shape) != (m, d):
            checks.append(f"W_dec has shape {tuple(W.shape)}, not (m, d) = ({m}, {d})")
        z = sae.encode(x)
        if not isinstance(z, torch.Tensor) or tuple(z.shape) != (5, m):
            checks.append(f"encode(x (5, {d})) returned {getattr(z, 'shape', type(z).__name__)}, not (5, {m})")
        else:
            xh = sae.decode(z)
            if not isinstance(xh, torch.Tensor) or tuple(xh.shape) != (5, d):
                checks.append(f"decode(z) returned {getattr(xh, 'shape', type(xh).__name__)}, not (5, {d})")
        out = sae.forward_train(x, 0)
        if not isinstance(out, TrainOutput):
            checks.append(f"forward_train returned a {type(out).__name__}, not a synthsae.sae.TrainOutput")
        elif "total" not in out.terms or out.terms["total"].dim() != 0:
            checks.append("forward_train's terms have no scalar 'total'")
    except Exception as err:
        checks.append(f"calling it failed: {type(err).__name__}: {err}")
    if checks:
        bad("; ".join(checks), "the SAE contract of docs/bench.md (shapes (n, d) -> (n, m) -> (n, d), W_dec (m, d), "
            "a scalar 'total' loss)")
