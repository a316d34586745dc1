"""The leaderboard of a bench: summaries over seeds, rankings with ties, and its files.

Per (task, k, SAE, metric): `synthsae.stats.summarize` over seeds (mean, SE, 95% t interval).
Rankings: `synthsae.stats.rank` on each ranked metric (ties when confidence intervals overlap),
trained SAEs only (reference rows are shown, not ranked). Files: `report.md` (run metadata,
headline table, per-task tables with reference rows and convergence, the published-orderings
check, plots), `results.csv` (one row per cell and seed), `results.json` (rows, summaries,
rankings, orderings, metadata).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from synthsae import stats, tables
from synthsae.bench.task import TASKS
from synthsae.sae.train import TrainSettings

CONVERGENCE_KEYS = ("converged", "collapsed", "probe_ev_change", "probe_recovery_change", "probe_l0")


def _finite(values):
    return [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


@dataclasses.dataclass
class Leaderboard:
    """rows: one dict per cell (task, k, sae, seed, kind, metrics); summaries[task][k][sae][metric] ->
    Summary; rankings[task][k][metric] -> tiers (lists of SAE names, best first); orderings: the
    published SynthSAEBench orderings checked on this tier; meta: run metadata."""

    rows: list[dict[str, Any]]
    tier: str
    tasks: list[str]
    saes: list[str]
    summaries: dict
    rankings: dict
    orderings: list[dict[str, Any]]
    meta: dict[str, Any]

    def summary(self, task: str, k: int, sae: str, metric: str):
        return self.summaries.get(task, {}).get(k, {}).get(sae, {}).get(metric)

    def cell(self, task: str, k: int, sae: str, metric: str, digits: int = 3) -> str:
        s = self.summary(task, k, sae, metric)
        if s is None:
            return "—"
        if s.n < 2:
            return f"{s.mean:.{digits}f} (n=1)"
        return f"{s.mean:.{digits}f} ± {(s.hi - s.lo) / 2:.{digits}f}"

    def off_target(self, task: str, k: int, sae: str) -> bool:
        """True when the SAE's mean measured L0 misses the matched L0 k by more than `L0_TOLERANCE`."""
        s = self.summary(task, k, sae, "l0")
        return s is not None and abs(s.mean / k - 1) > L0_TOLERANCE

    def unusable(self, task: str, k: int, sae: str, handicapped: int = 0) -> str | None:
        """Why a comparison cannot rest on this SAE's cell (some seed not converged, or L0 off target), or None.

        handicapped: +1 when the call has this SAE winning on a metric that grows with L0 (EV), -1
        when it has it losing, 0 otherwise. An L0 miss that can only have hurt the SAE in that call
        (below k and winning, above k and losing) does not make the call inconclusive."""
        c = self.summary(task, k, sae, "converged")
        if c is not None and c.mean < 1:
            return f"{sae} converged in {round(c.mean * c.n)} of {c.n} seeds"
        if self.off_target(task, k, sae):
            l0 = self.summary(task, k, sae, "l0").mean
            if handicapped * (k - l0) > 0:
                return None
            return f"{sae} at L0 {l0:.2f}, not {k}"
        return None

    def tier_of(self, task: str, k: int, metric: str, sae: str) -> int | None:
        for i, names in enumerate(self.rankings.get(task, {}).get(k, {}).get(metric, [])):
            if sae in names:
                return i + 1
        return None

    def write(self, out: str | Path) -> Path:
        out = Path(out)
        tables.write_csv(out / "results.csv", self.rows)
        tables.write_json(out / "results.json", tables.clean({
            "meta": self.meta, "tier": self.tier, "tasks": self.tasks, "saes": self.saes, "rows": self.rows,
            "summaries": {t: {str(k): {s: {m: dataclasses.asdict(v) for m, v in ms.items()} for s, ms in ss.items()}
                              for k, ss in ks.items()} for t, ks in self.summaries.items()},
            "rankings": {t: {str(k): r for k, r in ks.items()} for t, ks in self.rankings.items()},
            "orderings": self.orderings}))
        figures = _figures(self, out / "figures")
        from synthsae.io import atomic_write_text

        return atomic_write_text(out / "report.md", render(self, figures))


def build(rows, tier: str, tasks, saes, meta) -> Leaderboard:
    summaries: dict = {}
    rankings: dict = {}
    for name in tasks:
        task = TASKS.get(name)
        mine = [r for r in rows if r["task"] == name]
        for k in sorted({r["k"] for r in mine}, reverse=True):
            at_k = [r for r in mine if r["k"] == k]
            per = summaries.setdefault(name, {}).setdefault(k, {})
            for sae in dict.fromkeys(r["sae"] for r in at_k):
                sr = [r for r in at_k if r["sae"] == sae]
                for key in [mt.key for mt in task.metrics] + list(CONVERGENCE_KEYS):
                    vals = _finite(r.get(key) for r in sr)
                    if vals:
                        per.setdefault(sae, {})[key] = stats.summarize(vals)
            for mt in task.metrics:
                if mt.higher is None:
                    continue
                cand = {s: per[s][mt.key] for s in saes if mt.key in per.get(s, {})}
                if cand:
                    rankings.setdefault(name, {}).setdefault(k, {})[mt.key] = stats.rank(cand, mt.higher)
    board = Leaderboard(rows, tier, list(tasks), list(saes), summaries, rankings, [], meta)
    board.orderings = _orderings(board)
    return board


def _orderings(board: Leaderboard) -> list[dict[str, Any]]:
    """Each published SynthSAEBench relation (A > B, or A ≈ B) between SAEs this bench ran, checked
    on this tier's synthsaebench task with the tie rule: A > B reproduced when A sits in a better
    tier of `stats.rank` than B; A ≈ B reproduced when they share a tier. `reproduced` is None
    (inconclusive, with `why`) when either SAE's cell is `unusable`: not converged or off its L0."""
    if "synthsaebench" not in board.tasks:
        return []
    from synthsae.bench.tasks.synthsaebench import PUBLISHED, PUBLISHED_ORDERINGS

    k = max(board.summaries.get("synthsaebench", {}), default=None)
    out = []
    for metric, a, published, b in PUBLISHED_ORDERINGS:
        ta, tb = board.tier_of("synthsaebench", k, metric, a), board.tier_of("synthsaebench", k, metric, b)
        if ta is None or tb is None:
            continue
        ours = "≈" if ta == tb else (">" if ta < tb else "<")
        sa, sb = board.summary("synthsaebench", k, a, metric), board.summary("synthsaebench", k, b, metric)
        # on a metric that grows with L0, the winner fired fewer latents than k or the loser more: still fair
        sign = {">": 1, "<": -1}.get(ours, 0) if metric in GROWS_WITH_L0 else 0
        why = "; ".join(w for w in (board.unusable("synthsaebench", k, a, sign),
                                    board.unusable("synthsaebench", k, b, -sign)) if w)
        out.append({"metric": metric, "a": a, "b": b, "published": published,
                    "published_values": [PUBLISHED[25][a][metric], PUBLISHED[25][b][metric]],
                    "ours": ours, "our_values": [sa.mean, sb.mean],
                    "reproduced": None if why else ours == published, "why": why})
    return out


# ---- report ----------------------------------------------------------------------------------------
def render(board: Leaderboard, figures: dict[str, str]) -> str:
    m = board.meta
    lines = [f"# synthsae bench — tier `{board.tier}`", ""]
    lines += [f"Tasks: {', '.join(board.tasks)}. SAEs: {', '.join(board.saes)}. Seeds: {m.get('seeds')}. "
              "Every SAE is trained at the task's matched L0 (TopK-like variants with k = target, the others with "
              "the trainer's L0 controller, `target_l0`). Cells show mean ± half-width of the 95% t confidence "
              "interval over seeds; [n] is the rank tier of `synthsae.stats.rank` (SAEs whose intervals overlap "
              "share a tier: a tie). Reference rows (ceiling: the true dictionary with certified exact codes; probe: "
              "a logistic probe per true feature, F1 columns only; random: an untrained SAE) are shown, not ranked.",
              ""]
    lines += ["## Run", "", f"- command: `{m.get('command')}`",
              f"- wall time: {m.get('wall_seconds')} s (this invocation; finished cells reused from an earlier run "
              "take no time); the cells' own wall times sum to "
              f"{sum(float(r.get('wall_seconds') or 0) for r in board.rows):.0f} s (over all workers and invocations)",
              f"- synthsae {m.get('synthsae')} (commit {m.get('commit') or 'unknown'}), torch {m.get('torch')}, python "
              f"{m.get('python')}, device {m.get('device')}, torch threads {m.get('threads')}, executor "
              f"{m.get('executor')} (workers {m.get('workers') or 'default'})", ""]
    # headline
    lines += ["## Headline", "", "One column per task: its headline metric (↑ higher is better, ↓ lower).", ""]
    head_cols = []
    for name in board.tasks:
        task = TASKS.get(name)
        for k in board.summaries.get(name, {}):
            mt = task.metric(task.headline)
            head_cols.append((name, k, mt))
    header = ["SAE"] + [f"{n} (k={k}): {mt.label} {'↑' if mt.higher else '↓'}" for n, k, mt in head_cols]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sae in board.saes + _refs(board):
        cells = [sae if sae in board.saes else f"*{sae}*"]
        for n, k, mt in head_cols:
            t = board.tier_of(n, k, mt.key, sae)
            cells.append(board.cell(n, k, sae, mt.key) + (f" [{t}]" if t else ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _convergence_line(board), "", _l0_line(board), ""]
    if "synthsaebench" in board.tasks:
        lines += _orderings_section(board)
    for name in board.tasks:
        lines += _task_section(board, name, figures)
    if board.tier == "full" and "synthsaebench" in board.tasks:
        lines += _published_section(board)
    return "\n".join(lines) + "\n"


def _refs(board):
    return list(dict.fromkeys(r["sae"] for r in board.rows if r["kind"] == "reference"))


def _convergence_line(board) -> str:
    bad = []
    total = conv = 0
    for r in board.rows:
        if r["kind"] != "sae":
            continue
        total += 1
        if r.get("converged") == 1.0:
            conv += 1
        else:
            bad.append(f"{r['task']}/k{r['k']}/{r['sae']}/seed {r['seed']}"
                       + (" (collapsed)" if r.get("collapsed") == 1.0 else ""))
    text = (f"Convergence (the trainer's diagnostic: probe EV and recovery changed by less than "
            f"{TrainSettings.converged_tol:g} over the last doubling of training before the lr decay, EV > 0): "
            f"{conv} of {total} trained SAEs converged.")
    if bad:
        text += " Not converged: " + ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "") + \
            (". Their numbers are shown but are less trustworthy: rerun with a larger training budget, e.g. "
             "`--budget 4` (4x the samples; a new folder).")
    return text


L0_TOLERANCE = 0.10
GROWS_WITH_L0 = frozenset({"ev"})  # metrics a fair SAE improves by firing more latents


def _l0_line(board) -> str:
    """Which SAEs missed the matched L0 by more than 10% (mean measured L0 on fresh samples)."""
    off, total = [], 0
    for name, ks in board.summaries.items():
        for k, per in ks.items():
            for sae in board.saes:
                s = per.get(sae, {}).get("l0")
                if s is None:
                    continue
                total += 1
                if board.off_target(name, k, sae):
                    off.append(f"{name}/k{k}/{sae} (L0 {s.mean:.2f})")
    text = (f"Matched L0 (measured on fresh samples, tolerance ±{L0_TOLERANCE:.0%}): {total - len(off)} of {total} "
            "SAE cells on target.")
    if off:
        text += (" Off target: " + ", ".join(off) + ". TopK-like SAEs with a learned inference threshold (batchtopk, "
                 "matryoshka) and SAEs trained through the L0 controller can land off k; their comparisons are at "
                 "the L0 shown in each table's L0 column, not at k.")
    return text


def _task_section(board, name, figures):
    task = TASKS.get(name)
    out = [f"## {task.title}", "", task.phenomenon, ""]
    for k, per in board.summaries.get(name, {}).items():
        from synthsae.bench.task import scale_of

        scale = scale_of(name, board.tier, float(board.meta.get("budget", 1.0)))
        w = scale.world
        out += [f"### k = {k}", "",
                f"World: d = {w.d}, m = {w.m}; SAE width {scale.m}; {scale.n_samples:,} training samples, batch "
                f"{scale.batch_size}, lr {scale.lr}; scored on {scale.eval_n:,} fresh samples. {scale.note}", ""]
        header = ["SAE"] + [f"{mt.label} {'↑' if mt.higher else '↓' if mt.higher is False else ''}".strip()
                            for mt in task.metrics] + ["converged", "probe change: EV", "recovery"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for sae in board.saes + _refs(board):
            if sae not in per:
                continue
            cells = [sae if sae in board.saes else f"*{sae}*"]
            for mt in task.metrics:
                t = board.tier_of(name, k, mt.key, sae)
                cells.append(board.cell(name, k, sae, mt.key) + (f" [{t}]" if t else ""))
            c = per[sae].get("converged")
            cells.append("—" if c is None else f"{round(c.mean * c.n)}/{c.n}")
            cells += [board.cell(name, k, sae, key, 3) for key in ("probe_ev_change", "probe_recovery_change")]
            out.append("| " + " | ".join(cells) + " |")
        ranks = board.rankings.get(name, {}).get(k, {}).get(task.headline)
        if ranks:
            out += ["", f"Ranking by {task.metric(task.headline).label}: "
                    + " > ".join(" ≈ ".join(group) for group in ranks)]
        fig = figures.get(f"{name}-k{k}")
        if fig:
            out += ["", f"![{name}]({fig})"]
        out.append("")
    return out


def _orderings_section(board):
    rep = sum(o["reproduced"] is True for o in board.orderings)
    undecided = sum(o["reproduced"] is None for o in board.orderings)
    text = ("Published at L0 = 25 on the 16k world: F1 Matryoshka 0.879 > JumpReLU 0.732 ≈ BatchTopK 0.732 > standard "
            "ℓ1 0.556 > Matching Pursuit 0.446; EV highest for Matching Pursuit (0.835). Ours: the `synthsaebench` "
            f"task of this tier, with the tie rule (a tie when 95% intervals overlap). {rep} of {len(board.orderings)} "
            "relations reproduced")
    if undecided:
        text += (f"; {undecided} inconclusive (an SAE not converged in every seed or off its L0: the call is shown, "
                 "not counted)")
    text += "."
    if board.tier != "full":
        text += " This tier's world is a scaled-down version: agreement in ordering, not in value, is what can be checked."
    out = ["## Published SynthSAEBench orderings on this tier", "", text, "",
           "| metric | relation | published | ours (means) | our call | reproduced |", "|---|---|---|---|---|---|"]
    if not board.orderings:
        out[-3] += (" None of the published relations applies: it needs two of matryoshka, jumprelu, batchtopk, "
                    "relu_l1, matching_pursuit among the SAEs.")
    for o in board.orderings:
        out.append(f"| {o['metric']} | {o['a']} {o['published']} {o['b']} | {o['published_values'][0]:.3f} vs "
                   f"{o['published_values'][1]:.3f} | {o['our_values'][0]:.3f} vs {o['our_values'][1]:.3f} | "
                   f"{o['a']} {o['ours']} {o['b']} | {_reproduced_cell(o)} |")
    return out + [""]


def _reproduced_cell(o: dict[str, Any]) -> str:
    if o["reproduced"] is None:
        return f"inconclusive ({o['why']})"
    return "yes" if o["reproduced"] else "no"


def _published_section(board):
    from synthsae.bench.tasks.synthsaebench import PUBLISHED

    out = ["## Published SynthSAEBench tables beside ours", "",
           "Goal: |ours − published| ≤ 0.03 on F1 and MCC.", ""]
    for k, pub in PUBLISHED.items():
        if k not in board.summaries.get("synthsaebench", {}):
            continue
        out += [f"### L0 = {k}", "", "| SAE | metric | published | ours | difference |", "|---|---|---|---|---|"]
        for sae, vals in pub.items():
            for metric, value in vals.items():
                s = board.summary("synthsaebench", k, sae, metric)
                ours = "—" if s is None else board.cell("synthsaebench", k, sae, metric, 4)
                diff = "—" if s is None else f"{s.mean - value:+.4f}"
                out.append(f"| {sae} | {metric} | {value:.4f} | {ours} | {diff} |")
        out.append("")
    return out


def _figures(board, folder: Path) -> dict[str, str]:
    """A bar chart with 95% CI error bars of each task's headline metric, per k."""
    from synthsae.plots import new_figure, save_png

    out = {}
    for name in board.tasks:
        task = TASKS.get(name)
        mt = task.metric(task.headline)
        for k, per in board.summaries.get(name, {}).items():
            names = [s for s in board.saes + _refs(board) if mt.key in per.get(s, {})]
            if not names:
                continue
            fig, ax = new_figure(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.2))
            means = [per[s][mt.key].mean for s in names]
            errs = [0.0 if per[s][mt.key].n < 2 else (per[s][mt.key].hi - per[s][mt.key].lo) / 2 for s in names]
            colors = ["tab:blue" if s in board.saes else "tab:gray" for s in names]
            ax.bar(range(len(names)), means, yerr=errs, color=colors, capsize=3)
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(mt.label, fontsize=8)
            ax.set_title(f"{name} (k = {k}): {mt.label}, mean ± 95% CI", fontsize=9)
            fig.tight_layout()
            rel = f"figures/{name}-k{k}.png"
            save_png(fig, folder / f"{name}-k{k}.png")
            out[f"{name}-k{k}"] = rel
    return out
