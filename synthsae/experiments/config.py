"""`ExperimentConfig`: one experiment (a world, one or more SAEs, training and evaluation settings)
as a frozen, self-validating config that round-trips through TOML / JSON.

A TOML experiment reads

    name = "topk vs relu"
    seed = 0                      # root seed: SAE initialization and training batches
    device = "cpu"

    [world]                       # a preset plus overrides (preset options or WorldConfig fields) ...
    preset = "toy"
    seed = 3
    #                             ... or, without `preset`, a full WorldConfig table (d, m, dictionary, ...)

    [[sae]]                       # one table per SAE: variant, optional label, then its hyperparameters
    variant = "topk"
    m = 256                       # number of latents (default: the world's number of features)
    k = 4

    [train]                       # arguments of synthsae.train
    n_samples = 300_000
    lr = 3e-3

    [eval]                        # fields of synthsae.metrics.EvalConfig
    n = 20_000

Everything is checked when the config is built (the world config and every SAE config are
constructed, which validates them), so a bad config fails before any work starts, naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import typing
from typing import Any


from synthsae._rng import parse_device
from synthsae.config import Config, _from_plain
from synthsae.errors import ConfigError, fail, require
from synthsae.metrics.evaluate import EvalConfig
from synthsae.sae.base import SAE_CONFIGS, SAEConfig
from synthsae.sae.train import INIT_B_DEC, TrainSettings  # noqa: F401  ([train] is the trainer's own settings)
from synthsae.world.presets import PRESETS
from synthsae.world.world import WorldConfig

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `changes` merged in: nested tables merge key by key, except that a
    table naming a different `kind` (another geometry, firing law, ...) replaces the old one."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value.get("kind", old.get("kind")) == old.get("kind"):
            out[key] = merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---- the world -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WorldSpec(Config):
    """The world of an experiment: `preset` plus `overrides`, or a full `config`.

    Serialized flat: {"preset": "toy", "seed": 3} (every key but `preset` is an override: a preset
    option such as aen-spiked's `rho`, or a WorldConfig field; nested tables merge into the
    preset's), or the WorldConfig table itself when there is no `preset`.
    """

    preset: str | None = "toy"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: WorldConfig | None = None

    def validate(self) -> None:
        if (self.preset is None) == (self.config is None):
            fail("world", {"preset": self.preset, "config": self.config}, "give exactly one of a preset and a full "
                 "world config", f"preset = one of {PRESETS.available()}, or the WorldConfig fields (d, m, ...)")
        require(self.config is None or not self.overrides, "world", self.overrides,
                "overrides only apply to a preset", "a preset with overrides, or a full world table")
        self.world_config()  # builds (and so validates) the WorldConfig: fails early, naming the key

    def world_config(self) -> WorldConfig:
        """The resolved `WorldConfig` (cheap: the dictionary itself is built by `World(config)`)."""
        if self.config is not None:
            return self.config
        if self.preset not in PRESETS:
            try:
                PRESETS.get(self.preset)
            except ValueError as err:
                raise ConfigError(f"world.preset: {err}") from None
        build = PRESETS.get(self.preset)
        options = set(inspect.signature(build).parameters)
        fields = [f.name for f in dataclasses.fields(WorldConfig)]
        unknown = sorted(set(self.overrides) - options - set(fields))
        if unknown:
            raise ConfigError(
                f"world: unknown key(s) {unknown} for preset {self.preset!r}. Valid keys: preset, "
                f"{', '.join(sorted(options) + fields)}."
            )
        hints = typing.get_type_hints(build)
        # preset options are typed like config fields (e.g. aen-spiked's rho: float): convert + check them
        kwargs = {k: _from_plain(v, hints.get(k, Any), f"world.{k}") for k, v in self.overrides.items() if k in options}
        base = build(**kwargs)
        rest = {k: v for k, v in self.overrides.items() if k not in options}
        return WorldConfig.from_dict(merge(base.to_dict(), rest), path="world") if rest else base

    def to_dict(self) -> dict[str, Any]:
        if self.config is not None:
            return self.config.to_dict()
        return {"preset": self.preset, **copy.deepcopy(self.overrides)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> "WorldSpec":
        path = path or "world"
        if not isinstance(data, dict):
            fail(path, data, "the world must be a table", "a table with `preset = ...` or the WorldConfig fields")
        data = dict(data)
        if "preset" in data:
            preset = data.pop("preset")
            require(isinstance(preset, str), f"{path}.preset", preset, "a preset is named by a string",
                    f"one of {PRESETS.available()}")
            return cls(preset=preset, overrides=data)
        return cls(preset=None, config=WorldConfig.from_dict(data, path=path))


# ---- one SAE -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SAESpec(Config):
    """One SAE of an experiment: its `variant` (a `synthsae.sae` registry name), an optional `label`
    (default: the variant; labels name output folders and table rows, so they must be unique) and
    `hyperparameters` (fields of the variant's config; `m` defaults to the world's m, `seed` to the
    experiment's seed, `d` always comes from the world).

    Serialized flat: {"variant": "topk", "label": "topk-k4", "m": 256, "k": 4}.
    """

    variant: str
    label: str | None = None
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(isinstance(self.variant, str), "sae.variant", self.variant, "a variant is named by a string",
                f"one of {SAE_CONFIGS.available()}")
        if self.variant not in SAE_CONFIGS:
            try:
                SAE_CONFIGS.get(self.variant)
            except ValueError as err:
                raise ConfigError(f"sae.variant: {err}") from None
        require(self.label is None or (isinstance(self.label, str) and self.label.replace("-", "").replace("_", "")
                                       .replace(".", "").isalnum()), "sae.label", self.label,
                "a label names a folder", "letters, digits, '-', '_' and '.'")
        require("d" not in self.hyperparameters, "sae.d", self.hyperparameters.get("d"),
                "the input dimension is the world's d", "no `d` key (set the world's d instead)")

    @property
    def name(self) -> str:
        return self.label or self.variant

    def sae_config(self, d: int, m_default: int, seed_default: int, path: str = "sae") -> SAEConfig:
        """The variant's config for inputs of dimension d (validated; errors name `path`)."""
        values = {"d": d, "m": m_default, "seed": seed_default, **self.hyperparameters}
        return SAE_CONFIGS.get(self.variant).from_dict(values, path=path)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": self.variant}
        if self.label is not None:
            out["label"] = self.label
        out.update(copy.deepcopy(self.hyperparameters))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> "SAESpec":
        path = path or "sae"
        if not isinstance(data, dict) or "variant" not in data:
            fail(path, data, "each SAE is a table with at least a `variant` key",
                 f'{{variant = "topk", m = 256, k = 8}}; variants: {", ".join(SAE_CONFIGS.available())}')
        data = dict(data)
        variant, label = data.pop("variant"), data.pop("label", None)
        return cls(variant=variant, label=label, hyperparameters=data)


# ---- the experiment ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ExperimentConfig(Config):
    """One experiment: train every SAE in `sae` on `world` with `train`, evaluate with `eval`.

    name: a title for the report. seed: root seed (SAE initialization unless an SAE sets `seed`,
    training batches unless `train.seed` is set); the world has its own `world.seed`.
    device: "cpu", "cuda", "cuda:1", ... (availability is checked when the experiment runs).
    plots: write PNG figures (and embed them in report.md).
    """

    name: str = "experiment"
    seed: int = 0
    device: str = "cpu"
    world: WorldSpec = dataclasses.field(default_factory=WorldSpec)
    sae: tuple[SAESpec, ...] = (SAESpec("topk"),)
    train: TrainSettings = dataclasses.field(default_factory=TrainSettings)
    eval: EvalConfig = dataclasses.field(default_factory=lambda: EvalConfig(n=20_000))
    plots: bool = True

    def validate(self) -> None:
        require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "seeds are non-negative", "an int >= 0")
        parse_device(self.device)  # the name only: a config written on a laptop may name 'cuda'
        require(len(self.sae) >= 1, "sae", self.sae, "an experiment trains at least one SAE",
                'one or more [[sae]] tables, e.g. variant = "topk"')
        names = [s.name for s in self.sae]
        for i, n in enumerate(names):
            require(names.index(n) == i, f"sae[{i}].label", n, "two SAEs would share this name (their output "
                    "folder and table row)", "a unique `label` for each SAE of the same variant")
        self.sae_configs()  # builds every SAE config: unknown / invalid hyperparameters fail now

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> "ExperimentConfig":
        """As `Config.from_dict`, but the SAEs are required: a file without `[[sae]]` would otherwise
        train the Python default (one TopK) without saying so."""
        if isinstance(data, dict) and "sae" not in data:
            try:  # a mistake elsewhere in the file is reported first (the SAE list is checked last)
                super().from_dict({**data, "sae": []}, path=path)
            except ConfigError as err:
                if not str(err).startswith("sae = () is invalid"):
                    raise
            where = f"{path}: " if path else ""
            raise ConfigError(
                f"{where}the experiment config has no [[sae]] table: the SAE variants to train are required "
                "(there is no default SAE). Expected: one [[sae]] table per SAE, e.g.\n\n"
                '    [[sae]]\n    variant = "topk"\n    m = 256\n    k = 8\n\n'
                f"variants: {', '.join(SAE_CONFIGS.available())}.")
        return super().from_dict(data, path=path)

    def world_config(self) -> WorldConfig:
        return self.world.world_config()

    def sae_configs(self) -> dict[str, SAEConfig]:
        """label -> the validated config of each SAE, for the world's d."""
        wc = self.world_config()
        return {s.name: s.sae_config(wc.d, wc.m, self.seed, path=f"sae[{i}] ({s.variant})")
                for i, s in enumerate(self.sae)}

    def with_overrides(self, assignments: dict[str, Any]) -> "ExperimentConfig":
        """A copy with dotted keys set, e.g. {"train.lr": 1e-3, "sae.k": 8, "world.seed": 2}
        (`sae.X` needs exactly one SAE; with several use `sae[i].X`). Validated again."""
        data = self.to_dict()
        for key, value in assignments.items():
            set_dotted(data, key, value)
        return type(self).from_dict(data)

    def digest(self) -> str:
        """A stable 12-hex-digit hash of everything that determines the results (not name or device)."""
        data = self.to_dict()
        data.pop("name")
        data.pop("device")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """In place: set `key` ("train.lr", "sae.k", "sae[1].k", "world.firing.max_p") in a config dict.

    `sae.X` addresses the only SAE (error if there are several); missing intermediate tables are
    created (the config's own validation then rejects unknown keys, naming them)."""
    parts = key.split(".")
    require(all(parts), "--set", key, "empty component in a dotted key", "a key such as train.lr or sae.k")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        index = None
        if part.endswith("]") and "[" in part:
            part, _, idx = part[:-1].partition("[")
            require(idx.isdigit(), key, idx, "an index must be a non-negative integer", "e.g. sae[0].k")
            index = int(idx)
        if isinstance(node, list):
            fail(key, part, "this level is a list", "an index, e.g. sae[0]")
        if not isinstance(node, dict):
            fail(key, node, f"{'.'.join(parts[:i])} is not a table", "a key inside a table")
        if part == "sae" and i == 0 and index is None and not last:
            saes = node.get("sae", [])
            require(len(saes) == 1, key, f"{len(saes)} SAEs", "`sae.X` needs exactly one SAE",
                    "sae[i].X to address SAE number i")
            index = 0
        if index is not None:
            seq = node.get(part)
            require(isinstance(seq, list) and index < len(seq), key, index,
                    f"{part} has {len(seq) if isinstance(seq, list) else 0} entries", "a valid index")
            if last:
                seq[index] = value
                return
            node = seq[index]
            continue
        if last:
            node[part] = value
            return
        if node.get(part) is None:
            node[part] = {}
        node = node[part]


def parse_value(text: str) -> Any:
    """A `--set key=value` value: a TOML value (1e-3, 8, true, "x", [1, 2], {kind = "zipf"}),
    or the bare text as a string when it is not valid TOML."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
