"""Figures of experiments and sweeps (free-standing matplotlib Figures, see `synthsae.plots`). Each function returns a Figure;
nothing here computes a metric."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from synthsae.plots import new_figure


def comparison_bars(labels: Sequence[str], columns: Sequence[tuple[str, Sequence[float]]]) -> Figure:
    """One small bar panel per metric (title, one value per SAE label); NaN bars are left empty."""
    n = len(columns)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig, axes = new_figure(nrow, ncol, figsize=(3.0 * ncol, 2.6 * nrow), squeeze=False)
    colors = [f"C{i % 10}" for i in range(len(labels))]
    for ax, (title, values) in zip(axes.flat, columns):
        vals = [v if v is not None and not (isinstance(v, float) and math.isnan(v)) else 0.0 for v in values]
        ax.bar(range(len(labels)), vals, color=colors)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, dict]) -> Figure:
    """Explained variance, L0 and dead latents against training samples, one line per SAE.
    histories: label -> `TrainHistory.scalars()`."""
    fig, axes = new_figure(1, 3, figsize=(11, 3.2))
    panels = (("explained_variance", "explained variance (train batches)"), ("l0", "L0"), ("dead", "dead latents"))
    for i, (label, h) in enumerate(histories.items()):
        for ax, (key, _) in zip(axes, panels):
            ax.plot(h["samples"], h[key], label=label, color=f"C{i % 10}", lw=1.4)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xlabel("training samples")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def metric_vs_parameter(param: str, metric: str, series: dict[str, tuple[list, list]], log_x: bool) -> Figure:
    """A sweep's `metric` against one swept parameter, one line per group (e.g. variant); several
    trials at the same x (seeds, other parameters) are shown as points, their mean joined by a line
    with an error bar (half-width of the 95% t interval over those trials, `synthsae.stats`). A log
    x axis gets plain-number ticks at 1, 2, 5 x 10^k.
    series: group -> (x values, y values), one entry per trial."""
    from synthsae import stats

    fig, ax = new_figure(figsize=(4.6, 3.4))
    for i, (group, (xs, ys)) in enumerate(series.items()):
        color = f"C{i % 10}"
        ax.scatter(xs, ys, s=12, alpha=0.5, color=color)
        groups: dict = {}
        for x, y in zip(xs, ys):
            if y is not None and math.isfinite(y):
                groups.setdefault(x, []).append(float(y))
        order = sorted(groups, key=_sort_key)
        summaries = [stats.summarize(groups[x]) for x in order]
        err = [(s.hi - s.lo) / 2 if s.n > 1 else 0.0 for s in summaries]
        ax.errorbar(order, [s.mean for s in summaries], yerr=err, color=color, lw=1.5, capsize=3, label=str(group))
    if log_x:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _sort_key(x):
    return (0, x, "") if isinstance(x, (int, float)) else (1, 0, str(x))
