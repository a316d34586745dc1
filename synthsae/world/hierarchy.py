"""Hierarchy: a forest of features where a child can fire only when its parent fires.

Generative process (the same as SAELens/SynthSAEBench, so configs carry over):
1. every feature draws a *base* firing event with its base probability q_j (independently, or
   through the copula);
2. top-down, level by level, a child's event is dropped unless its parent fired;
3. under a mutually exclusive (ME) parent, if several children survived in a sample, one of them,
   chosen uniformly at random, is kept.

Base probabilities (`HierarchyConfig.compensate`):
- "none": q_j is the configured probability p_j, so the marginal of a child is lower than p_j.
- "exact": q is solved so that every marginal equals p_j *exactly* (for independent firing):
  q_c = p_c / P(parent) for ordinary children, and for ME siblings the fixed point
  q_c * I_c(q) = p_c / P(parent), where I_c = E[1 / (1 + #other siblings firing)]
  = int_0^1 prod_{s != c} (1 - q_s + q_s t) dt (E[t^K] is the generating function of K and
  int_0^1 t^K dt = 1/(K+1)).
- "first_order": SAELens's `compensate_probabilities=True`, a first-order approximation of the
  same goal: q_c = p_c / p_parent (the parent's *configured* p), times 1 + (sum of the siblings'
  p) / p_parent under a mutually exclusive parent (`first_order_factors`). Marginals are then
  not the configured ones (they are computed exactly and reported as `World.firing_probabilities`).
In both compensated modes a base probability above 1 raises instead of being clipped (SAELens
clips silently). With copula correlation the marginals are approximate.

Sampling. `apply_hierarchy` gates base events drawn for all features (the definition above).
`top_down_events` / `top_down_copula_events` draw the same law parents first: a child is drawn
only on rows where its parent survived (an ME group as one categorical per parent event), which
is exact because base events are independent given the parent's (and, with a copula, given the
shared latent factor). Their cost grows with the surviving events, not the gated-away ones.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np
import torch

from synthsae.config import Config
from synthsae.errors import fail, require
from synthsae.world.sampler import Bands, bernoulli_positions, make_bands, sort_events


COMPENSATIONS = ("none", "exact", "first_order")


@dataclasses.dataclass(frozen=True)
class HierarchyConfig(Config):
    """A forest built breadth-first over features 0, 1, 2, ... (roots get the lowest indices).

    roots: number of trees. branching: children per non-leaf node (int, or (min, max) drawn
    uniformly per node). depth: levels below the roots (1 = roots with leaf children).
    mutually_exclusive: share of parents (with >= 2 children) whose children are ME (0..1).
    compensate: how base probabilities are set from the configured ones: "none", "exact" (marginals
        equal the configured rates) or "first_order" (SAELens's correction); see the module doc.
        True and False are accepted as "exact" and "none" (and stored as those names).
    scale_children_by_parent: a child's magnitude is multiplied by parent value / parent mean.
    """

    roots: int = 16
    branching: int | tuple[int, int] = 4
    depth: int = 2
    mutually_exclusive: float = 0.0
    compensate: Literal["none", "exact", "first_order"] | bool = "none"
    scale_children_by_parent: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.compensate, bool):  # the older boolean form
            object.__setattr__(self, "compensate", "exact" if self.compensate else "none")
        super().__post_init__()

    def validate(self) -> None:
        require(self.compensate in COMPENSATIONS, "hierarchy.compensate", self.compensate,
                "not a compensation mode", " or ".join(map(repr, COMPENSATIONS)))
        require(self.roots >= 1, "hierarchy.roots", self.roots, "a forest needs a root", "an int >= 1")
        lo, hi = (self.branching, self.branching) if isinstance(self.branching, int) else self.branching
        require(1 <= lo <= hi, "hierarchy.branching", self.branching, "branching must be positive (min <= max)",
                "an int >= 1 or (min, max) with 1 <= min <= max")
        require(self.depth >= 1, "hierarchy.depth", self.depth, "depth counts levels below the roots", "an int >= 1")
        require(0.0 <= self.mutually_exclusive <= 1.0, "hierarchy.mutually_exclusive", self.mutually_exclusive,
                "a share of parents", "a float in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Forest:
    """The built structure. parents: (m,) long, -1 for roots and free features; level: (m,) long,
    0 for roots/free features; exclusive: (m,) bool, True for parents whose children are ME."""

    parents: torch.Tensor
    level: torch.Tensor
    exclusive: torch.Tensor

    @property
    def depth(self) -> int:
        return int(self.level.max())


def build_forest(config: HierarchyConfig, m: int, generator: torch.Generator) -> Forest:
    """Lay out the forest over features 0.. breadth-first; raise if it needs more than m features."""
    parents = torch.full((m,), -1, dtype=torch.long)
    level = torch.zeros(m, dtype=torch.long)
    frontier = list(range(config.roots))
    used = config.roots
    if used > m:
        fail("hierarchy.roots", config.roots, f"more roots than features (m = {m})", f"roots <= {m}")
    all_parents = []
    for depth in range(1, config.depth + 1):
        nxt = []
        for parent in frontier:
            if isinstance(config.branching, int):
                count = config.branching
            else:
                lo, hi = config.branching
                count = int(torch.randint(lo, hi + 1, (1,), generator=generator))
            if used + count > m:
                fail("hierarchy", f"roots={config.roots}, branching={config.branching}, depth={config.depth}",
                     f"this forest needs more than m = {m} features", "fewer roots, smaller branching or depth, or a larger m")
            children = list(range(used, used + count))
            used += count
            parents[children] = parent
            level[children] = depth
            all_parents.append(parent)
            nxt.extend(children)
        frontier = nxt
    exclusive = torch.zeros(m, dtype=torch.bool)
    n_children = torch.bincount(parents.clamp_min(0), minlength=m)
    eligible = [p for p in all_parents if int(n_children[p]) >= 2]
    n_me = int(len(eligible) * config.mutually_exclusive)
    if n_me:
        pick = torch.randperm(len(eligible), generator=generator)[:n_me]
        exclusive[torch.tensor(eligible)[pick]] = True
    return Forest(parents, level, exclusive)


@functools.lru_cache(maxsize=64)
def _legendre_01(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (cached: every ME group of a size reuses them)."""
    nodes, weights = np.polynomial.legendre.leggauss(count)
    return (nodes + 1) / 2, weights / 2


def _survival(q: np.ndarray) -> np.ndarray:
    """I_c = E[1/(1 + #others firing)] for independent siblings with probabilities q (exact quadrature:
    the integrand is a polynomial of degree len(q) - 1, which len(q) // 2 + 2 nodes integrate exactly)."""
    t, w = _legendre_01(len(q) // 2 + 2)
    factors = 1 - q[:, None] + q[:, None] * t[None, :]  # (siblings, nodes)
    total = np.prod(factors, axis=0)
    return (total[None, :] / factors) @ w


def _survival_batch(q: np.ndarray) -> np.ndarray:
    """`_survival` of every row of q (groups, siblings) at once."""
    t, w = _legendre_01(q.shape[1] // 2 + 2)
    factors = 1 - q[..., None] + q[..., None] * t  # (groups, siblings, nodes)
    return (np.prod(factors, axis=1, keepdims=True) / factors) @ w


def first_order_factors(forest: Forest, p: torch.Tensor) -> torch.Tensor:
    """SAELens's first-order compensation factors (its `compute_probability_correction_factors`), (m,)
    in p's dtype: base q = p * factors. A child gets 1 / p_parent (the parent's *configured* p), and a
    child of a mutually exclusive parent is further multiplied by 1 + (sum of its siblings' p) / p_parent;
    1 for features without a parent. The arithmetic follows SAELens step by step (Python floats,
    stored in p's dtype), so float32 probabilities give SAELens's float32 factors.
    """
    pn = p.numpy()
    factors = np.ones(len(pn), dtype=pn.dtype)  # numpy: a scalar update per child is cheap here
    children: dict[int, list[int]] = {}
    for child, parent in enumerate(forest.parents.tolist()):
        if parent >= 0:
            children.setdefault(parent, []).append(child)
    for parent, kids in children.items():
        own = float(pn[parent])
        if own <= 0:
            continue
        factors[kids] = 1.0 / own
        if bool(forest.exclusive[parent]) and len(kids) >= 2:
            kid_p = [float(pn[c]) for c in kids]
            total = sum(kid_p)
            for c, pc in zip(kids, kid_p):
                factors[c] *= 1.0 + max(0.0, total - pc) / own
    return torch.from_numpy(factors)


def base_probabilities(forest: Forest, p: torch.Tensor, compensate: str | bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Base probabilities q (m,) and exact marginals (m,) under independent firing (see module doc).

    compensate: "none", "exact" or "first_order" (True / False mean "exact" / "none")."""
    compensate = {True: "exact", False: "none"}.get(compensate, compensate)
    if compensate == "first_order":
        q = p * first_order_factors(forest, p)
        if bool((q > 1).any()):
            c = int(torch.argmax(q))
            fail("hierarchy.compensate", "first_order", f"feature {c} (rate {float(p[c]):.4g}) would need base "
                 f"probability {float(q[c]):.4g} > 1 ({int((q > 1).sum())} features above 1; SAELens clips them "
                 "silently)", "lower child rates, or compensate='exact' / 'none'")
        return base_probabilities(forest, q, "none")
    compensate = compensate == "exact"
    q = p.clone().numpy()
    marginal = q.copy()
    parents, level = forest.parents.numpy(), forest.level.numpy()
    children: dict[int, list[int]] = {}
    for child in np.argsort(level, kind="stable"):
        if parents[child] >= 0:
            children.setdefault(int(parents[child]), []).append(int(child))
    for parent, kid_list in children.items():  # parents appear in level order, so marginals are ready
            kids = np.array(kid_list)
            pp = marginal[parent]
            target = p.numpy()[kids] / pp if pp > 0 else np.zeros(len(kids))
            if not forest.exclusive[parent]:
                if compensate:
                    if (target > 1 + 1e-12).any():
                        c = kids[np.argmax(target)]
                        fail("hierarchy.compensate", "exact", f"feature {c} wants rate {p[c]:.4g} but its parent {parent} "
                             f"fires only with probability {pp:.4g}", "child rates <= parent rates, or compensate='first_order' / 'none'")
                    q[kids] = np.minimum(target, 1.0)
                marginal[kids] = pp * q[kids]
                continue
            if compensate:
                if target.sum() >= 1:
                    fail("hierarchy.compensate", "exact", f"mutually exclusive children of feature {parent} want a total "
                         f"conditional rate {target.sum():.4g} >= 1", "sibling rates summing below the parent's rate")
                qk = target.copy()
                for _ in range(500):
                    new = target / _survival(qk)
                    if (new > 1).any():
                        fail("hierarchy.compensate", "exact", f"mutually exclusive children of feature {parent} cannot "
                             "reach their target rates", "lower child rates, or compensate='first_order' / 'none'")
                    if np.abs(new - qk).max() < 1e-13:
                        qk = new
                        break
                    qk = new
                q[kids] = qk
            marginal[kids] = pp * q[kids] * _survival(q[kids])
    return torch.from_numpy(q), torch.from_numpy(marginal)


def apply_hierarchy(rows: torch.Tensor, cols: torch.Tensor, m: int, forest: Forest,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate base events top-down and resolve mutual exclusion. rows/cols: (nnz,) sorted by row*m+col."""
    parent_of = forest.parents
    for lvl in range(1, forest.depth + 1):
        keys = rows * m + cols
        at = forest.level[cols] == lvl
        pkeys = rows[at] * m + parent_of[cols[at]]
        pos = torch.searchsorted(keys, pkeys).clamp_max(len(keys) - 1)
        keep = torch.ones(len(rows), dtype=torch.bool)
        keep[at] = keys[pos] == pkeys
        rows, cols = rows[keep], cols[keep]
        me = (forest.level[cols] == lvl) & forest.exclusive[parent_of[cols].clamp_min(0)]
        idx = me.nonzero().squeeze(1)
        if len(idx):
            group = rows[idx] * m + parent_of[cols[idx]]
            order = torch.randperm(len(idx), generator=generator)
            group, idx = group[order], idx[order]
            srt = torch.sort(group, stable=True)
            group, idx = srt.values, idx[srt.indices]
            loser = torch.zeros(len(idx), dtype=torch.bool)
            loser[1:] = group[1:] == group[:-1]
            keep = torch.ones(len(rows), dtype=torch.bool)
            keep[idx[loser]] = False
            rows, cols = rows[keep], cols[keep]
    return rows, cols


@dataclasses.dataclass(frozen=True)
class _Level:
    """The draws of one level of the top-down sampler. Ordinary children: `kids` (K,), their parents,
    base probabilities and the rate bands of `bernoulli_positions`. Mutually exclusive groups: `me_parents` (P,), `me_kids` (P, w) padded
    with -1, `me_cum` (P, w) cumulative probabilities that child 0, 1, ... is the one that survives
    (padding repeats the total, so it is never chosen)."""

    kids: torch.Tensor
    kid_parents: torch.Tensor
    kid_q: torch.Tensor
    kid_bands: Bands
    me_parents: torch.Tensor
    me_kids: torch.Tensor
    me_cum: torch.Tensor


@dataclasses.dataclass(frozen=True)
class TopDown:
    """Plan for drawing a hierarchy top-down under independent firing (see `top_down_events`)."""

    m: int
    top: torch.Tensor  # (m0,) features without a parent (roots and free features)
    top_q: torch.Tensor  # (m0,) their base probabilities
    top_bands: Bands  # make_bands(top_q)
    levels: tuple[_Level, ...]


def top_down_plan(forest: Forest, q: torch.Tensor) -> TopDown:
    """Precompute the top-down sampler of `forest` with base probabilities q (m,).

    Under a mutually exclusive parent that fired, the gating sampler keeps child c with probability
    q_c * I_c(q) (I_c as in the module doc) and none with probability prod_s (1 - q_s): one
    categorical draw per parent event gives exactly that law.
    """
    m = len(forest.parents)
    qd = q.double()
    parents, level = forest.parents, forest.level
    top = torch.nonzero(parents < 0).squeeze(1)
    levels = []
    for lvl in range(1, forest.depth + 1):
        at = torch.nonzero(level == lvl).squeeze(1)
        me = forest.exclusive[parents[at]]
        kids = at[~me]
        # ME children sorted by parent, so each group is contiguous; padded tables (groups, width).
        me_at = at[me][torch.argsort(parents[at[me]], stable=True)]
        groups, sizes = torch.unique_consecutive(parents[me_at], return_counts=True)
        width = int(sizes.max()) if len(groups) else 0
        slot = torch.arange(len(me_at)) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
        row = torch.repeat_interleave(torch.arange(len(groups)), sizes)
        me_kids = torch.full((len(groups), width), -1, dtype=torch.long)
        me_kids[row, slot] = me_at
        me_cum = torch.zeros(len(groups), width, dtype=torch.float64)
        for size in sizes.unique().tolist():  # groups of one size share the quadrature: one batched call
            same = (sizes == size).nonzero().squeeze(1)
            qs = qd[me_kids[same, :size]].numpy()  # (groups, size)
            cum = torch.from_numpy(np.cumsum(qs * _survival_batch(qs), axis=1))
            me_cum[same, :size] = cum
            me_cum[same, size:] = cum[:, -1:]
        levels.append(_Level(kids, parents[kids], qd[kids], make_bands(qd[kids]), groups, me_kids, me_cum))
    return TopDown(m, top, qd[top], make_bands(qd[top]), tuple(levels))


def _grouped(rows: torch.Tensor, cols: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For events grouped by feature in increasing order: feature f owns rows[start[f] : start[f] + count[f]].
    Returns (count (m,), start (m,))."""
    count = torch.bincount(cols, minlength=m)
    return count, torch.cumsum(count, 0) - count


def _parent_events(parents: torch.Tensor, rows: torch.Tensor, count: torch.Tensor, start: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every event of every feature in `parents` (P,): (which, row), `which` indexing `parents`."""
    reps = count[parents]
    which = torch.repeat_interleave(torch.arange(len(parents)), reps)
    offsets = torch.arange(len(which)) - torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
    return which, rows[start[parents[which]] + offsets]


def _finish(rows_out: list[torch.Tensor], cols_out: list[torch.Tensor], m: int) -> tuple[torch.Tensor, torch.Tensor]:
    return sort_events(torch.cat(rows_out), torch.cat(cols_out), m)


def top_down_events(plan: TopDown, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n samples of independent firing gated by the hierarchy, parents before children.

    Equal in distribution to `independent_events` followed by `apply_hierarchy`, but a child is
    only drawn on the rows where its parent fired, so the cost grows with the surviving events,
    not with the base events that gating would discard. Returns (rows, cols) sorted by row*m+col.
    """
    pos, owner = bernoulli_positions(plan.top_q, torch.full((len(plan.top),), n, dtype=torch.long), generator,
                                     plan.top_bands)
    rows, cols = pos, plan.top[owner]  # the events of the level above, grouped by feature
    rows_out, cols_out = [rows], [cols]
    for lv in plan.levels:
        count, start = _grouped(rows, cols, plan.m)
        new_rows, new_cols = [], []
        if len(lv.kids):
            # Ordinary children: Bernoulli(q_c) over the list of rows where the parent fired.
            pos, owner = bernoulli_positions(lv.kid_q, count[lv.kid_parents], generator, lv.kid_bands)
            new_rows.append(rows[start[lv.kid_parents[owner]] + pos])
            new_cols.append(lv.kids[owner])
        if len(lv.me_parents):
            # Mutually exclusive groups: one categorical draw per parent event.
            group, parent_rows = _parent_events(lv.me_parents, rows, count, start)
            u = torch.rand(len(group), 1, generator=generator, dtype=torch.float64)
            slot = torch.searchsorted(lv.me_cum[group], u, right=True).squeeze(1)
            hit = slot < lv.me_kids.shape[1]
            new_rows.append(parent_rows[hit])
            new_cols.append(lv.me_kids[group[hit], slot[hit]])
        rows, cols = torch.cat(new_rows), torch.cat(new_cols)
        order = torch.argsort(cols, stable=True)  # group by feature for the next level
        rows, cols = rows[order], cols[order]
        rows_out.append(rows)
        cols_out.append(cols)
    return _finish(rows_out, cols_out, plan.m)


def top_down_copula_events(plan: TopDown, thresholds: torch.Tensor, factor: torch.Tensor, diag: torch.Tensor,
                           n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-copula firing (see `synthsae.world.sampler.copula_fired`) gated by the hierarchy, top-down.

    thresholds: (m,) Phi^-1(base q); factor (m, r), diag (m,): latent g = eta F^T + sqrt(diag) eps.
    Given the shared factor eta, the eps are independent per entry, so a child's latent is only
    drawn on rows where its parent survived (for an ME group, all siblings' latents, then one of
    those below threshold, uniformly): the same law as the dense draw + `apply_hierarchy`, at a dense
    cost of n x (features without a parent) instead of n x m. Returns (rows, cols) sorted by row*m+col.
    """
    F, sd, thr = factor.float(), diag.float().sqrt(), thresholds.float()
    eta = torch.randn(n, F.shape[1], generator=generator, dtype=torch.float32)
    top = plan.top
    # Feature-major (m0, n) so that nonzero groups the events by feature.
    g = torch.randn(len(top), n, generator=generator, dtype=torch.float32) * sd[top, None]
    g.addmm_(F[top], eta.T)
    which, rows = torch.nonzero(g < thr[top, None], as_tuple=True)
    cols = top[which]
    rows_out, cols_out = [rows], [cols]
    for lv in plan.levels:
        count, start = _grouped(rows, cols, plan.m)
        new_rows, new_cols = [], []
        if len(lv.kids):
            which, kid_rows = _parent_events(lv.kid_parents, rows, count, start)
            kid = lv.kids[which]
            eps = torch.randn(len(kid), generator=generator, dtype=torch.float32)
            latent = eps * sd[kid] + (eta[kid_rows] * F[kid]).sum(1)
            fired = latent < thr[kid]
            new_rows.append(kid_rows[fired])
            new_cols.append(kid[fired])
        if len(lv.me_parents):
            group, parent_rows = _parent_events(lv.me_parents, rows, count, start)
            sib = lv.me_kids[group]  # (E, w), -1 = padding
            valid = sib >= 0
            sib0 = sib.clamp_min(0)
            eps = torch.randn(sib.shape, generator=generator, dtype=torch.float32)
            latent = eps * sd[sib0] + (eta[parent_rows, None, :] * F[sib0]).sum(2)
            fired = (latent < thr[sib0]) & valid
            # Uniform choice among the K siblings that fired: the r-th of them, r = floor(u K).
            ranks = torch.cumsum(fired, 1)  # 1-based rank of each fired sibling
            k = ranks[:, -1]
            r = torch.floor(torch.rand(len(k), generator=generator, dtype=torch.float64) * k).long()
            slot = (fired & (ranks == (r + 1)[:, None])).long().argmax(1)
            hit = k > 0
            new_rows.append(parent_rows[hit])
            new_cols.append(sib[hit, slot[hit]])
        rows, cols = torch.cat(new_rows), torch.cat(new_cols)
        order = torch.argsort(cols, stable=True)
        rows, cols = rows[order], cols[order]
        rows_out.append(rows)
        cols_out.append(cols)
    return _finish(rows_out, cols_out, plan.m)
