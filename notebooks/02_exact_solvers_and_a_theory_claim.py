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
# # 02 — Exact sparse codes, certificates, and two theory claims checked numerically
#
# An SAE's encoder is an *amortized* sparse coder: one forward pass guesses a code. To judge such
# guesses we need the **exact** optimum of the sparse-coding problem, per sample,
#
# $$P(z) = \tfrac12\lVert x - zD\rVert^2 + \lambda_1 \textstyle\sum_j w_j |z_j| + \tfrac{\lambda_2}{2}\lVert z\rVert^2
# \quad (z \ge 0 \text{ optionally}),$$
#
# with atoms as the rows of `D` (m, d). `synthsae.solvers.sparse_code` returns codes with **exact
# zeros** off the support and, for every sample, an optimality **certificate**: the duality gap
# P(z) − Dual(θ) (≥ 0, and 0 only at the optimum) and the KKT violation. A code is `converged`
# only if both are tiny — supports are read off a certified solution, never thresholded.
#
# Then we check two claims from the theory of sparse coding on planted dictionaries:
# 1. the elastic-net coding map x → z*(x) is **Lipschitz** with constant min(‖D‖₂/λ2, 1/(2√λ2));
# 2. the Lasso recovers the true support only when the **irrepresentable condition** holds, which
#    fails on coherent ("spiked") dictionaries, while one step of **adaptive reweighting** (the
#    idea behind the adaptive elastic-net SAE) recovers it.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from synthsae.notebook import Walkthrough
from synthsae.solvers import active_set_jacobian, adaptive_weights, lipschitz_bound, sparse_code
from synthsae.world import ExactlyK, Orthonormal, Spiked, Uniform, World, WorldConfig

nb = Walkthrough.from_env("nb02")  # SYNTHSAE_NOTEBOOK_SCALE=small shrinks it; figures go to nb.out
SMALL, OUT, show = nb.small, nb.out, nb.show
N = 20 if SMALL else 200  # samples per experiment


# %% [markdown]
# ## Certified codes on the toy world
#
# Non-negative Lasso codes (λ1 = 0.1) of toy-world samples. `sparse_code` runs an active-set
# solver, falls back to FISTA and then to cvxpy for any sample whose certificate fails, and warns
# if a sample is still uncertified.

# %%
world = World.preset("toy")
batch = world.sample(N, seed=0)
res = sparse_code(batch.x, world.dictionary, l1=0.1, nonneg=True)
print(f"certified: {int(res.converged.sum())} / {N}; methods used: {sorted(set(res.method))}")
print(f"duality gap: max {float(res.gap.max()):.2e}   relative gap: max {float(res.rel_gap.max()):.2e}   "
      f"KKT violation: max {float(res.kkt_violation.max()):.2e}")
true_support = batch.codes.active()
print(f"exact zeros: {float((res.z == 0).double().mean()):.1%} of all entries; support size "
      f"{float(res.support.sum(1).double().mean()):.2f} per sample vs true L0 {float(true_support.sum(1).double().mean()):.2f}")
tp = (res.support & true_support).sum()
print(f"support precision {float(tp / res.support.sum()):.2f}, recall {float(tp / true_support.sum()):.2f}")

# %% [markdown]
# The Lasso code is **shrunk**: on the true support its values sit below the true magnitudes (the
# ℓ1 penalty pulls every active code towards 0). That is the same shrinkage ReLU+ℓ1 SAEs show.

# %%
z_true = batch.codes.to_dense()
on = true_support & res.support
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].scatter(z_true[on].numpy(), res.z[on].numpy(), s=8, alpha=0.6)
lim = [0, float(z_true.max()) * 1.05]
axes[0].plot(lim, lim, "k--", lw=1, label="no shrinkage")
axes[0].set_xlabel("true code value")
axes[0].set_ylabel("Lasso code value (λ1 = 0.1)")
axes[0].set_title("Lasso shrinks magnitudes", fontsize=10)
axes[0].legend(fontsize=8)
axes[1].hist(np.log10(res.rel_gap.clamp_min(1e-18).numpy()), bins=30, alpha=0.7, label="relative duality gap")
axes[1].hist(np.log10(res.kkt_violation.clamp_min(1e-18).numpy()), bins=30, alpha=0.7, label="KKT violation")
axes[1].axvline(np.log10(res.tol), color="k", ls=":", lw=1, label=f"gap tolerance {res.tol:g}")
axes[1].set_xlabel("log10 (exact zeros drawn at −18)")
axes[1].set_ylabel("samples")
axes[1].set_title("certificates (all samples)", fontsize=10)
axes[1].legend(fontsize=8)
show(fig, "lasso_certificates")

# %% [markdown]
# ## The closed form on an orthonormal dictionary
#
# With orthonormal atoms (D Dᵀ = I) the problem separates per coordinate and the non-negative
# elastic-net code is `ReLU(D x − λ1)/(1 + λ2)` — exactly a ReLU encoder with tied weights, a bias
# of −λ1 and a scale. This is the one case where a one-layer SAE encoder *can* be the exact
# optimum. The iterative solver agrees with the formula within its certified tolerance, and the
# `closed_form` method *is* the formula:

# %%
ortho = World(WorldConfig(d=32, m=32, dictionary=Orthonormal(), firing=ExactlyK(k=4), magnitudes=Uniform(low=0.5, high=1.5)))
xo = ortho.sample(N, seed=1).x.double()
D = ortho.dictionary.double()
l1, l2 = 0.2, 0.5
formula = torch.relu(xo @ D.T - l1) / (1 + l2)
solved = sparse_code(xo, D, l1=l1, l2=l2, nonneg=True, method="active_set")
closed = sparse_code(xo, D, l1=l1, l2=l2, nonneg=True, method="closed_form")
print(f"max |active set − formula| = {float((solved.z - formula).abs().max()):.2e}")
print(f"max |closed_form − formula| = {float((closed.z - formula).abs().max()):.2e}; certified: {closed.all_converged}")

# %% [markdown]
# ## Claim 1: the elastic-net coding map is Lipschitz
#
# With λ2 > 0 the objective is strongly convex, so the optimal code is a Lipschitz function of the
# input:  ‖z*(x) − z*(x′)‖ ≤ L ‖x − x′‖ with L = min(‖D‖₂/λ2, 1/(2√λ2)). On a fixed support the
# map is linear with Jacobian J = (D_S D_Sᵀ + λ2 I)⁻¹ D_S, whose singular values are
# σ/(σ² + λ2) ≤ 1/(2√λ2) for each singular value σ of D_S — the bound is attained when some
# σ equals √λ2. Without λ2 (plain Lasso) there is no such guarantee: ‖J‖ = 1/σ_min(D_S) can be
# huge on a coherent dictionary.
#
# We measure, for several λ2, the largest Jacobian norm over samples and the largest ratio
# ‖Δz‖/‖Δx‖ over pairs (x, x + small perturbation), on a gaussian and on a spiked (ρ = 0.7)
# dictionary. Every measurement must lie on or below the bound (thick gray line).

# %%
l2_grid = [0.01, 0.3] if SMALL else [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
dicts = {"gaussian": World(WorldConfig(d=32, m=128, firing=ExactlyK(k=8), magnitudes=Uniform(low=1.0, high=3.0))),
         "spiked ρ = 0.7": World(WorldConfig(d=32, m=128, dictionary=Spiked(rho=0.7), firing=ExactlyK(k=8),
                                             magnitudes=Uniform(low=1.0, high=3.0)))}
gen = torch.Generator().manual_seed(0)
measured = {}
for name, w in dicts.items():
    x = w.sample(N // 2, seed=2).x.double()
    dx = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    dx = 1e-4 * dx / dx.norm(dim=1, keepdim=True)
    rows = []
    for l2 in l2_grid:
        a = sparse_code(x, w.dictionary, l1=0.1, l2=l2, nonneg=True)
        b = sparse_code(x + dx, w.dictionary, l1=0.1, l2=l2, nonneg=True)
        ratio = float(((a.z - b.z).norm(dim=1) / dx.norm(dim=1)).max())
        jac = float(torch.linalg.matrix_norm(active_set_jacobian(a, w.dictionary), ord=2).max())
        rows.append((lipschitz_bound(w.dictionary, l2), jac, ratio))
    measured[name] = np.array(rows)
    lasso = sparse_code(x, w.dictionary, l1=0.1, nonneg=True)  # λ2 = 0: no strong convexity
    lasso_jac = float(torch.linalg.matrix_norm(active_set_jacobian(lasso, w.dictionary), ord=2).max())
    print(name, "‖D‖₂ = %.2f;" % float(torch.linalg.matrix_norm(w.dictionary.double(), 2)),
          f"plain Lasso (λ2 = 0): max ‖J‖ = 1/σ_min(D_S) = {lasso_jac:.1f}")
    for l2, (bound, jac, ratio) in zip(l2_grid, rows):
        print(f"  λ2 = {l2:<6} bound {bound:7.3f}   max ‖J‖ {jac:7.3f}   max ‖Δz‖/‖Δx‖ {ratio:7.3f}   "
              f"holds: {jac <= bound * (1 + 1e-9) and ratio <= bound * (1 + 1e-6)}")

fig, ax = plt.subplots(figsize=(6.4, 4))
ax.plot(l2_grid, measured["gaussian"][:, 0], color="gray", lw=7, alpha=0.35, label="bound min(‖D‖₂/λ2, 1/(2√λ2))")
for (name, arr), colour in zip(measured.items(), ["tab:blue", "tab:red"]):
    ax.plot(l2_grid, arr[:, 1], "o-", color=colour, label=f"{name}: max Jacobian norm")
    ax.plot(l2_grid, arr[:, 2], "x:", color=colour, ms=9, label=f"{name}: max finite-difference ratio")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("λ2 (ridge weight)")
ax.set_ylabel("Lipschitz constant of x → z*(x)")
ax.set_title(f"elastic-net coding map, {N // 2} samples, λ1 = 0.1, d = 32, m = 128", fontsize=10)
ax.legend(fontsize=7)
show(fig, "lipschitz_bound")

# %% [markdown]
# The bound holds everywhere — and it is nearly **tight**: for almost every λ2 some sample's
# active sub-dictionary D_S has a singular value close to √λ2, and since σ/(σ² + λ2) is flat near
# its maximum, the largest Jacobian norm matches the bound to three digits, on the gaussian and the
# spiked dictionary alike (when we ran it, only the gaussian dictionary at the smallest λ2 stayed
# ~3% below). (The elastic-net supports are large, so D_S has many singular values
# spread over a wide range.) The finite-difference ratio uses a random perturbation, not the worst
# direction, so it sits below. Without the ridge term (plain Lasso) the constant is 1/σ_min(D_S),
# printed above: nothing but the data's conditioning bounds it.
#
# ## Claim 2: the Lasso fails the irrepresentable condition on spiked dictionaries; reweighting fixes it
#
# For noiseless x = z D with support S and signs s, the Lasso can recover exactly S (for small λ1)
# only if the **irrepresentable condition** holds:
# IC(S) = max_{j∉S} |G_{jS} G_{SS}⁻¹ s_S| < 1, with G = D Dᵀ the Gram matrix of the atoms
# (Zhao & Yu 2006; Wainwright 2009). On a spiked dictionary every off-support atom correlates with
# the shared direction, so IC fails. **Adaptive Lasso** (Zou 2006) re-solves with weights
# w_j = 1/(|z̃_j| + ε) from a first Lasso solution z̃: features the first pass found big get a
# small penalty, spurious small ones a large penalty.
#
# Setting of the adaptive elastic-net SAE paper, shrunk: d = 64, m = 256, exactly 8 active features
# with magnitudes U[1, 3], no noise, plain (signed) Lasso with λ1 = 0.05.

# %%
def irrepresentable(D, z):
    """IC(S) per sample (n,): max over off-support atoms j of |G_jS G_SS^-1 sign(z_S)|, G = D Dᵀ."""
    G = (D @ D.T).double()
    out = []
    for zi in z:
        S = zi != 0
        v = torch.linalg.solve(G[S][:, S], torch.sign(zi[S]).double())
        out.append(float((G[~S][:, S] @ v).abs().max()))
    return np.array(out)


rhos = [0.0, 0.5] if SMALL else [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]  # (ρ = 0.9 works too but the Lasso needs slow FISTA fallbacks there)
rec = {"ic": [], "lasso": [], "adaptive": []}
for rho in rhos:
    w = World(WorldConfig(d=64, m=256, dictionary=Spiked(rho=rho), firing=ExactlyK(k=8),
                          magnitudes=Uniform(low=1.0, high=3.0)))
    b = w.sample(N // 2, seed=3)
    S = b.codes.active()
    lasso = sparse_code(b.x, w.dictionary, l1=0.05)
    weights = adaptive_weights(lasso.z, gamma=1.0, eps=1e-3)  # (n, m): one weight vector per sample
    adaptive = sparse_code(b.x, w.dictionary, l1=0.05, weights=weights)
    rec["ic"].append(float((irrepresentable(w.dictionary, b.codes.to_dense()) < 1).mean()))
    rec["lasso"].append(float((lasso.support == S).all(1).double().mean()))
    rec["adaptive"].append(float((adaptive.support == S).all(1).double().mean()))
    print(f"ρ = {rho}: IC holds {rec['ic'][-1]:.0%}   Lasso exact support {rec['lasso'][-1]:.0%}   "
          f"adaptive Lasso {rec['adaptive'][-1]:.0%}   (mean Lasso support size {float(lasso.support.sum(1).double().mean()):.1f} vs 8; "
          f"certified {lasso.all_converged and adaptive.all_converged})")

fig, ax = plt.subplots(figsize=(6.4, 3.8))
ax.plot(rhos, rec["ic"], "k--o", label="irrepresentable condition holds")
ax.plot(rhos, rec["lasso"], "o-", color="tab:red", label="Lasso: exact support")
ax.plot(rhos, rec["adaptive"], "s-", color="tab:green", label="adaptive Lasso (one reweighting): exact support")
ax.set_xlabel("spike weight ρ (atoms' shared direction)")
ax.set_ylabel(f"share of {N // 2} samples")
ax.set_ylim(-0.03, 1.03)
ax.set_title("support recovery on spiked dictionaries (d = 64, m = 256, k = 8)", fontsize=10)
ax.legend(fontsize=8)
show(fig, "irrepresentable")

# %% [markdown]
# The Lasso recovers the exact support only on samples where the irrepresentable condition holds
# (its curve never rises above the IC curve), and both collapse as soon as the atoms share a
# direction. One reweighting step brings exact recovery back —
# the motivation for the *adaptive* elastic-net SAE (notebook 04), whose per-feature weights play
# the role of w_j during training.
