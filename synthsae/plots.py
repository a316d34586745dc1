"""Plots for evaluation reports. Each function returns a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no global figure registry to
leak memory in long sweeps, and no backend is forced, so inline plots in a user's notebook keep working.

Nothing here computes metrics: inputs are arrays a `synthsae.metrics.Report` already holds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """(fig, axes) like `pyplot.subplots`, but a free-standing Figure (see module docstring)."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def label_axes(ax, xlabel: str, ylabel: str | None = None, title: str | None = None) -> None:
    """Axis labels and a small title, as every figure of synthsae has them."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title, fontsize=9)


def save_png(fig: Figure, path, dpi: int = 110):
    """Write `fig` to `path` as PNG atomically; a pyplot-managed figure is closed afterwards."""
    import io

    from synthsae.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if fig.canvas.manager is not None:  # made by pyplot (e.g. a user's figure): free it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def cosine_heatmap(C, title: str = "|cos| true features vs matched latents") -> Figure:
    """Heatmap of a (k, k) |cos| matrix between k true features (rows) and their matched latents (columns,
    same order), so a perfect recovery is a bright diagonal."""
    C = np.asarray(C, dtype=float)
    fig, ax = new_figure(figsize=(5, 4.2))
    im = ax.imshow(C, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    label_axes(ax, "matched latent", "true feature", title)
    fig.colorbar(im, ax=ax, label="|cos|")
    fig.tight_layout()
    return fig


def recovery_curve(thresholds, rates, marks=(0.8, 0.9)) -> Figure:
    """Share of true features recovered (matched |cos| >= t) against the threshold t."""
    fig, ax = new_figure(figsize=(5, 3.5))
    ax.plot(thresholds, rates, lw=2)
    for t in marks:
        ax.axvline(t, color="gray", ls=":", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    label_axes(ax, "cosine threshold t", "recovery rate", "recovery vs threshold")
    fig.tight_layout()
    return fig


def firing_vs_recovery(fire_rate, cos) -> Figure:
    """Scatter of each true feature's firing rate (log x) against its matched |cos|."""
    fr = np.asarray(fire_rate, dtype=float)
    fig, ax = new_figure(figsize=(5, 3.5))
    ok = fr > 0
    ax.scatter(fr[ok], np.abs(np.asarray(cos))[ok], s=4, alpha=0.5)
    if ok.any():
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    label_axes(ax, "true firing rate", "matched |cos|", "rare features are recovered worse?")
    fig.tight_layout()
    return fig


def absorption_matrix(parents, children, rates, max_size: int = 64) -> Figure:
    """Parents (rows) x children (columns) matrix of absorption rates for the hierarchy's pairs."""
    parents, children, rates = map(np.asarray, (parents, children, rates))
    P = np.unique(parents)[:max_size]
    Cc = np.unique(children[np.isin(parents, P)])[:max_size]
    M = np.full((len(P), len(Cc)), np.nan)
    pi = {p: i for i, p in enumerate(P)}
    ci = {c: i for i, c in enumerate(Cc)}
    for p, c, r in zip(parents, children, rates):
        if p in pi and c in ci:
            M[pi[p], ci[c]] = r
    fig, ax = new_figure(figsize=(5, 4.2))
    im = ax.imshow(np.ma.masked_invalid(M), vmin=0, vmax=1, cmap="magma", aspect="auto", interpolation="nearest")
    label_axes(ax, "child feature", "parent feature", "absorption rate (full + partial)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def stability_histogram(probabilities, threshold: float | None = 0.5) -> Figure:
    """Histogram of latents' cross-seed reappearance probabilities (one array or a list, pooled)."""
    p = np.concatenate([np.ravel(a) for a in probabilities]) if isinstance(probabilities, (list, tuple)) \
        else np.ravel(probabilities)
    fig, ax = new_figure(figsize=(5, 3.5))
    ax.hist(p, bins=np.linspace(0, 1, 21), color="tab:blue", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="red", ls="--", lw=1, label="stable threshold")
        ax.legend(fontsize=8)
    label_axes(ax, "reappearance probability", "latents", "cross-seed stability")
    fig.tight_layout()
    return fig
