"""Hierarchy: a forest of features where a child can fire only when its parent fires.

Generative process (the same as SAELens/SynthSAEBench, so configs carry over):
1. every feature draws a *base* firing event with its base probability q_j (independently, or
   through the copula);
2. top-down, level by level, a child's event is dropped unless its parent fired;
3. under a mutually exclusive (ME) parent, if several children survived in a sample, one of them,
   chosen uniformly at random, is kept.

Base probabilities. Without compensation q_j is the configured probability p_j, so the marginal
of a child is lower than p_j. With `compensate=True` q is solved so that every marginal equals
p_j *exactly* (for independent firing): q_c = p_c / P(parent) for ordinary children, and for ME
siblings the fixed point q_c * I_c(q) = p_c / P(parent), where
I_c = E[1 / (1 + #other siblings firing)] = int_0^1 prod_{s != c} (1 - q_s + q_s t) dt
(E[t^K] is the generating function of K and int_0^1 t^K dt = 1/(K+1)). Targets that cannot be
reached (q > 1) raise instead of being clipped. SAELens's compensation is a first-order
approximation of the same goal. With copula correlation the marginals are approximate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from synthsae.config import Config
from synthsae.errors import fail, require


@dataclasses.dataclass(frozen=True)
class HierarchyConfig(Config):
    """A forest built breadth-first over features 0, 1, 2, ... (roots get the lowest indices).

    roots: number of trees. branching: children per non-leaf node (int, or (min, max) drawn
    uniformly per node). depth: levels below the roots (1 = roots with leaf children).
    mutually_exclusive: share of parents (with >= 2 children) whose children are ME (0..1).
    compensate: solve base probabilities so marginals equal the configured ones (see module doc).
    scale_children_by_parent: a child's magnitude is multiplied by parent value / parent mean.
    """

    roots: int = 16
    branching: int | tuple[int, int] = 4
    depth: int = 2
    mutually_exclusive: float = 0.0
    compensate: bool = False
    scale_children_by_parent: bool = False

    def validate(self) -> None:
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


def _survival(q: np.ndarray) -> np.ndarray:
    """I_c = E[1/(1 + #others firing)] for independent siblings with probabilities q (exact quadrature)."""
    nodes, weights = np.polynomial.legendre.leggauss(len(q) // 2 + 2)
    t, w = (nodes + 1) / 2, weights / 2
    factors = 1 - q[:, None] + q[:, None] * t[None, :]  # (siblings, nodes)
    total = np.prod(factors, axis=0)
    return (total[None, :] / factors) @ w


def base_probabilities(forest: Forest, p: torch.Tensor, compensate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Base probabilities q (m,) and exact marginals (m,) under independent firing (see module doc)."""
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
                        fail("hierarchy.compensate", True, f"feature {c} wants rate {p[c]:.4g} but its parent {parent} "
                             f"fires only with probability {pp:.4g}", "child rates <= parent rates, or compensate=False")
                    q[kids] = np.minimum(target, 1.0)
                marginal[kids] = pp * q[kids]
                continue
            if compensate:
                if target.sum() >= 1:
                    fail("hierarchy.compensate", True, f"mutually exclusive children of feature {parent} want a total "
                         f"conditional rate {target.sum():.4g} >= 1", "sibling rates summing below the parent's rate")
                qk = target.copy()
                for _ in range(500):
                    new = target / _survival(qk)
                    if (new > 1).any():
                        fail("hierarchy.compensate", True, f"mutually exclusive children of feature {parent} cannot "
                             "reach their target rates", "lower child rates, or compensate=False")
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
