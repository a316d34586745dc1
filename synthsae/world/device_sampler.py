"""The device sampler: a World's whole draw as batched dense torch ops on the device of its generator.

The reference sampler (`World.sample_codes`, `synthsae.world.sampler`) draws sparsely on the CPU:
its cost follows the active features, but it runs on one CPU thread (about 20k samples/s for
SynthSAEBench-16k), far too slow to feed a GPU that trains on hundreds of millions of samples.
This sampler draws the *same law* with dense (rows, m) tensor ops that a GPU runs in parallel:

1. base firing for every (feature, sample), on a feature-major (m + 1, rows) bool mask (row m
   is a dummy, always False, that padded table entries point at):
   - independent: U < q_j, U uniform float64 (so rates far below float32's 2^-24 stay exact);
   - Gaussian copula: g = eta F^T + sqrt(diag) eps (float32, as the reference), fired when
     g_j < Phi^-1(q_j);
   - exactly k: the k largest of m float64 uniforms per row, a uniformly random k-subset;
2. hierarchy, level by level from the roots: an ordinary child's event is kept only where its
   parent fired; for a mutually exclusive parent, the children whose events survived the gate
   (K of them) keep one, the r-th with r = floor(u K), u uniform: a uniform choice, as in the
   definition (`synthsae.world.hierarchy`);
3. the events (`torch.nonzero`, row-major, so sorted by row * m + col) get magnitudes from the
   world's magnitude law (its `sample`, run on the device), tied subspace groups are expanded,
   children are scaled by their parent (`scale_children_by_parent`), and zero draws are dropped,
   in the reference's order;
4. x = z D + bias (+ noise), with D on the device.

Cost O(n m) (plus O(n m r) for a rank-r copula) instead of the reference's O(active features);
on a GPU that is the better trade. Rows are drawn in chunks of about CHUNK_ENTRIES[device type]
mask entries, bounding memory. Same generator state, same samples (for a given device type); the
samples differ from the reference sampler's (other draws, other order), the law is the same
(checked by two-sample tests against the reference: tests/world/test_device_sampler.py).

`World.sample(n, seed, device, sampler=...)` selects it: "auto" (default) uses it when the device
is CUDA, "device" forces it (e.g. on the CPU, for tests), "reference" forces the CPU sampler.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from synthsae._rng import Seed, generator
from synthsae.errors import fail, require
from synthsae.world.codes import Batch, SparseCodes
from synthsae.world.firing import ExactlyK
from synthsae.world.sampler import probit

if TYPE_CHECKING:  # world.py imports this module; the type is only needed for annotations
    from synthsae.world.world import World

SAMPLERS = ("auto", "reference", "device")

# Mask entries (rows x features) drawn per chunk: about 0.5 GiB of float32 latents on a GPU, small
# enough on a CPU to stay in memory next to the reference (4 M entries, 16 MiB).
CHUNK_ENTRIES = {"cuda": 1 << 27}
CHUNK_ENTRIES_DEFAULT = 1 << 22


def uses_device_sampler(sampler: str, device: torch.device) -> bool:
    """Whether `World.sample(..., sampler=sampler)` on `device` runs this sampler (else the reference)."""
    require(isinstance(sampler, str) and sampler in SAMPLERS, "sampler", sampler, "not a sampler name",
            " or ".join(map(repr, SAMPLERS)) + " ('auto': the device sampler on CUDA, the reference elsewhere)")
    if sampler == "auto":
        return device.type == "cuda"
    return sampler == "device"


def device_generator(seed: Seed, device: torch.device) -> torch.Generator:
    """A generator on `device` from an int seed, or the given generator if it lives on `device`."""
    if not isinstance(seed, torch.Generator):
        return generator(seed, device)
    have = seed.device
    if have.type != device.type or (device.index is not None and have.index not in (None, device.index)):
        fail("seed", f"a torch.Generator on {have}", f"the device sampler draws on {device}, and torch draws "
             "there only from a generator on that device", f"an int seed, a torch.Generator(device={str(device)!r}), "
             "or sampler='reference' (draw on the CPU, then move the batch)")
    return seed


@dataclasses.dataclass(frozen=True)
class _Level:
    """One hierarchy level on the device. kids (K,), kid_parents (K,): ordinary children and their
    parents. me_parents (P,), me_kids (P, w): mutually exclusive groups, padded with m (the dummy
    row of the mask)."""

    kids: torch.Tensor
    kid_parents: torch.Tensor
    me_parents: torch.Tensor
    me_kids: torch.Tensor


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """A world's sampling tables on one device (built once per world and device, see `device_plan`).

    firing: "exactly_k", "copula" or "independent". q (m,) float64 base probabilities; thr (m,)
    float32 copula thresholds Phi^-1(q); factor (m, r) and sd (m,) float32 the copula's F and
    sqrt(diag); levels: the hierarchy, roots first; parents (m,) long and means (m,) float64 for
    scaling children (None when children are not scaled); mag: the magnitude parameters (m,)
    float64; groups (m,) long and members (G, rank) long for tied subspace groups.
    """

    device: torch.device
    m: int
    firing: str
    k: int
    q: torch.Tensor | None
    thr: torch.Tensor | None
    factor: torch.Tensor | None
    sd: torch.Tensor | None
    levels: tuple[_Level, ...]
    parents: torch.Tensor | None
    means: torch.Tensor | None
    mag: dict[str, torch.Tensor]
    groups: torch.Tensor | None
    members: torch.Tensor | None


def _levels(world: "World", dev: torch.device) -> tuple[_Level, ...]:
    forest, m = world._forest, world.m
    out = []
    for lvl in range(1, forest.depth + 1):
        at = torch.nonzero(forest.level == lvl).squeeze(1)
        me = forest.exclusive[forest.parents[at]]
        kids = at[~me]
        me_at = at[me]
        groups, slot_of = torch.unique(forest.parents[me_at], return_inverse=True)
        sizes = torch.bincount(slot_of, minlength=len(groups))
        width = int(sizes.max()) if len(groups) else 0
        me_kids = torch.full((len(groups), width), m, dtype=torch.long)
        order = torch.argsort(slot_of, stable=True)
        slot = torch.arange(len(me_at)) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
        me_kids[slot_of[order], slot] = me_at[order]
        out.append(_Level(kids.to(dev), forest.parents[kids].to(dev), groups.to(dev), me_kids.to(dev)))
    return tuple(out)


def device_plan(world: "World", device: str | torch.device) -> DevicePlan:
    """The world's `DevicePlan` on `device` (cached on the world)."""
    dev = torch.device(device)
    key = ("device_plan", str(dev))
    cache = world._device_cache
    if key in cache:
        return cache[key]
    cfg, state, m = world.config, world._state, world.m
    q = world.base_probabilities.double()
    if isinstance(cfg.firing, ExactlyK):
        firing, k = "exactly_k", cfg.firing.k
    elif cfg.correlation is not None:
        firing, k = "copula", 0
    else:
        firing, k = "independent", 0
    copula = firing == "copula"
    hier = world._forest is not None
    scale = hier and cfg.hierarchy.scale_children_by_parent
    tied = world.groups is not None and world.tied
    members = None
    if tied:
        groups = world.groups
        members = torch.stack([(groups == g).nonzero().squeeze(1) for g in range(int(groups.max()) + 1)])
    plan = DevicePlan(
        device=dev, m=m, firing=firing, k=k,
        q=q.to(dev) if firing == "independent" else None,
        thr=probit(q).float().to(dev) if copula else None,
        factor=state["corr_factor"].float().to(dev) if copula else None,
        sd=state["corr_diag"].float().sqrt().to(dev) if copula else None,
        levels=_levels(world, dev) if hier else (),
        parents=world._forest.parents.to(dev) if scale else None,
        means=world.mean_magnitudes.double().to(dev) if scale else None,
        mag={name: v.double().to(dev) for name, v in world._mag.items()},
        groups=world.groups.to(dev) if tied else None,
        members=members.to(dev) if tied else None,
    )
    cache[key] = plan
    return plan


def _base_fired(plan: DevicePlan, n: int, gen: torch.Generator) -> torch.Tensor:
    """(m + 1, n) bool, feature-major: base firing events; row m (the padding target) is always False.

    Feature-major so that the hierarchy's gathers of a feature's events read contiguous rows."""
    dev, m = plan.device, plan.m
    fired = torch.zeros(m + 1, n, dtype=torch.bool, device=dev)
    if plan.firing == "exactly_k":
        scores = torch.rand(n, m, generator=gen, dtype=torch.float64, device=dev)
        chosen = torch.zeros(n, m, dtype=torch.bool, device=dev)
        chosen.scatter_(1, torch.topk(scores, plan.k, dim=1, sorted=False).indices, True)
        fired[:m] = chosen.T
    elif plan.firing == "copula":
        eta = torch.randn(plan.factor.shape[1], n, generator=gen, dtype=torch.float32, device=dev)
        g = torch.randn(m, n, generator=gen, dtype=torch.float32, device=dev).mul_(plan.sd[:, None])
        g.addmm_(plan.factor, eta)
        torch.lt(g, plan.thr[:, None], out=fired[:m])
    else:
        fired[:m] = torch.rand(m, n, generator=gen, dtype=torch.float64, device=dev) < plan.q[:, None]
    return fired


def _gate(plan: DevicePlan, fired: torch.Tensor, gen: torch.Generator) -> None:
    """Apply the hierarchy to `fired` (m + 1, n) in place, roots first."""
    for lv in plan.levels:
        if len(lv.kids):
            fired[lv.kids] &= fired[lv.kid_parents]
        if len(lv.me_parents):
            # Per event of an ME parent (few: P x n entries hold only the parent's firing rate of them),
            # its siblings' surviving events; keep one, the r-th with r uniform in 0 .. count - 1.
            group, row = torch.nonzero(fired[lv.me_parents], as_tuple=True)
            sib = lv.me_kids[group]  # (E, w), padding -> the dummy row m
            cand = fired[sib, row.unsqueeze(1)]
            count = cand.sum(1)
            r = _uniform_index(count, gen)
            pick = cand & (torch.cumsum(cand, 1) == (r + 1).unsqueeze(1))
            fired[lv.me_kids.reshape(-1)] = False  # (a child whose parent did not fire is off anyway)
            # One write per parent event, True at the chosen child (False at slot 0 if none survived):
            # the (child, row) targets are distinct, and no boolean mask (a device sync) is needed.
            chosen = sib.gather(1, pick.long().argmax(1, keepdim=True)).squeeze(1)
            fired[chosen, row] = pick.any(1)


def _uniform_index(count: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """r uniform in 0 .. count - 1 per entry (floor(u count), u uniform float64; -1 where count = 0)."""
    u = torch.rand(len(count), generator=gen, dtype=torch.float64, device=count.device)
    return torch.minimum((u * count).long(), count - 1)


def _sphere(count: int, dim: int, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    g = torch.randn(count, dim, generator=gen, dtype=torch.float64, device=dev)
    return g / g.norm(dim=1, keepdim=True)


def _expand_tied(plan: DevicePlan, rows, cols, values, gen):
    """Each group leader's event becomes the whole group with code a * u, u uniform on the sphere."""
    leader = plan.groups[cols] >= 0
    if not bool(leader.any()):
        return rows, cols, values
    free = ~leader
    g = plan.groups[cols[leader]]
    rank = plan.members.shape[1]
    u = _sphere(len(g), rank, gen, plan.device) * values[leader].unsqueeze(1)
    rows = torch.cat([rows[free], rows[leader].repeat_interleave(rank)])
    cols = torch.cat([cols[free], plan.members[g].reshape(-1)])
    values = torch.cat([values[free], u.reshape(-1)])
    order = torch.argsort(rows * plan.m + cols)
    return rows[order], cols[order], values[order]


def _scale_children(plan: DevicePlan, rows, cols, values):
    """A child's value times its parent's (scaled) value over the parent's mean magnitude, top-down.

    Every event's parent event is found once (rows sorted by row * m + col); then `depth` passes
    of v_c <- raw_c * v_parent / mean_parent settle one more level each (roots keep their draw),
    with no per-level selection (a device sync)."""
    parent = plan.parents[cols]
    child = parent >= 0
    keys = rows * plan.m + cols
    pos = torch.searchsorted(keys, rows * plan.m + torch.where(child, parent, cols))
    ratio_den = plan.means[parent.clamp_min(0)]
    out = values
    for _ in range(len(plan.levels)):
        out = torch.where(child, values * out[pos] / ratio_den, values)
    return out


def _chunk_codes(world: "World", plan: DevicePlan, n: int, gen: torch.Generator):
    fired = _base_fired(plan, n, gen)
    _gate(plan, fired, gen)
    # nonzero of the sample-major copy lists events sorted by row * m + col
    rows, cols = torch.nonzero(fired[:plan.m].T.contiguous(), as_tuple=True)
    del fired
    values = type(world.config.magnitudes).sample(plan.mag, cols, gen)
    if plan.groups is not None:
        rows, cols, values = _expand_tied(plan, rows, cols, values, gen)
    if plan.parents is not None:
        values = _scale_children(plan, rows, cols, values)
    nonzero = values != 0  # a magnitude draw of 0 means the feature did not fire
    if not bool(nonzero.all()):
        rows, cols, values = rows[nonzero], cols[nonzero], values[nonzero]
    return rows, cols, values


def sample_codes_on_device(world: "World", n: int, seed: Seed = 0, device: str | torch.device = "cpu") -> SparseCodes:
    """The true codes of n samples drawn by the device sampler on `device` (values float64).

    seed: an int, or a torch.Generator on `device` (it advances). Rows are drawn in chunks of
    about CHUNK_ENTRIES mask entries; the result is one `SparseCodes` sorted by (row, col).
    """
    require(isinstance(n, int) and not isinstance(n, bool) and n >= 1, "n", n,
            "the number of samples must be a positive int", "an int >= 1")
    dev = torch.device(device)
    gen = device_generator(seed, dev)
    plan = device_plan(world, dev)
    step = max(1, CHUNK_ENTRIES.get(dev.type, CHUNK_ENTRIES_DEFAULT) // (plan.m + 1))
    parts = []
    for start in range(0, n, step):
        rows, cols, values = _chunk_codes(world, plan, min(step, n - start), gen)
        parts.append((rows + start, cols, values))
    if len(parts) == 1:
        rows, cols, values = parts[0]
    else:
        rows, cols, values = (torch.cat(t) for t in zip(*parts))
    return SparseCodes(rows, cols, values, n, world.m)


def sample_on_device(world: "World", n: int, seed: Seed, device: torch.device, dtype: torch.dtype) -> Batch:
    """`World.sample` through the device sampler: Batch(x (n, d), codes, noise (n, d)) on `device`."""
    dev = torch.device(device)
    gen = device_generator(seed, dev)
    codes = sample_codes_on_device(world, n, gen, dev).to(dev, dtype)
    x = codes.matmul(world._on(dev, dtype), add=world._state_on("bias", dev, dtype))
    if world.noise_std > 0:
        noise = (torch.randn(n, world.d, generator=gen, dtype=torch.float32, device=dev) * world.noise_std).to(dtype)
        x += noise
    else:
        noise = torch.zeros(world.d, device=dev, dtype=dtype).expand(n, -1)
    return Batch(x=x, codes=codes, noise=noise)
