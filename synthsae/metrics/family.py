"""Metric families: the registry that `evaluate` loops over, and what each family declares.

A family (one file in `synthsae/metrics/families/`, found automatically) is a `Family` subclass
registered with `@register`. It declares

* `name` (what `EvalConfig.metrics` lists) and `keys`: one `MetricKey` per `Report.metrics` key it
  can produce, each with a one-line doc, the `Report.table()` section it is printed in, and
  whether it is a headline column (tables of run / sweep) or plotted against swept parameters;
* `applicable(world, sae, config) -> (bool, reason)`: the reason goes to `Report.not_applicable`;
* per evaluation, an instance built from the shared `EvalContext` (the matching of true features
  to latents is computed once, before any family) that sees every streamed `EvalBatch` in `add`
  and returns an `Output` from `finalize`.

`Report` sections, the printed table, `HEADLINE` / `PLOTTED` and the docs check
(tests/metrics/test_conformance.py against docs/metrics.md) are all derived from these
declarations. Adding a family = one file here + its entry in docs/metrics.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from typing import Any, ClassVar

import numpy as np
import torch

from synthsae.errors import require
from synthsae.registry import Registry

FAMILIES: Registry[type[Family]] = Registry("metric family")
TIMING_SECTION = "Timing (s)"


@dataclasses.dataclass(frozen=True)
class MetricKey:
    """One `Report.metrics` key.

    name: "family.metric" as written in docs/metrics.md; a key with a parameter is written with a
        placeholder (e.g. "recovery.rate@t") and gives `pattern`, a regex the concrete keys match fully.
    doc: one line. section: title of its `Report.table()` section.
    headline: column title when the key is a headline column of comparison tables, else None.
    plotted: whether sweeps plot it against each swept parameter.
    example: for a pattern key, the concrete key used as headline / plotted (e.g. "recovery.rate@0.9").
    """

    name: str
    doc: str
    section: str
    headline: str | None = None
    plotted: bool = False
    pattern: str | None = None
    example: str | None = None

    def __post_init__(self) -> None:
        require("." in self.name and " " not in self.name, "MetricKey.name", self.name,
                "keys are 'family.metric' without spaces", "e.g. 'recovery.mcc'")
        require(bool(self.doc.strip()) and "\n" not in self.doc, f"MetricKey({self.name!r}).doc", self.doc,
                "every key has a one-line description", "a non-empty single line")
        require(bool(self.section.strip()), f"MetricKey({self.name!r}).section", self.section,
                "every key is printed in a section", "a section title")
        if self.pattern is not None:
            require(self.example is not None and re.fullmatch(self.pattern, self.example) is not None,
                    f"MetricKey({self.name!r}).example", self.example, "a pattern key needs a concrete example "
                    "that matches its pattern", f"a key matching {self.pattern!r}")

    @property
    def concrete(self) -> str:
        """The key as it appears in a Report (the example of a pattern key)."""
        return self.example or self.name

    def matches(self, key: str) -> bool:
        return key == self.name if self.pattern is None else re.fullmatch(self.pattern, key) is not None


@dataclasses.dataclass
class EvalContext:
    """What every family may read; built once per `evaluate` call.

    sae: the SAE (W_dec (m_sae, d), rows = atoms; encode; decode). world: the world. config: the
    `EvalConfig`. device: where samples are drawn. W (m_sae, d), D (m, d): decoder and true
    dictionary on `device`. summary: `matching.CosineSummary` of |cos(D, W)| (split counts at
    config.split_threshold). match: the Hungarian `Matching` of true features to latents.
    sigma (m,): matched latent of each true feature or -1. cos_signed (m,): signed cosine of each
    pair (0 unmatched). sign (m,): its sign (+1 for 0).
    """

    sae: Any
    world: Any
    config: Any
    device: torch.device
    W: torch.Tensor
    D: torch.Tensor
    summary: Any
    match: Any
    sigma: np.ndarray
    cos_signed: np.ndarray
    sign: np.ndarray

    @property
    def m(self) -> int:
        return self.D.shape[0]

    @property
    def m_sae(self) -> int:
        return self.W.shape[0]


@dataclasses.dataclass
class EvalBatch:
    """One streamed chunk of evaluation samples.

    x (b, d), z (b, m_sae) SAE codes and x_hat (b, d) reconstruction, on the evaluation device;
    rows, cols, vals: the SAE codes' non-zeros, row-major (as `torch.nonzero`), on the CPU;
    true_rows, true_cols, true_vals: the world's true codes' non-zeros, on the CPU.
    """

    x: torch.Tensor
    z: torch.Tensor
    x_hat: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    true_rows: torch.Tensor
    true_cols: torch.Tensor
    true_vals: torch.Tensor

    @property
    def size(self) -> int:
        return self.x.shape[0]


@dataclasses.dataclass
class Output:
    """What one family adds to the Report (same fields as `Report`)."""

    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    not_applicable: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    plot_data: dict[str, Any] = dataclasses.field(default_factory=dict)


class Family:
    """Base class of a metric family (see the module docstring); one instance per evaluation.

    Class attributes: name, keys, order (position in METRICS, sections and tables), core (always
    computed, whatever `EvalConfig.metrics` says), default (in the default `EvalConfig.metrics`),
    timed (the Report gets `timing.<name>`, the seconds spent in `finalize`), nan_if_not_applicable
    (keys reported as NaN, rather than left out, when `applicable` says no).
    """

    name: ClassVar[str]
    keys: ClassVar[tuple[MetricKey, ...]]
    order: ClassVar[int]
    core: ClassVar[bool] = False
    default: ClassVar[bool] = True
    timed: ClassVar[bool] = False
    nan_if_not_applicable: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def applicable(cls, world, sae, config) -> tuple[bool, str]:
        """(True, "") or (False, why not) -- the reason is stored in `Report.not_applicable[name]`."""
        return True, ""

    @classmethod
    def declares(cls, key: str) -> bool:
        return any(k.matches(key) for k in cls.keys)

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx

    def add(self, batch: EvalBatch) -> None:
        """Accumulate one streamed batch (families that need no samples keep this no-op)."""

    def finalize(self) -> Output:
        raise NotImplementedError


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: check a family's declarations and add it to `FAMILIES`."""
    name = getattr(cls, "name", None)
    require(isinstance(name, str) and name.isidentifier(), f"{cls.__name__}.name", name,
            "a family needs a name usable in EvalConfig.metrics", "an identifier, e.g. 'recovery'")
    require(isinstance(getattr(cls, "order", None), int), f"{cls.__name__}.order", getattr(cls, "order", None),
            "families are ordered in the Report table", "an int")
    keys = getattr(cls, "keys", ())
    require(len(keys) >= 1 and all(isinstance(k, MetricKey) for k in keys), f"{cls.__name__}.keys", keys,
            "a family declares every Report key it can produce", "a non-empty tuple of MetricKey")
    for key in cls.nan_if_not_applicable:
        require(cls.declares(key), f"{cls.__name__}.nan_if_not_applicable", key, "not one of its keys",
                "declared keys")
    taken = {k.name: other.name for other in (FAMILIES.get(n) for n in FAMILIES) for k in other.keys}
    for k in keys:
        require(k.name not in taken, f"{cls.__name__}.keys", k.name, f"already declared by family {taken.get(k.name)!r}",
                "keys unique across families")
    return FAMILIES.register(name)(cls)


def all_families() -> list[type[Family]]:
    """Every registered family, in `order`."""
    _load()
    return sorted((FAMILIES.get(n) for n in FAMILIES), key=lambda f: (f.order, f.name))


def timing_keys() -> tuple[MetricKey, ...]:
    """The `timing.*` keys: the matching, the streaming pass, and each timed family's finalize."""
    out = [MetricKey("timing.matching", "seconds for the |cos| pass and the Hungarian matching", TIMING_SECTION),
           MetricKey("timing.stream", "seconds for the streaming pass over the n evaluation samples", TIMING_SECTION)]
    out += [MetricKey(f"timing.{f.name}", f"seconds spent computing the {f.name} family", TIMING_SECTION)
            for f in all_families() if f.timed]
    return tuple(out)


def all_keys() -> tuple[MetricKey, ...]:
    """Every key a Report from `evaluate` can hold, families in order, then timing."""
    return tuple(k for f in all_families() for k in f.keys) + timing_keys()


def key_spec(key: str) -> MetricKey | None:
    """The declaration a Report key comes from (exact names first, then patterns), or None."""
    specs = all_keys()
    for k in specs:
        if k.pattern is None and k.name == key:
            return k
    for k in specs:
        if k.pattern is not None and k.matches(key):
            return k
    return None


def sections() -> tuple[str, ...]:
    """Section titles of `Report.table()`, in order of first appearance."""
    return tuple(dict.fromkeys(k.section for k in all_keys()))


def headline() -> tuple[tuple[str, str], ...]:
    """(column title, Report key) of the headline columns of comparison tables."""
    return tuple((k.headline, k.concrete) for k in all_keys() if k.headline)


def plotted() -> tuple[str, ...]:
    """Report keys that sweeps plot against every swept parameter."""
    return tuple(k.concrete for k in all_keys() if k.plotted)


_LOADED = False


def _load() -> None:
    """Import every module of synthsae.metrics.families once (each registers its family)."""
    global _LOADED
    if _LOADED:
        return
    pkg = importlib.import_module("synthsae.metrics.families")

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    _LOADED = True
