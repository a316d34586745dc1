# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 — Worlds: planting the ground truth
#
# A **world** is the thing an SAE never gets to see on real models: the true features. It holds
#
# * a **dictionary** `D` of shape `(m, d)` — `m` unit-norm atoms, **one atom per row**;
# * a **firing law** — how often each feature is active (plus optional correlation and hierarchy);
# * **magnitudes** — the value a feature takes when it fires;
# * optional **noise** and a bias.
#
# A sample is `x = z D (+ bias + noise)` where the code `z` is sparse. Because we planted `D` and we
# get `z` back with every sample, every claim about what an SAE "found" becomes checkable.
#
# This notebook builds worlds, looks at their geometry (how similar the atoms are), their firing
# statistics and a hierarchy, and saves / loads one.
#
# **Size.** `SYNTHSAE_NOTEBOOK_SCALE=small` shrinks everything (the test suite uses it); figures go
# to `SYNTHSAE_NOTEBOOK_OUT` (default: a fresh temporary folder).

# %%
import matplotlib.pyplot as plt  # imported first so Jupyter's inline backend is active
import numpy as np
import torch

from synthsae.notebook import Walkthrough
from synthsae.world import (Coherence, Constant, ExactlyK, Gaussian, Geometric, LinearLaw, Orthonormal, Spiked,
                            Subspaces, Uniform, World, WorldConfig, Zipf)

nb = Walkthrough.from_env("nb01")  # SYNTHSAE_NOTEBOOK_SCALE=small shrinks it; figures go to nb.out
SMALL, OUT, show = nb.small, nb.out, nb.show
N = 2_000 if SMALL else 50_000  # samples used for empirical statistics


print("figures go to", OUT)

# %% [markdown]
# ## A preset world
#
# `World.preset(name)` gives named worlds: `toy` (fast, for tests and notebooks), `aen-spiked`
# (the adaptive elastic-net paper's coherent dictionaries), `hierarchy` (for absorption),
# `subspaces` (for seed stability) and `synthsaebench-16k`. `describe()` summarises one.

# %%
world = World.preset("toy")
print(world.describe())
print("\ndictionary:", tuple(world.dictionary.shape), "(m, d): atoms are rows;",
      "row norms in", [round(float(v), 6) for v in world.dictionary.norm(dim=1).aminmax()])

# %% [markdown]
# ## Sampling
#
# `world.sample(n, seed)` returns a `Batch`: `x` (n, d) and the true sparse `codes` (coordinate
# form: `rows`, `cols`, `values`). The same seed always gives the same samples, and `x` is exactly
# `codes.to_dense() @ D` here (this world has no noise or bias).

# %%
batch = world.sample(N, seed=0)
z = batch.codes.to_dense()
print("x:", tuple(batch.x.shape), " codes: nnz =", batch.codes.nnz)
print("max |x - z D| =", float((batch.x - z.float() @ world.dictionary).abs().max()))
print("same seed, same samples:", torch.equal(world.sample(64, seed=3).x, world.sample(64, seed=3).x))
print("first sample's active features:", batch.codes.cols[batch.codes.rows == 0].tolist(),
      "values", [round(v, 3) for v in batch.codes.values[batch.codes.rows == 0].tolist()])

# %% [markdown]
# ## Firing laws
#
# Real SAE features are heavy-tailed: a few fire often, most rarely. The firing law sets each
# feature's probability `p_j`; the expected number of active features per sample (the true **L0**)
# is `Σ_j p_j`. Below, the configured rates of five laws, and for the toy world the rates measured
# on samples against the configured ones (they should sit on the diagonal).

# %%
m = 256
laws = {"constant(p=0.05)": Constant(p=0.05), "zipf(exponent=1)": Zipf(exponent=1.0, max_p=0.3, min_p=0.005),
        "linear(0.2 → 0.01)": LinearLaw(max_p=0.2, min_p=0.01), "geometric(0.3, ratio 0.98)": Geometric(p0=0.3, ratio=0.98),
        "exactly_k(k=5)": ExactlyK(k=5)}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for label, law in laws.items():
    p = law.probabilities(m).numpy()
    axes[0].plot(np.sort(p)[::-1], label=f"{label}: E[L0] = {p.sum():.1f}")
axes[0].set_yscale("log")
axes[0].set_xlabel("feature rank")
axes[0].set_ylabel("firing probability")
axes[0].set_title(f"configured firing laws (m = {m})", fontsize=10)
axes[0].legend(fontsize=7)
counts = torch.bincount(batch.codes.cols, minlength=world.m).numpy() / N
p_true = world.firing_probabilities.numpy()
axes[1].loglog(p_true, np.maximum(counts, 0.5 / N), ".", alpha=0.6)
axes[1].plot([p_true.min(), p_true.max()], [p_true.min(), p_true.max()], "k--", lw=1, label="measured = configured")
axes[1].set_xlabel("configured rate")
axes[1].set_ylabel(f"measured rate ({N:,} samples)")
axes[1].set_title("toy world: sampler matches the law", fontsize=10)
axes[1].legend(fontsize=8)
show(fig, "firing_rates")

# %% [markdown]
# ## L0: how many features are active per sample
#
# With independent firing the number of active features is a sum of Bernoullis (roughly Poisson
# around `Σ p_j`); `exactly_k` fixes it. An SAE's own L0 is later compared with this true L0.

# %%
exact_world = World(WorldConfig(d=32, m=128, firing=ExactlyK(k=4), magnitudes=Uniform(low=0.5, high=1.5)))
l0_toy = batch.codes.l0().numpy()
l0_exact = exact_world.sample(N, seed=0).codes.l0().numpy()
fig, ax = plt.subplots(figsize=(6, 3.6))
bins = np.arange(0, max(l0_toy.max(), 6) + 2) - 0.5
ax.hist(l0_toy, bins=bins, alpha=0.7, label=f"toy (zipf): mean {l0_toy.mean():.2f}, expected {world.expected_l0():.2f}")
ax.hist(l0_exact, bins=bins, alpha=0.7, label="exactly_k(k=4)")
ax.set_xlabel("active features per sample (true L0)")
ax.set_ylabel("samples")
ax.legend(fontsize=8)
show(fig, "l0_histogram")

# %% [markdown]
# ## Geometry: how similar are the atoms?
#
# The dictionary's geometry decides how hard sparse coding is. Its **coherence** μ = max_{i≠j}
# |cos(d_i, d_j)| enters every recovery guarantee (e.g. Tropp: exact recovery of any support of
# size k < (1 + 1/μ)/2). The geometries:
#
# * `gaussian` — random unit atoms (cosines ~ ±1/√d);
# * `orthonormal` — m ≤ d orthogonal atoms: the easy case, sparse codes in closed form;
# * `coherence(target)` — random atoms pushed apart until μ ≤ target;
# * `spiked(rho)` — every atom shares one direction: d_j ∝ √(1−ρ) u_j + √ρ v, so all cosines are
#   ≈ ρ (the adaptive elastic-net paper's setup, where the Lasso's irrepresentable condition fails);
# * `subspaces` — groups of atoms spanning low-rank subspaces (orthonormal inside a group).
#
# The Gram matrices |D Dᵀ| of the first 48 atoms and the distribution of off-diagonal |cos|:

# %%
d, m = 32, 96
geometries = {"gaussian": Gaussian(), "orthonormal (m = d)": Orthonormal(), "coherence(0.45)": Coherence(target=0.45),
              "spiked(rho=0.5)": Spiked(rho=0.5), "subspaces(8 × rank 4)": Subspaces(n_groups=8, rank=4, tied=True)}
worlds = {name: World(WorldConfig(d=d, m=d if name.startswith("orthonormal") else m, dictionary=g))
          for name, g in geometries.items()}
fig, axes = plt.subplots(2, len(worlds), figsize=(3.2 * len(worlds), 6.2))
for (name, w), ax_g, ax_h in zip(worlds.items(), axes[0], axes[1]):
    G = (w.dictionary @ w.dictionary.T).abs().numpy()
    ax_g.imshow(G[:48, :48], vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax_g.set_title(f"{name}\ncoherence {w.coherence():.2f}", fontsize=9)
    ax_g.set_xticks([])
    ax_g.set_yticks([])
    off = G[~np.eye(len(G), dtype=bool)]
    ax_h.hist(off, bins=np.linspace(0, 1, 41), color="tab:gray")
    ax_h.set_xlabel("|cos| between distinct atoms")
    ax_h.set_yscale("log")
axes[0, 0].set_ylabel("|D Dᵀ| (first 48 atoms)")
axes[1, 0].set_ylabel("atom pairs")
fig.suptitle(f"dictionary geometries, d = {d}", fontsize=11)
show(fig, "gram_matrices")

# %% [markdown]
# The orthonormal Gram is the identity; gaussian and `coherence` atoms have small off-diagonal
# cosines (the coherence geometry cuts the tail at its target); the spiked dictionary has **every**
# cosine near ρ = 0.5 — a uniformly bright Gram; the subspace dictionary looks like a gaussian one
# except that inside each 4-atom block the atoms are exactly orthogonal (zero cosines next to the
# diagonal, hard to see at this size); what matters there is the *span* of a block (notebook 05).
#
# ## Hierarchy
#
# The `hierarchy` preset plants 16 trees (branching 3, depth 2): a child can only fire when its
# parent fires, and half of the parents have **mutually exclusive** children (at most one child per
# sample). This is the structure behind *feature absorption* (notebook 06). We check both rules on
# samples using only the public `world.parents` (−1 for roots and free features).

# %%
hworld = World.preset("hierarchy")
print(hworld.describe())
hb = hworld.sample(N, seed=1)
active = hb.codes.active()
parents = hworld.parents
children = torch.nonzero(parents >= 0).squeeze(1)
orphan = (active[:, children] & ~active[:, parents[children]]).sum()
print(f"\nchild active while its parent is silent: {int(orphan)} times in {N:,} samples (must be 0)")

# For each parent: share of its firing events in which >= 2 of its children fire together.
co_fire = []
for p in torch.unique(parents[children]):
    kids = children[parents[children] == p]
    events = active[:, p]
    n_kids = active[events][:, kids].sum(1)
    co_fire.append(float((n_kids >= 2).float().mean()) if events.any() else np.nan)
co_fire = np.array(co_fire)
print(f"parents: {len(co_fire)}; with children never co-firing: {int((co_fire == 0).sum())} "
      f"(mutually exclusive), the others co-fire in {np.nanmean(co_fire[co_fire > 0]):.1%} of their events")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
level = torch.zeros(hworld.m, dtype=torch.long)
for _ in range(3):  # depth of a node = 1 + depth of its parent
    level = torch.where(parents >= 0, level[parents.clamp(min=0)] + 1, torch.zeros_like(level))
rates = active.float().mean(0).numpy()
in_tree = (parents >= 0) | torch.isin(torch.arange(hworld.m), parents)
for lvl, colour in zip(range(3), ["tab:blue", "tab:orange", "tab:green"]):
    sel = ((level == lvl) & in_tree).numpy()
    axes[0].scatter(np.nonzero(sel)[0], rates[sel], s=8, color=colour, label=f"tree level {lvl}")
axes[0].scatter(np.nonzero(~in_tree.numpy())[0], rates[~in_tree.numpy()], s=8, color="gray", label="free feature")
axes[0].set_yscale("log")
axes[0].set_xlabel("feature index")
axes[0].set_ylabel("measured firing rate")
axes[0].set_title("children fire less than their parents (no compensation)", fontsize=9)
axes[0].legend(fontsize=7)
axes[1].bar(range(len(co_fire)), np.nan_to_num(co_fire), color=np.where(co_fire == 0, "tab:red", "tab:blue"))
axes[1].set_xlabel("parent (trees' internal nodes)")
axes[1].set_ylabel("P(≥ 2 children co-fire | parent fires)")
axes[1].set_title("mutually exclusive parents (red, zero bars) vs free children (blue)", fontsize=9)
show(fig, "hierarchy")

# %% [markdown]
# ## Configs, save and load
#
# A world is a pure function of its frozen `WorldConfig` (including the seed). Configs round-trip
# through dicts / JSON / TOML, and unknown keys are rejected with a "did you mean". `save` writes
# `config.json` + `world.safetensors` (no pickle); `load` gives back a world that draws identical
# samples.

# %%
cfg = WorldConfig(d=24, m=64, dictionary=Spiked(rho=0.3), firing=Zipf(exponent=1.0, max_p=0.2, min_p=0.01),
                  magnitudes=Uniform(low=0.5, high=1.5), seed=7)
print(cfg.to_dict())
w = World(cfg)
folder = w.save(OUT / "spiked_world")
print("saved:", sorted(p.name for p in folder.iterdir()))
w2 = World.load(folder)
print("identical dictionary:", torch.equal(w.dictionary, w2.dictionary),
      "| identical samples:", torch.equal(w.sample(100, seed=5).x, w2.sample(100, seed=5).x))
try:
    WorldConfig.from_dict({**cfg.to_dict(), "nosie": {}})
except ValueError as err:
    print("bad key ->", err)

# %% [markdown]
# **Next:** notebook 02 computes the *exact* sparse codes of such samples, with certificates.
