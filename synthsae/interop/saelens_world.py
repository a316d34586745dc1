"""Worlds from SAELens synthetic models (`sae_lens.synthetic.SyntheticModelConfig` / `SyntheticModel`).

    world = world_from_saelens(cfg)                 # a SyntheticModelConfig, its dict, or its JSON file
    world = load_saelens_world("path/to/saved")     # a folder written by SyntheticModel.save (exact)

Both give a `World` whose samples follow the same distribution as `SyntheticModel.sample`:

* dictionary: rebuilt as SAELens builds it (seeded Gaussian rows, unit-normalized, then the same
  Adam descent on sum_{i != j} <d_i, d_j>^2 + m sum_i (|d_i|^2 - 1)^2 when orthogonalization is set);
  loaded bit-for-bit from a saved model. Atoms are the rows of `world.dictionary` (m, d), x = z D + bias.
* firing: SAELens's probabilities in float32 (zipfian, linear, random, constant), then its
  *first-order* hierarchy compensation, clamped at 1 (see `saelens_correction_factors`);
* hierarchy: the same forest (SAELens lays features out breadth-first and draws branching and the
  mutually exclusive parents with Python's `random.Random(seed + 3)`; we replay those draws);
* correlation: the same low-rank factor (`seed + 4`), including SAELens's silent row rescaling;
* magnitudes: max(0, mean + std * eps) with SAELens's per-feature means / stds (`seed + 2` / `seed + 1`);
* bias: the same vector.

Nothing here imports `sae_lens`: configs are read from their dict / JSON form.

Exactness. The dictionary from a config equals SAELens's up to float round-off of the Adam descent
(we compute the same loss with our own code; ~1e-6); a loaded dictionary is identical. The forest,
probabilities, magnitudes, correlation factor and bias are identical. The returned world's config
records the laws (probabilities and per-feature magnitudes explicitly); the forest, dictionary and
correlation factor live in its state (kept by `World.save`, returned by `world.state()`), so
`World(world.config)` does not rebuild them: use `World.from_state(world.config, world.state())`.

Known differences (each raised as a `SAELensCompatibilityWarning` when it matters for a config):
SAELens gates a child on its parent's *value* being > 0 and lets only siblings with value > 0
compete under mutual exclusion; we gate on the parent's firing *event*. They differ only when
max(0, mean + std * eps) can be 0, i.e. with P(eps < -mean/std) > 0 in practice.
"""

from __future__ import annotations

import math
import random
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import torch

from synthsae.errors import fail, require
from synthsae.io import load_tensors, read_json
from synthsae.world.correlation import LowRank
from synthsae.world.firing import Vector
from synthsae.world.geometry import Given
from synthsae.world.hierarchy import Forest, HierarchyConfig, base_probabilities, first_order_factors
from synthsae.world.magnitudes import NormalRelu
from synthsae.world.noise import Noise
from synthsae.world.profiles import Values
from synthsae.world.world import World, WorldConfig

CONFIG_FILE = "synthetic_model_config.json"
WEIGHTS_FILE = "synthetic_model.safetensors"
HIERARCHY_FILE = "hierarchy.json"

# Fields of SAELens's SyntheticModelConfig (sae-lens 6.x). An unknown key means a config version we
# have not read, so we refuse it rather than silently ignoring a setting.
_TOP_KEYS = {"num_features", "hidden_dim", "firing_probability", "hierarchy", "orthogonalization", "correlation",
             "std_firing_magnitudes", "mean_firing_magnitudes", "bias", "dtype", "seed"}
_HIERARCHY_KEYS = {"total_root_nodes", "branching_factor", "max_depth", "mutually_exclusive_portion",
                   "mutually_exclusive_min_depth", "mutually_exclusive_max_depth", "compensate_probabilities",
                   "scale_children_by_parent"}
_ORTHO_KEYS = {"num_steps", "lr", "chunk_size"}
_CORR_KEYS = {"rank", "correlation_scale", "seed"}
_MIN_DIAG = 0.01  # SAELens caps each low-rank row so that its diagonal term is at least this


class SAELensCompatibilityWarning(UserWarning):
    """SAELens does something we consider wrong (or differs from us); the world reproduces SAELens."""


def _warn(message: str) -> None:
    warnings.warn(message, SAELensCompatibilityWarning, stacklevel=3)


# ---- reading a config -------------------------------------------------------------------------------
def read_saelens_config(source: Any) -> dict[str, Any]:
    """A SAELens synthetic-model config as a plain dict, from a `SyntheticModelConfig` (anything with
    `to_dict()`), a dict, or a path to its JSON file / to a folder saved by `SyntheticModel.save`.
    Unknown keys or generator names raise `ValueError` naming them (an unsupported config version)."""
    if hasattr(source, "to_dict") and not isinstance(source, dict):
        source = source.to_dict()
    elif isinstance(source, (str, Path)):
        path = Path(source)
        source = read_json(path / CONFIG_FILE if path.is_dir() else path)
    if not isinstance(source, dict):
        fail("SAELens config", type(source).__name__, "not a synthetic-model config",
             "a SyntheticModelConfig, its to_dict(), or a path to synthetic_model_config.json")
    _check_keys("SAELens config", source, _TOP_KEYS, required={"num_features", "hidden_dim"})
    for key, allowed in (("hierarchy", _HIERARCHY_KEYS), ("orthogonalization", _ORTHO_KEYS),
                         ("correlation", _CORR_KEYS)):
        if source.get(key) is not None:
            _check_keys(f"SAELens config.{key}", source[key], allowed)
    require(source.get("dtype", "float32") == "float32", "SAELens config.dtype", source.get("dtype"),
            "only float32 synthetic models are supported (SAELens draws probabilities in float32)", "'float32'")
    return dict(source)


def _check_keys(field: str, d: Any, allowed: set[str], required: set[str] = frozenset()) -> None:
    require(isinstance(d, dict), field, d, "expected a mapping", "a dict / JSON object")
    unknown = sorted(set(d) - allowed)
    if unknown:
        fail(field, unknown, "unknown key(s): this SAELens config version is not supported (read for sae-lens 6.x)",
             f"keys among {sorted(allowed)}")
    missing = sorted(required - set(d))
    if missing:
        fail(field, f"missing {missing}", "required keys are absent", f"a config with {sorted(required)}")


# ---- firing probabilities, magnitudes (float32, as SAELens computes them) ---------------------------
def _firing_probabilities(spec: dict[str, Any], m: int, seed: int | None) -> torch.Tensor:
    spec = dict(spec)
    name = spec.pop("generator_name", None)
    field = "SAELens config.firing_probability"
    if name == "zipfian":
        _check_keys(field, spec, {"exponent", "max_prob", "min_prob"})
        exponent, hi, lo = spec.get("exponent", 1.0), spec.get("max_prob", 0.3), spec.get("min_prob", 0.01)
        require(exponent > 0 and 0 < lo < hi <= 1, field, spec, "SAELens requires exponent > 0 and 0 < min < max <= 1",
                "valid zipfian parameters")
        if m == 1:
            return torch.tensor([hi], dtype=torch.float32)
        raw = 1.0 / torch.arange(1, m + 1, dtype=torch.float32) ** exponent
        return lo + (hi - lo) * (raw - raw.min()) / (raw.max() - raw.min())
    if name == "linear":
        _check_keys(field, spec, {"max_prob", "min_prob"})
        hi, lo = spec.get("max_prob", 0.3), spec.get("min_prob", 0.01)
        return torch.tensor([hi], dtype=torch.float32) if m == 1 else torch.linspace(hi, lo, m, dtype=torch.float32)
    if name == "random":
        _check_keys(field, spec, {"max_prob", "min_prob"})
        hi, lo = spec.get("max_prob", 0.5), spec.get("min_prob", 0.01)
        gen = torch.Generator()
        if seed is not None:
            gen.manual_seed(seed)
        return lo + (hi - lo) * torch.rand(m, generator=gen, dtype=torch.float32)
    if name == "constant":
        _check_keys(field, spec, {"probability"})
        return torch.full((m,), spec.get("probability", 0.1), dtype=torch.float32)
    fail(f"{field}.generator_name", name, "not a firing-probability law we can read",
         "'zipfian', 'linear', 'random' or 'constant'")


def _magnitudes(spec: Any, m: int, seed: int | None, field: str) -> torch.Tensor:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return torch.full((m,), float(spec), dtype=torch.float32)
    require(isinstance(spec, dict), field, spec, "expected a number or a magnitude config", "a float or a dict")
    spec = dict(spec)
    name = spec.pop("generator_name", None)
    if name == "constant":
        _check_keys(field, spec, {"value"})
        return torch.full((m,), spec.get("value", 1.0), dtype=torch.float32)
    if name in ("linear", "exponential"):
        _check_keys(field, spec, {"start", "end"}, required={"start", "end"})
        start, end = spec["start"], spec["end"]
        require(start > 0 and end > 0, field, spec, "SAELens requires positive start and end", "start, end > 0")
        if m == 1:
            return torch.tensor([start], dtype=torch.float32)
        if name == "linear":
            return torch.linspace(start, end, m)
        return start * (end / start) ** torch.linspace(0, 1, m)
    if name == "folded_normal":
        _check_keys(field, spec, {"mean", "std", "min_value", "max_value"})
        if seed is None:
            fail(field, "folded_normal with seed None", "SAELens would draw these per-feature values from an "
                 "unseeded generator, so they cannot be reproduced", "a config with a seed")
        gen = torch.Generator().manual_seed(seed)
        values = (spec.get("mean", 0.0) + torch.randn(m, generator=gen) * spec.get("std", 0.1)).abs()
        lo, hi = spec.get("min_value"), spec.get("max_value")
        return values.clamp(min=lo, max=hi) if (lo is not None or hi is not None) else values
    fail(f"{field}.generator_name", name, "not a magnitude law we can read",
         "'constant', 'linear', 'exponential' or 'folded_normal'")


# ---- hierarchy -------------------------------------------------------------------------------------
class _Node:
    __slots__ = ("feature", "children", "exclusive", "depth")

    def __init__(self, feature: int, depth: int):
        self.feature, self.children, self.exclusive, self.depth = feature, [], False, depth


def _generate_forest(spec: dict[str, Any], m: int, seed: int | None) -> tuple[list[_Node], bool]:
    """Replay SAELens's `generate_hierarchy`: roots 0..R-1, then breadth-first over all trees; branching
    and the mutually exclusive parents drawn from `random.Random(seed)` in the same order."""
    roots_wanted = spec.get("total_root_nodes", 100)
    branching = spec.get("branching_factor", 100)
    max_depth = spec.get("max_depth", 2)
    portion = spec.get("mutually_exclusive_portion", 0.0)
    lo_depth, hi_depth = spec.get("mutually_exclusive_min_depth", 0), spec.get("mutually_exclusive_max_depth")
    field = "SAELens config.hierarchy"
    if isinstance(branching, (list, tuple)):
        require(len(branching) == 2 and 2 <= branching[0] <= branching[1], field, branching,
                "SAELens needs branching (min, max) with 2 <= min <= max", "(min, max)")
    else:
        require(branching >= 2, field, branching, "SAELens needs branching >= 2", "an int >= 2")
    require(max_depth >= 1 and roots_wanted >= 1 and 0 <= portion <= 1, field, spec, "invalid hierarchy settings",
            "total_root_nodes >= 1, max_depth >= 1, mutually_exclusive_portion in [0, 1]")
    rng = random.Random(seed)
    next_free = 0
    roots: list[_Node] = []
    parents: list[_Node] = []
    for _ in range(roots_wanted):
        if next_free >= m:
            break
        roots.append(_Node(next_free, 0))
        next_free += 1
    parents.extend(roots)
    level = list(roots)
    while level:
        upcoming = []
        for node in level:
            if node.depth >= max_depth:
                continue
            count = branching if isinstance(branching, int) else rng.randint(branching[0], branching[1])
            for _ in range(count):
                if next_free >= m:
                    break
                child = _Node(next_free, node.depth + 1)
                next_free += 1
                node.children.append(child)
                if child.depth < max_depth:
                    upcoming.append(child)
                    parents.append(child)
        level = upcoming
    eligible = [p for p in parents if p.depth >= lo_depth and (hi_depth is None or p.depth <= hi_depth)
                and len(p.children) >= 2]
    n_exclusive = int(len(eligible) * portion)
    if n_exclusive > 0:
        for i in set(rng.sample(range(len(eligible)), n_exclusive)):
            eligible[i].exclusive = True
    return roots, bool(spec.get("scale_children_by_parent", False))


def _forest_from_json(tree: dict[str, Any], m: int, source: str) -> tuple[list[_Node], bool]:
    """The forest of a saved `hierarchy.json` (nested nodes with feature_index, children, flags)."""
    require(isinstance(tree, dict) and isinstance(tree.get("roots"), list), source, type(tree).__name__,
            "not a SAELens hierarchy file", 'a JSON object {"roots": [...]}')
    scale_flags: set[bool] = set()

    def build(spec: dict[str, Any], depth: int) -> _Node:
        feature = spec.get("feature_index")
        if feature is None:
            fail(source, "a node without feature_index", "organizational (feature-less) nodes are not supported by "
                 "synthsae hierarchies", "every node tied to a feature")
        require(isinstance(feature, int) and 0 <= feature < m, source, feature, "feature index out of range",
                f"an int in [0, {m})")
        node = _Node(feature, depth)
        node.exclusive = bool(spec.get("mutually_exclusive_children", False))
        node.children = [build(c, depth + 1) for c in spec.get("children", [])]
        if node.children:
            scale_flags.add(bool(spec.get("scale_children_by_parent", False)))
        return node

    roots = [build(r, 0) for r in tree["roots"]]
    if len(scale_flags) > 1:
        fail(source, "mixed scale_children_by_parent flags", "synthsae scales all children or none",
             "the same flag on every parent")
    return roots, scale_flags == {True}


def _forest_tensors(roots: list[_Node], m: int) -> tuple[Forest, list[_Node]]:
    parents = torch.full((m,), -1, dtype=torch.long)
    level = torch.zeros(m, dtype=torch.long)
    exclusive = torch.zeros(m, dtype=torch.bool)
    seen = torch.zeros(m, dtype=torch.bool)
    order: list[_Node] = []
    queue = deque(roots)
    while queue:  # breadth-first, as SAELens processes levels
        node = queue.popleft()
        if seen[node.feature]:
            fail("SAELens hierarchy", f"feature {node.feature}", "appears twice in the forest",
                 "a forest (one parent each)")
        seen[node.feature] = True
        order.append(node)
        level[node.feature] = node.depth
        exclusive[node.feature] = node.exclusive and len(node.children) >= 2
        for child in node.children:
            parents[child.feature] = node.feature
            queue.append(child)
    return Forest(parents, level, exclusive), order


def saelens_correction_factors(p: torch.Tensor, roots: list[_Node]) -> torch.Tensor:
    """SAELens's `compute_probability_correction_factors`, in its float32 arithmetic. p: (m,) float32.

    A child gets 1 / p_parent (the parent's *configured* probability), and a child of a mutually
    exclusive parent is further multiplied by 1 + (sum of its siblings' p) / p_parent. This is a
    first-order approximation: the resulting marginals are not the configured ones (for SynthSAEBench's
    all-exclusive forest the expected L0 is about 34.5 instead of sum(p) = 59.1).
    """
    forest, _ = _forest_tensors(roots, p.shape[0])
    return first_order_factors(forest, p)


# ---- dictionary ------------------------------------------------------------------------------------
def saelens_dictionary(m: int, d: int, seed: int, bias_norm: float,
                       orthogonalization: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(D (m, d) float32 with atoms as rows, bias (d,) float32) as SAELens's FeatureDictionary draws them:
    Gaussian rows from a generator seeded with `seed`, unit-normalized; then the bias from the same
    generator; then, if asked, `num_steps` Adam steps (lr) on the orthogonality loss, renormalized."""
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(m, d, generator=gen)
    D = D / D.norm(dim=1, keepdim=True).clamp(min=1e-8)
    if bias_norm:
        b = torch.randn(d, generator=gen)
        bias = b / b.norm().clamp(min=1e-8) * bias_norm
    else:
        bias = torch.zeros(d)
    if orthogonalization is not None:
        D = orthogonalize(D, orthogonalization.get("num_steps", 200), orthogonalization.get("lr", 0.01),
                          orthogonalization.get("chunk_size", 1024))
    return D.contiguous(), bias


def orthogonalize(D: torch.Tensor, steps: int, lr: float, chunk: int) -> torch.Tensor:
    """Adam descent on sum_{i != j} <d_i, d_j>^2 + m * sum_i (|d_i|^2 - 1)^2 over the rows of D (m, d),
    gradients accumulated over row chunks (O(chunk * m) memory), rows renormalized at the end."""
    m = D.shape[0]
    E = (D / D.norm(dim=1, keepdim=True).clamp(min=1e-8)).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([E], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        for start in range(0, m, chunk):
            block = E[start:start + chunk]
            gram = block @ E.T  # (chunk, m)
            rows = torch.arange(block.shape[0])
            diag = gram[rows, start + rows]
            off = gram.pow(2).sum() - diag.pow(2).sum()
            (off + m * (diag - 1).pow(2).sum()).backward()
        opt.step()
    with torch.no_grad():
        return (E / E.norm(dim=1, keepdim=True).clamp(min=1e-8)).detach().clone()


# ---- correlation -----------------------------------------------------------------------------------
def saelens_low_rank(m: int, rank: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SAELens's low-rank correlation factor F (m, rank) and diagonal (m,), float32, including its silent
    rescaling of rows whose diagonal 1 - |F_i|^2 would fall below 0.01 (warned about here)."""
    require(rank >= 1 and scale >= 0, "SAELens config.correlation", {"rank": rank, "correlation_scale": scale},
            "rank must be positive and the scale non-negative", "rank >= 1, correlation_scale >= 0")
    gen = torch.Generator().manual_seed(seed)
    F = torch.randn(m, rank, generator=gen) * scale
    sq = (F**2).sum(1)
    capped = (1 - sq) < _MIN_DIAG
    F[capped, :] *= torch.sqrt((1 - _MIN_DIAG) / sq[capped].unsqueeze(1))
    if bool(capped.any()):
        _warn(f"SAELens low-rank correlation: {int(capped.sum())} of {m} rows have |F_i|^2 > 0.99 and are silently "
              "rescaled by SAELens (so the matrix is not the one the config describes); reproduced for equivalence. "
              "synthsae's LowRank raises instead: lower correlation_scale or rank.")
    return F, 1 - (F**2).sum(1)


# ---- the world --------------------------------------------------------------------------------------
def world_from_saelens(source: Any) -> World:
    """A `World` with the distribution of SAELens's `SyntheticModel(cfg)`; see the module docstring.

    source: a `SyntheticModelConfig`, its `to_dict()`, or a path to its JSON (a folder saved by
    `SyntheticModel.save` is loaded exactly by `load_saelens_world` instead). The config needs a seed
    (SAELens draws from the global RNG without one, which nobody can reproduce).
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return load_saelens_world(source)
    cfg = read_saelens_config(source)
    m, d, seed = cfg["num_features"], cfg["hidden_dim"], cfg.get("seed")
    require(isinstance(seed, int) and seed >= 0, "SAELens config.seed", seed,
            "without a seed SAELens draws the dictionary from torch's global RNG, which cannot be reproduced",
            "an int >= 0 (or load a saved model with load_saelens_world)")
    hierarchy = cfg.get("hierarchy")
    roots, scale = ([], False)
    if hierarchy is not None and hierarchy.get("total_root_nodes", 100) > 0:
        roots, scale = _generate_forest(hierarchy, m, seed + 3)
    p = _firing_probabilities(cfg.get("firing_probability") or {"generator_name": "zipfian"}, m, seed)
    if roots and hierarchy.get("compensate_probabilities", False):
        corrected = p * saelens_correction_factors(p, roots)
        clamped = (corrected >= 1.0) & (p < 1.0)
        if bool(clamped.any()):
            _warn(f"SAELens hierarchy compensation clamps {int(clamped.sum())} probabilities at 1 (max before clamp "
                  f"{float(corrected.max()):.3f}); reproduced. synthsae's compensate=True raises instead.")
        p = corrected.clamp(max=1.0)
    corr = cfg.get("correlation")
    factor = saelens_low_rank(m, corr.get("rank", 32), corr.get("correlation_scale", 0.1), seed + 4) if corr else None
    bias_cfg = cfg.get("bias", 1.0)
    bias_norm = 0.0 if not bias_cfg else (1.0 if bias_cfg is True else float(bias_cfg))
    D, bias = saelens_dictionary(m, d, seed, bias_norm, cfg.get("orthogonalization"))
    std = _magnitudes(cfg.get("std_firing_magnitudes", 0.0), m, seed + 1, "SAELens config.std_firing_magnitudes")
    mean = _magnitudes(cfg.get("mean_firing_magnitudes", 1.0), m, seed + 2, "SAELens config.mean_firing_magnitudes")
    return _assemble(cfg, D, bias, p, roots, scale, factor, mean, std, hierarchy,
                     dictionary=Given(key="feature_vectors"))


def load_saelens_world(path: str | Path) -> World:
    """The `World` of a folder written by SAELens's `SyntheticModel.save`: its dictionary, bias, firing
    probabilities, correlation factor and hierarchy loaded exactly; magnitudes regenerated from the
    config's seed, as SAELens's own `load_from_disk` does."""
    path = Path(path)
    cfg = read_saelens_config(path / CONFIG_FILE)
    m, d, seed = cfg["num_features"], cfg["hidden_dim"], cfg.get("seed")
    weights_file = path / WEIGHTS_FILE
    w = load_tensors(weights_file)
    for key, shape in (("feature_vectors", (m, d)), ("bias", (d,)), ("firing_probabilities", (m,))):
        if key not in w or tuple(w[key].shape) != shape:
            fail(str(weights_file), f"tensor {key!r}: {tuple(w[key].shape) if key in w else 'missing'}",
                 "does not match the saved config", f"shape {shape}")
    D = w["feature_vectors"].float()
    norms = D.norm(dim=1)
    bad = (norms - 1).abs() > 1e-4
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        fail(f"{weights_file}:feature_vectors", f"row {j} with norm {float(norms[j]):.6g}",
             "synthsae worlds have unit-norm atoms (SAELens normalizes its rows)", "unit-norm rows")
    factor = None
    if "correlation_factor" in w:
        factor = (w["correlation_factor"].float(), w["correlation_diag"].float())
        require(bool((factor[1] > 0).all()), f"{weights_file}:correlation_diag", "non-positive entries",
                "the copula needs a positive diagonal term", "values > 0")
    roots, scale = [], False
    if (path / HIERARCHY_FILE).is_file():
        roots, scale = _forest_from_json(read_json(path / HIERARCHY_FILE), m, str(path / HIERARCHY_FILE))
    std = _magnitudes(cfg.get("std_firing_magnitudes", 0.0), m, None if seed is None else seed + 1,
                      "SAELens config.std_firing_magnitudes")
    mean = _magnitudes(cfg.get("mean_firing_magnitudes", 1.0), m, None if seed is None else seed + 2,
                       "SAELens config.mean_firing_magnitudes")
    return _assemble(cfg, D, w["bias"].float(), w["firing_probabilities"].float(), roots, scale, factor, mean, std,
                     cfg.get("hierarchy") or ({"total_root_nodes": len(roots)} if roots else None),
                     dictionary=Given(path=str(weights_file), key="feature_vectors"))


def _assemble(cfg, D, bias, q, roots, scale, factor, mean, std, hierarchy, dictionary) -> World:
    """Build the world's state from SAELens's parts (no re-drawing), warn about known differences."""
    m, d = cfg["num_features"], cfg["hidden_dim"]
    require(bool(((q >= 0) & (q <= 1)).all()), "SAELens firing probabilities", "values outside [0, 1]",
            "probabilities lie in [0, 1]", "values in [0, 1]")
    require(bool((std >= 0).all()) and bool(torch.isfinite(mean).all()), "SAELens magnitudes", "negative std or "
            "non-finite mean", "invalid magnitude parameters", "finite means and stds >= 0")
    state: dict[str, torch.Tensor] = {"dictionary": D.float().contiguous(), "bias": bias.float().contiguous(),
                                      "noise_std": torch.tensor(0.0, dtype=torch.float64),
                                      "mag.mean": mean.double(), "mag.std": std.double()}
    hier_cfg = None
    if roots:
        forest, order = _forest_tensors(roots, m)
        q64, marginal = base_probabilities(forest, q.double(), compensate=False)
        state.update(parents=forest.parents, level=forest.level, exclusive=forest.exclusive)
        branching = hierarchy.get("branching_factor", 2) if hierarchy else 2
        hier_cfg = HierarchyConfig(roots=len(roots), branching=tuple(branching) if isinstance(branching, list) else
                                   max(1, int(branching)), depth=max(1, int(forest.depth)),
                                   mutually_exclusive=float((hierarchy or {}).get("mutually_exclusive_portion", 0.0)),
                                   compensate=False, scale_children_by_parent=scale)
        _warn_differences(forest, q.double(), mean.double(), std.double(), scale, hierarchy)
    else:
        q64, marginal = q.double(), q.double()
    state["q"], state["marginal"] = q64, marginal
    corr_cfg = None
    if factor is not None:
        state["corr_factor"], state["corr_diag"] = factor[0].double(), factor[1].double()
        corr_spec = cfg.get("correlation") or {}
        corr_cfg = LowRank(rank=int(factor[0].shape[1]), scale=float(corr_spec.get("correlation_scale", 0.1)))
    config = WorldConfig(
        d=d, m=m, dictionary=dictionary, firing=Vector(p=tuple(q.double().tolist())),
        correlation=corr_cfg, hierarchy=hier_cfg,
        magnitudes=NormalRelu(mean=_param(mean), std=_param(std)),
        noise=Noise(std=0.0, bias_norm=float(bias.norm())), seed=int(cfg.get("seed") or 0))
    return World.from_state(config, state)


def _param(values: torch.Tensor) -> float | Values:
    """A float when every feature shares the value, else the explicit per-feature values."""
    first = float(values[0])
    return first if bool((values == values[0]).all()) else Values(values=tuple(values.double().tolist()))


def _warn_differences(forest: Forest, q, mean, std, scale: bool, hierarchy: dict | None) -> None:
    """Warn where SAELens's hierarchy semantics and ours can give different samples for this config."""
    # P(max(0, mean + std * eps) == 0): SAELens then treats a fired parent / ME sibling as inactive.
    p_zero = torch.where(std > 0, 0.5 * torch.erfc(mean / (std.clamp_min(1e-300) * math.sqrt(2))),
                         (mean <= 0).double())
    involved = torch.zeros_like(q, dtype=torch.bool)
    involved[forest.parents[forest.parents >= 0]] = True
    involved |= forest.exclusive[forest.parents.clamp_min(0)] & (forest.parents >= 0)
    worst = float(p_zero[involved].max()) if bool(involved.any()) else 0.0
    if worst > 1e-6:
        _warn(f"SAELens gates children on their parent's value > 0 (and lets only siblings with value > 0 compete), "
              f"synthsae on the parent's firing event; here a parent or sibling draws value 0 with probability up "
              f"to {worst:.2g}, so child rates differ by up to that factor.")
    if scale and bool((std > 0).any()):
        from synthsae.world.magnitudes import NormalRelu as _NR
        expected = _NR.means({"mean": mean, "std": std})
        parents = forest.parents[forest.parents >= 0].unique()
        rel = float(((expected[parents] - mean[parents]).abs() / mean[parents].abs().clamp_min(1e-300)).max())
        if rel > 1e-6:
            _warn(f"scale_children_by_parent: SAELens divides by the configured mean, synthsae by E[max(0, X)]; "
                  f"they differ by up to {rel:.2g} (relative) here.")
    if hierarchy and hierarchy.get("compensate_probabilities", False):
        _warn("SAELens's compensate_probabilities is a first-order correction: the marginals it produces are not "
              "the configured probabilities (mutually exclusive siblings stay below target). Reproduced for "
              "equivalence (as HierarchyConfig(compensate='first_order') does); compensate='exact' solves for the "
              "exact marginals.")

