"""Checks that a world's built parts (`World.state()`) are valid and agree with its config.

`check_state(config, state, source)` is what `World.from_state` and `World.load` run before they
accept tensors they did not build: every part present with its shape and dtype, every float finite,
unit-norm atoms, probabilities in [0, 1], a non-negative noise std, valid magnitude parameters, a
hierarchy that is a forest (parents in range, no self-loop, no cycle, levels that follow the parents)
and a copula whose factors have a unit diagonal. It also cross-checks what the config fixes cheaply
(noise std, bias norm, firing marginals without hierarchy, constant magnitude parameters), so a
config that says one thing cannot sit beside tensors that do another.

Errors name `source` (e.g. "World.from_state(state)" or the path of a world.safetensors) and the key:

    ValueError: world.safetensors['parents'] = 'feature 0 is its own parent' is invalid: ...
"""

from __future__ import annotations

import math

import torch

from synthsae.errors import fail, require

# A float32 round trip (e.g. parts imported from SAELens) moves values by ~1e-7 relative; these
# tolerances sit well above that and far below any meaningful edit.
NORM_TOL = 1e-4
CROSS_RTOL = 1e-5


def check_state(config, state: dict, source: str = "World.from_state(state)") -> None:
    """Raise ValueError (naming `source[key]`) unless `state` holds valid parts for `config`."""
    require(isinstance(state, dict), source, type(state).__name__, "the built parts are a dict of tensors",
            "a dict[str, torch.Tensor] (e.g. world.state())")
    m, d = config.m, config.d
    field = lambda key: f"{source}[{key!r}]"  # noqa: E731 - a one-line label
    floats = {"dictionary": (m, d), "bias": (d,), "noise_std": (), "q": (m,), "marginal": (m,)}
    ints: dict[str, tuple] = {}
    bools: dict[str, tuple] = {}
    if config.hierarchy is not None:
        ints.update(parents=(m,), level=(m,))
        bools.update(exclusive=(m,))
    if config.correlation is not None:
        floats.update(corr_factor=(m, None), corr_diag=(m,))
    for key, shape in {**floats, **ints, **bools}.items():
        value = state.get(key)
        ok = isinstance(value, torch.Tensor) and value.dim() == len(shape) and all(
            want is None or have == want for have, want in zip(value.shape, shape))
        require(ok, field(key), "missing" if value is None else
                (tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__),
                "a required part is missing or has the wrong shape",
                f"a tensor of shape {tuple('r' if s is None else s for s in shape)}")
    for key, value in state.items():
        require(isinstance(key, str) and isinstance(value, torch.Tensor), f"{source}[{key!r}]",
                type(value).__name__, "every part is a tensor", "a torch.Tensor")
        if key in ints or key == "groups":
            require(not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool,
                    field(key), str(value.dtype), "this part holds feature indices", "an integer tensor (torch.long)")
        elif key in bools or key == "tied":
            require(value.dtype == torch.bool, field(key), str(value.dtype), "this part holds flags", "a bool tensor")
        else:
            require(value.is_floating_point(), field(key), str(value.dtype), "this part holds real numbers",
                    "a floating-point tensor")
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                where = tuple(int(i) for i in bad.nonzero()[0]) if value.dim() else ()
                fail(field(key), f"{float(value[where])}" + (f" at index {list(where)}" if where else ""),
                     "every value must be finite "
                     "(NaN or inf would make every sample that touches it NaN)", "finite values")
    _check_dictionary(state["dictionary"], field("dictionary"))
    for key in ("q", "marginal"):
        v = state[key]
        require(bool(((v >= 0) & (v <= 1)).all()), field(key), "values outside [0, 1]", "these are probabilities",
                "values in [0, 1]")
    std = float(state["noise_std"])
    require(std >= 0, field("noise_std"), std, "a standard deviation is non-negative", "a float >= 0")
    _check_magnitudes(config, state, field)
    if config.hierarchy is not None:
        check_forest(state["parents"], state["level"], field)
    if "groups" in state:
        g = state["groups"]
        require(tuple(g.shape) == (m,) and bool(((g >= -1) & (g < m)).all()), field("groups"),
                tuple(g.shape), "subspace group ids are per feature, -1 for none", f"({m},) ints in [-1, {m})")
    if config.correlation is not None:
        F, diag = state["corr_factor"], state["corr_diag"]
        require(bool((diag >= 0).all()), field("corr_diag"), f"min {float(diag.min()):.4g}",
                "the copula's independent part is a variance", "values >= 0")
        unit = (F.double() ** 2).sum(1) + diag.double()
        err = float((unit - 1).abs().max()) if m else 0.0
        require(err <= NORM_TOL, field("corr_factor"), f"max |rowsum(F^2) + diag - 1| = {err:.3g}",
                "C = F F^T + diag(corr_diag) must be a correlation matrix (unit diagonal)", "a unit diagonal")
    _cross_check(config, state, field)


def _check_dictionary(D: torch.Tensor, label: str) -> None:
    """Unit-norm rows; written as `not (|norm - 1| <= tol)` so a NaN norm fails too."""
    norms = D.double().norm(dim=1)
    bad = ~((norms - 1).abs() <= NORM_TOL)
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        fail(label, f"row {j} with norm {float(norms[j]):.6g}", "atoms are unit norm", "unit-norm rows")


def _check_magnitudes(config, state, field) -> None:
    law = type(config.magnitudes)
    params = {k[4:]: v for k, v in state.items() if k.startswith("mag.")}
    for key in law.parameters():
        require(key in params, field(f"mag.{key}"), "missing",
                f"config.magnitudes ({config.magnitudes.kind}) needs its per-feature parameters",
                f"a ({config.m},) tensor 'mag.{key}'")
        value = params[key]
        require(tuple(value.shape) == (config.m,), field(f"mag.{key}"), tuple(value.shape),
                "magnitude parameters are per feature", f"a tensor of shape ({config.m},)")
    problem = law.check_parameters(params)
    if problem is not None:
        key, why, expected = problem
        fail(field(f"mag.{key}"), "its values", why, expected)
    means = law.means(params)
    require(bool(torch.isfinite(means).all()), field("mag.*"), "non-finite mean magnitudes",
            "the parameters give an infinite or undefined mean", "parameters with finite means")


def check_forest(parents: torch.Tensor, level: torch.Tensor, field) -> None:
    """parents (m,) in [-1, m) with no self-loop and no cycle; level (m,) = 0 at roots and parent's + 1 below."""
    m = len(parents)
    out = (parents < -1) | (parents >= m)
    if bool(out.any()):
        j = int(out.nonzero()[0])
        fail(field("parents"), f"parent {int(parents[j])} of feature {j}", "a parent is a feature index, or -1 "
             "for none", f"values in [-1, {m - 1}]")
    own = parents == torch.arange(m)
    if bool(own.any()):
        j = int(own.nonzero()[0])
        fail(field("parents"), f"feature {j} is its own parent", "a hierarchy is a forest (no self-loops)",
             "parents[j] != j")
    # Pointer doubling: after ceil(log2(m)) + 1 rounds every feature of an acyclic forest has reached -1.
    jump = parents.clone()
    for _ in range(max(1, math.ceil(math.log2(max(m, 2)))) + 1):
        jump = torch.where(jump >= 0, jump[jump.clamp_min(0)], jump)  # the 2^k-th ancestor, then 2^(k+1)-th
    cyc = jump >= 0
    if bool(cyc.any()):
        j = int(cyc.nonzero()[0])
        fail(field("parents"), f"feature {j} is on or below a cycle", "a hierarchy is a forest: following parents "
             "must end at a root", "acyclic parents")
    want = torch.where(parents >= 0, level[parents.clamp_min(0)] + 1, torch.zeros_like(level))
    wrong = level != want
    if bool(wrong.any()):
        j = int(wrong.nonzero()[0])
        fail(field("level"), f"level {int(level[j])} of feature {j}", "a root has level 0 and a child its "
             "parent's level + 1", f"level {int(want[j])}")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CROSS_RTOL * max(1.0, abs(a), abs(b))


def _cross_check(config, state, field) -> None:
    """What the config fixes cheaply must agree with the tensors."""
    if config.noise.snr is None:
        std = float(state["noise_std"])
        require(_close(std, config.noise.std), field("noise_std"), std,
                f"the config says noise.std = {config.noise.std}", f"{config.noise.std} (the config's value)")
    norm = float(state["bias"].double().norm())
    require(_close(norm, config.noise.bias_norm), field("bias"), f"a bias of norm {norm:.6g}",
            f"the config says noise.bias_norm = {config.noise.bias_norm}", "a bias with the config's norm")
    if config.hierarchy is None and "groups" not in state:
        p = config.firing.probabilities(config.m)
        for key in ("q", "marginal"):
            gap = (state[key].double() - p).abs()
            if float(gap.max()) > CROSS_RTOL:
                j = int(gap.argmax())
                fail(field(key), f"{float(state[key][j]):.6g} for feature {j}", f"the config's firing law "
                     f"({config.firing.kind}) gives {float(p[j]):.6g}", "the rates of config.firing")
    for name, value in _scalar_parameters(config.magnitudes):
        t = state.get(f"mag.{name}")
        if t is not None and not bool(((t.double() - value).abs() <= CROSS_RTOL * max(1.0, abs(value))).all()):
            fail(field(f"mag.{name}"), f"values {float(t.min()):.6g} .. {float(t.max()):.6g}",
                 f"the config says magnitudes.{name} = {value}", f"{value} for every feature")


def _scalar_parameters(magnitudes):
    import dataclasses

    for f in dataclasses.fields(magnitudes):
        value = getattr(magnitudes, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f.name, float(value)
