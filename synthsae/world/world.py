"""The World: planted dictionary + firing model + magnitudes + noise, sampled sparsely.

    world = World.preset("toy")
    batch = world.sample(1024, seed=0)      # batch.x (n, d), batch.codes (true sparse codes)

Convention: atoms are the rows of `world.dictionary` (m, d); x = z D + bias + noise.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from synthsae._rng import Seed, generator, resolve_device
from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.io import atomic_write_json, make_folder, read_json, read_tensor_file, save_tensors_digest
from synthsae.world.codes import Batch, SparseCodes
from synthsae.world.correlation import Correlation
from synthsae.world.device_sampler import device_generator, sample_on_device, uses_device_sampler
from synthsae.world.firing import ExactlyK, Firing, Zipf
from synthsae.world.geometry import Built, Gaussian, Geometry, coherence
from synthsae.world.geometry.given import Given, check_dictionary
from synthsae.world.hierarchy import (Forest, HierarchyConfig, base_probabilities, build_forest, top_down_copula_events,
                                      top_down_events, top_down_plan)
from synthsae.world.magnitudes import ConstantMagnitude, Magnitudes
from synthsae.world.memory import check_probability_memory, check_sample_memory, check_world_memory
from synthsae.world.noise import Noise
from synthsae.world.sampler import copula_events, exactly_k_events, independent_events, make_bands, probit, sphere
from synthsae.world.verify import check_state

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
TENSORS_FILE = "world.safetensors"


@dataclasses.dataclass(frozen=True)
class WorldConfig(Config):
    """Everything that defines a world. d: input dimension; m: number of true features."""

    d: int = 32
    m: int = 128
    dictionary: Geometry = dataclasses.field(default_factory=Gaussian)
    firing: Firing = dataclasses.field(default_factory=Zipf)
    correlation: Correlation | None = None
    hierarchy: HierarchyConfig | None = None
    magnitudes: Magnitudes = dataclasses.field(default_factory=ConstantMagnitude)
    noise: Noise = dataclasses.field(default_factory=Noise)
    seed: int = 0

    def validate(self) -> None:
        require(isinstance(self.d, int) and self.d >= 1, "world.d", self.d, "the input dimension must be positive", "an int >= 1")
        require(isinstance(self.m, int) and self.m >= 1, "world.m", self.m, "a world needs at least one feature", "an int >= 1")
        require(isinstance(self.seed, int) and self.seed >= 0, "world.seed", self.seed, "seeds are non-negative ints", "an int >= 0")
        self.dictionary.check_shape(self.m, self.d)
        check_probability_memory(self.m)  # before the (m,) vector below is allocated
        self.firing.probabilities(self.m)  # raises for k > m, wrong vector length, ...
        matrix = getattr(self.correlation, "matrix", None)
        if matrix is not None and len(matrix) != self.m:
            fail("world.correlation.matrix", f"{len(matrix)} x {len(matrix)}", "the copula needs one row and "
                 f"column per feature", f"an m x m = {self.m} x {self.m} matrix")
        if isinstance(self.firing, ExactlyK) and (self.correlation is not None or self.hierarchy is not None):
            fail("world.firing", "exactly_k", "exactly-k firing fixes the count per sample, which correlation and "
                 "hierarchy would change", "exactly_k without correlation/hierarchy, or a probability law")
        if getattr(self.dictionary, "tied", False) and (self.hierarchy is not None or isinstance(self.firing, ExactlyK)):
            fail("world.dictionary", "subspaces(tied=True)", "tied subspace groups fire as units and cannot be "
                 "combined with a hierarchy or exactly-k firing", "tied=False, or no hierarchy / a probability law")


class World:
    """A ground-truth world. Build from a `WorldConfig` (or `World.preset(name)`); `dictionary=`
    overrides the geometry with a given (m, d) tensor (atoms as rows, unit norm).

    Attributes (CPU tensors): dictionary (m, d) float32; firing_probabilities (m,) marginals;
    base_probabilities (m,) per-feature draw probabilities; mean_magnitudes (m,); parents (m,)
    long or None; groups (m,) long or None; bias (d,); noise_std (float).
    """

    def __init__(self, config: WorldConfig, *, dictionary: torch.Tensor | None = None,
                 _state: dict[str, torch.Tensor] | None = None):
        if not isinstance(config, WorldConfig):
            fail("World(config)", type(config).__name__, "a World is built from a WorldConfig",
                 "WorldConfig(...) or World.preset(name)")
        self.config = config
        self._device_cache: dict = {}
        self._coherence: float | None = None
        if _state is None:
            check_world_memory(config)  # refuse absurd sizes before allocating anything
        state = _state if _state is not None else self._build(dictionary)
        if _state is None:  # a bug in a builder must not surface as NaN samples
            check_state(config, state, "World(config) built part")
        self._state = state
        m = config.m
        self.dictionary = state["dictionary"]
        self.base_probabilities = state["q"]
        self.firing_probabilities = state["marginal"]
        self.parents = state["parents"] if config.hierarchy is not None else None
        self.groups = state.get("groups")
        self.tied = bool(state["tied"]) if "tied" in state else False
        self._forest = (Forest(state["parents"], state["level"], state["exclusive"])
                        if config.hierarchy is not None else None)
        self._top_down = None  # the top-down hierarchy sampler's tables, built on first use
        self._bands = None  # the independent sampler's rate bands, built on first use
        self._mag = {k[4:]: v for k, v in state.items() if k.startswith("mag.")}
        self.mean_magnitudes = type(config.magnitudes).means(self._mag)
        self.bias = state["bias"]
        self.noise_std = float(state["noise_std"])
        self.info = {k[5:]: float(v) for k, v in state.items() if k.startswith("info.")}
        assert self.dictionary.shape == (m, config.d)

    # ---- construction ----------------------------------------------------------------------------
    def _build(self, dictionary: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cfg, m, d = self.config, self.config.m, self.config.d
        gen = generator(cfg.seed)
        if dictionary is not None and isinstance(cfg.dictionary, Given) and cfg.dictionary.path is None:
            # A file-less 'given' geometry takes its atoms from `dictionary=` (it draws no randomness).
            built = Built(check_dictionary(dictionary, m, d, normalize=cfg.dictionary.normalize))
        else:
            built = cfg.dictionary.build(m, d, gen)  # also gives group structure, and keeps the RNG stream aligned
            if dictionary is not None:
                built = dataclasses.replace(built, dictionary=check_dictionary(dictionary, m, d, normalize=False), info={})
        state: dict[str, torch.Tensor] = {"dictionary": built.dictionary.float().contiguous()}
        for key, value in built.info.items():
            state[f"info.{key}"] = torch.tensor(value)
        p = cfg.firing.probabilities(m)
        if cfg.hierarchy is not None:
            forest = build_forest(cfg.hierarchy, m, gen)
            q, marginal = base_probabilities(forest, p, cfg.hierarchy.compensate)
            state.update(parents=forest.parents, level=forest.level, exclusive=forest.exclusive)
        else:
            q, marginal = p.clone(), p.clone()
        if built.groups is not None:
            state["groups"] = built.groups
            state["tied"] = torch.tensor(built.tied)
            if built.tied:
                # One draw per group, made by its first feature; the group's members share its marginal.
                for g in built.groups.unique():
                    if g < 0:
                        continue
                    members = (built.groups == g).nonzero().squeeze(1)
                    marginal[members] = q[members[0]]
                    q[members[1:]] = 0.0
        state["q"], state["marginal"] = q, marginal
        if cfg.correlation is not None:
            state["corr_factor"], state["corr_diag"] = cfg.correlation.factors(m, gen)
        for key, value in cfg.magnitudes.prepare(m, gen).items():
            state[f"mag.{key}"] = value
        bias = torch.randn(d, generator=gen, dtype=torch.float64)
        state["bias"] = (bias / bias.norm() * cfg.noise.bias_norm).float()
        state["noise_std"] = torch.tensor(cfg.noise.std, dtype=torch.float64)
        self._state = state
        if cfg.noise.snr is not None:
            # Measure the signal power on a calibration batch with its own seed, then set std.
            self.__init__(cfg, _state={**state, "noise_std": torch.tensor(0.0, dtype=torch.float64)})
            clean = self.sample(4096, seed=generator(cfg.seed + 7919)).x - self.bias
            power = float((clean.double() ** 2).sum(1).mean())
            state["noise_std"] = torch.tensor((power / (cfg.noise.snr * d)) ** 0.5, dtype=torch.float64)
        return state

    @property
    def d(self) -> int:
        return self.config.d

    @property
    def m(self) -> int:
        return self.config.m

    # ---- sampling --------------------------------------------------------------------------------
    def sample_codes(self, n: int, seed: Seed = 0) -> SparseCodes:
        """Draw the true sparse codes of n samples (CPU, float64 values). Cost O(active features)
        for independent firing, with or without hierarchy (drawn top-down); with copula correlation
        O(n m) without hierarchy and O(n x features without a parent) with it."""
        require(isinstance(n, int) and not isinstance(n, bool) and n >= 1, "n", n,
                "the number of samples must be a positive int", "an int >= 1")
        cfg, m, gen = self.config, self.m, generator(seed)
        if isinstance(cfg.firing, ExactlyK):
            rows, cols = exactly_k_events(n, m, cfg.firing.k, gen)
        elif cfg.correlation is not None and self._forest is not None:
            # Given the copula's shared factor, entries are independent: draw children top-down too.
            rows, cols = top_down_copula_events(self._plan(), probit(self.base_probabilities), self._state["corr_factor"],
                                                self._state["corr_diag"], n, gen)
        elif cfg.correlation is not None:
            rows, cols = copula_events(self.base_probabilities, self._state["corr_factor"], self._state["corr_diag"], n, gen)
        elif self._forest is not None:
            # Parents first, children only where their parent fired: same law as gating base events.
            rows, cols = top_down_events(self._plan(), n, gen)
        else:
            if self._bands is None:  # the rate bands of the independent sampler, built on first use
                self._bands = make_bands(self.base_probabilities)
            rows, cols = independent_events(self.base_probabilities, n, gen, self._bands)
        values = type(cfg.magnitudes).sample(self._mag, cols, gen)
        if self.groups is not None and self.tied:
            rows, cols, values = self._expand_tied(rows, cols, values, gen)
        if self._forest is not None and cfg.hierarchy.scale_children_by_parent:
            values = self._scale_children(rows, cols, values)
        zero = values == 0
        if bool(zero.any()):  # a magnitude draw of 0 means the feature did not fire
            keep = (~zero).nonzero().squeeze(1)
            rows, cols, values = (torch.index_select(t, 0, keep) for t in (rows, cols, values))
        return SparseCodes(rows, cols, values, n, m)

    def _plan(self):
        """The top-down hierarchy sampler's tables (built once, on first use)."""
        if self._top_down is None:
            self._top_down = top_down_plan(self._forest, self.base_probabilities)
        return self._top_down

    def _expand_tied(self, rows, cols, values, gen):
        """Replace each group leader's event by the whole group with code a * u, u uniform on the sphere."""
        groups = self.groups
        leader = (groups[cols] >= 0)
        if not bool(leader.any()):
            return rows, cols, values
        free = ~leader
        g = groups[cols[leader]]
        rank = int((groups == groups[groups >= 0][0]).sum())
        members = torch.stack([(groups == gid).nonzero().squeeze(1) for gid in range(int(groups.max()) + 1)])
        u = sphere(len(g), rank, gen) * values[leader].unsqueeze(1)
        new_rows = rows[leader].repeat_interleave(rank)
        new_cols = members[g].reshape(-1)
        rows = torch.cat([rows[free], new_rows])
        cols = torch.cat([cols[free], new_cols])
        values = torch.cat([values[free], u.reshape(-1)])
        order = torch.argsort(rows * self.m + cols)
        return rows[order], cols[order], values[order]

    def _scale_children(self, rows, cols, values):
        """Top-down: child value *= parent value / parent mean magnitude."""
        keys = rows * self.m + cols
        means = self.mean_magnitudes
        for lvl in range(1, self._forest.depth + 1):
            at = (self._forest.level[cols] == lvl).nonzero().squeeze(1)
            parent = self.parents[cols[at]]
            pos = torch.searchsorted(keys, rows[at] * self.m + parent)
            values[at] = values[at] * values[pos] / means[parent]
        return values

    def sample(self, n: int, seed: Seed = 0, device: str | torch.device | None = None,
               dtype: torch.dtype = torch.float32, sampler: str = "auto") -> Batch:
        """n samples: `Batch(x (n, d), codes, noise (n, d))`. Same seed -> identical samples.

        sampler: "auto" (default): the device sampler on a CUDA device (the whole draw as dense torch
        ops there, `synthsae.world.device_sampler`; its seed must be an int or a generator on that
        device), the reference sampler otherwise (sparse, on the CPU, then moved to `device`);
        "device" / "reference" force one (e.g. "device" on the CPU). The two draw the same law but
        not the same samples."""
        dev = resolve_device(device)
        if uses_device_sampler(sampler, dev):
            return sample_on_device(self, n, seed, dev, dtype)
        gen = generator(seed)
        if isinstance(n, int) and not isinstance(n, bool):
            check_sample_memory(self, n)
        codes = self.sample_codes(n, gen).to(dev, dtype)
        x = codes.matmul(self._on(dev, dtype), add=self._state_on("bias", dev, dtype))
        if self.noise_std > 0:
            noise = (torch.randn(n, self.d, generator=gen, dtype=torch.float32) * self.noise_std).to(dev, dtype)
            x += noise
        else:
            noise = torch.zeros(self.d, device=dev, dtype=dtype).expand(n, -1)
        return Batch(x=x, codes=codes, noise=noise)

    def stream(self, batch_size: int, seed: Seed = 0, device: str | torch.device | None = None,
               dtype: torch.dtype = torch.float32, sampler: str = "auto") -> Iterator[Batch]:
        """An endless iterator of batches drawn from one generator seeded with `seed` (on the device
        for the device sampler; `sampler` as in `sample`)."""
        dev = resolve_device(device)
        gen = device_generator(seed, dev) if uses_device_sampler(sampler, dev) else generator(seed)
        while True:
            yield self.sample(batch_size, seed=gen, device=device, dtype=dtype, sampler=sampler)

    def _on(self, dev, dtype):
        return self._state_on("dictionary", dev, dtype)

    def _state_on(self, key, dev, dtype):
        cache_key = (key, str(dev), dtype)
        if cache_key not in self._device_cache:
            self._device_cache[cache_key] = self._state[key].to(dev, dtype)
        return self._device_cache[cache_key]

    # ---- facts -----------------------------------------------------------------------------------
    def coherence(self) -> float:
        """Max |cos| between distinct atoms (computed once, in chunks)."""
        if self._coherence is None:
            self._coherence = coherence(self.dictionary)
        return self._coherence

    def expected_l0(self) -> float:
        """Expected number of active features per sample: the sum of the marginal firing rates."""
        return float(self.firing_probabilities.sum())

    def describe(self) -> str:
        """A readable multi-line summary of the world."""
        cfg, p = self.config, self.firing_probabilities
        lines = [
            f"World: m = {self.m} features in d = {self.d} dimensions (seed {cfg.seed})",
            f"  dictionary    {cfg.dictionary.kind}; coherence (max |cos|) = {self.coherence():.4f}",
            f"  firing        {cfg.firing.kind}; rates {float(p.min()):.3g} .. {float(p.max()):.3g}; "
            f"expected L0 = {self.expected_l0():.2f}" + (" (marginals exact for independent firing only)"
                                                          if cfg.correlation is not None and cfg.hierarchy else ""),
            f"  correlation   {cfg.correlation.kind if cfg.correlation else 'none (independent)'}",
        ]
        if self._forest is not None:
            f = self._forest
            in_tree = int(((f.parents >= 0) | (f.level == 0) & torch.isin(torch.arange(self.m), f.parents)).sum())
            lines.append(f"  hierarchy     {cfg.hierarchy.roots} roots, depth {f.depth}, {in_tree} features in trees, "
                         f"{int(f.exclusive.sum())} mutually exclusive parents, compensate={cfg.hierarchy.compensate}")
        if self.groups is not None:
            n_groups = int(self.groups.max()) + 1
            lines.append(f"  subspaces     {n_groups} groups, tied={self.tied}")
        mm = self.mean_magnitudes
        lines.append(f"  magnitudes    {cfg.magnitudes.kind}; mean {float(mm.min()):.3g} .. {float(mm.max()):.3g}")
        lines.append(f"  noise         std {self.noise_std:.4g}; bias norm {cfg.noise.bias_norm:.3g}")
        for key, value in self.info.items():
            lines.append(f"  {key:<13} {value:.4g}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"World(m={self.m}, d={self.d}, dictionary={self.config.dictionary.kind!r}, firing={self.config.firing.kind!r})"

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write `world.safetensors` then `config.json` into folder `path` (each atomically, no pickle).

        The tensors file carries the config it was built with (metadata), and config.json records the
        tensors' sha256, so `load` refuses a folder whose two files do not belong together (a save
        interrupted between them, a file copied from another world, a hand-edited config)."""
        path = make_folder(path)
        config_text = json.dumps(self.config.to_dict(), sort_keys=True)
        _, digest = save_tensors_digest(path / TENSORS_FILE, self._state, metadata={
            "format_version": str(FORMAT_VERSION), "world": config_text})
        atomic_write_json(path / CONFIG_FILE, {"format_version": FORMAT_VERSION, "world": self.config.to_dict(),
                                               "tensors_sha256": digest})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "World":
        """Load a world saved by `save`; it draws the same samples for the same seed.

        Verified before anything is used: the tensors' digest against config.json, config.json against
        the config the tensors were built with (an edited field is refused, naming it: a changed world
        must be rebuilt, `World(WorldConfig.load(...))`), and the tensors themselves (`from_state`)."""
        path = Path(path)
        config_file, tensors_file = path / CONFIG_FILE, path / TENSORS_FILE
        meta = read_json(config_file)
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION or "world" not in meta:
            fail(str(config_file), meta.get("format_version") if isinstance(meta, dict) else meta,
                 "not a synthsae world folder of a supported format", f"format_version {FORMAT_VERSION}")
        config = WorldConfig.from_dict(meta["world"], path=f"{config_file}: world")
        saved = read_tensor_file(tensors_file)
        built_with = saved.metadata.get("world")
        if built_with is not None:
            try:
                original = WorldConfig.from_dict(json.loads(built_with))
            except (ValueError, TypeError):
                fail(f"{tensors_file}: metadata 'world'", built_with, "not a readable world config",
                     "the metadata World.save writes")
            diff = _first_difference(original.to_dict(), config.to_dict(), "world")
            if diff is not None:
                where, before, after = diff
                fail(f"{config_file}: {where}", after, f"the tensors in {TENSORS_FILE} were built with {where} = "
                     f"{before!r} (config.json was edited, or the files come from different saves), and loading them "
                     "under this config would report one world and sample another", f"{before!r} (the value the "
                     "tensors were built with); for a changed world build it anew, World(WorldConfig.load(...)), "
                     "and save that")
        world = cls.from_state(config, saved.tensors, _source=str(tensors_file))
        # last, so that the specific errors above name the field when one applies
        recorded = meta.get("tensors_sha256")
        if recorded is not None and recorded != saved.sha256:
            fail(f"{config_file}: tensors_sha256", recorded, f"{tensors_file} has digest {saved.sha256}, so the two "
                 "files were not written by the same save (interrupted save, copied or edited file)",
                 "a folder written by one World.save (save the world again)")
        return world

    def state(self) -> dict[str, torch.Tensor]:
        """The world's built parts (what `save` writes; see `from_state` for the keys), a shallow copy."""
        return dict(self._state)

    @classmethod
    def from_state(cls, config: WorldConfig, state: dict[str, torch.Tensor], *,
                   _source: str = "World.from_state(state)") -> "World":
        """A world from its config and its built parts, without building or drawing anything.

        For worlds whose parts come from elsewhere (e.g. `synthsae.interop.world_from_saelens`) and for
        `load`; `World.from_state(w.config, w.state())` samples exactly as w. `state` maps names to CPU
        tensors, m = config.m, d = config.d:
          dictionary (m, d) unit-norm atoms as rows; bias (d,); noise_std () the noise std;
          q (m,) base (draw) probabilities and marginal (m,) marginal firing rates, in [0, 1];
          mag.<name> (m,) the per-feature parameters of config.magnitudes (e.g. mag.mean, mag.std);
          with config.hierarchy: parents (m,) long (-1: no parent), level (m,) long, exclusive (m,) bool;
          with config.correlation: corr_factor (m, r) and corr_diag (m,), C = F F^T + diag(corr_diag);
          optional: groups (m,) long and tied () for subspace groups; info.<name> () facts for `describe`.
        Everything is verified (`synthsae.world.verify.check_state`): a missing, mis-shaped or non-finite
        entry, a non-unit atom, a negative noise std, a hierarchy that is not a forest, or a part that
        disagrees with the config raises ValueError naming it.
        """
        if not isinstance(config, WorldConfig):
            fail("World.from_state(config)", type(config).__name__, "a World is built from a WorldConfig",
                 "a WorldConfig")
        check_state(config, state, _source)  # shapes, dtypes, finiteness, ranges, forest, config agreement
        return cls(config, _state=dict(state))

    @classmethod
    def preset(cls, name: str, **overrides) -> "World":
        """A named world (see `synthsae.world.presets.PRESETS`); overrides are preset options or
        WorldConfig fields, e.g. `World.preset("aen-spiked", rho=0.7, seed=3)`."""
        from synthsae.world.presets import preset_config

        return cls(preset_config(name, **overrides))


def _first_difference(a, b, where: str):
    """(path, a's value, b's value) of the first leaf where two plain config dicts differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            diff = _first_difference(a.get(key), b.get(key), f"{where}.{key}")
            if diff is not None:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff = _first_difference(x, y, f"{where}[{i}]")
            if diff is not None:
                return diff
        return None
    return None if a == b else (where, a, b)
