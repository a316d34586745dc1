"""`run_experiment(config, out_dir)`: build the world, train every SAE, evaluate, write a report folder.

Output folder (every file written atomically):

    config.toml, config.json        the experiment (a rerun into the same folder must match it)
    world.json                      the resolved WorldConfig
    comparison.csv, metrics.json    one row per SAE: the headline metrics / every metric
    comparison.png, training.png    headline metrics per SAE; training curves
    report.md                       everything above, embedded, plus per-SAE sections
    saes/<label>/checkpoint/        the training checkpoint (safetensors; makes a rerun resume)
    saes/<label>/model/             the trained SAE (`SAE.save`: config.json + model.safetensors)
    saes/<label>/history.json       the training history (+ history.safetensors)
    saes/<label>/eval/              `Report.save`: metrics.json, features.csv, ..., PNG plots
    saes/<label>/result.json        written last: the SAE is done (a rerun skips it)

Resuming: rerunning the same config into the same folder after a kill continues each SAE's
training from its last checkpoint (bit-identical on CPU) and skips finished SAEs.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from synthsae import io as sio
from synthsae import progress as prog
from synthsae import tables
from synthsae._rng import resolve_device
from synthsae.errors import fail
from synthsae.experiments import folders
from synthsae.experiments.config import ExperimentConfig
from synthsae.metrics import HEADLINE, Report  # HEADLINE: (column title, Report key) of the comparison table
from synthsae.plots import save_png

EVAL_DIR = "eval"

RESULT_FILE = "result.json"


@dataclasses.dataclass
class ExperimentResult:
    """What `run_experiment` produced: `rows` has one dict per SAE (label, variant, m, train_seconds,
    eval_seconds, and every `Report.metrics` key, NaN where not applicable); `out_dir` holds the files."""

    config: ExperimentConfig
    out_dir: Path
    rows: list[dict[str, Any]]

    def table(self) -> str:
        """The headline comparison as aligned plain text (one line per SAE)."""
        return comparison_text(self.rows)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"


def run_experiment(config: ExperimentConfig, out_dir: str | Path, device: str | torch.device | None = None,
                   progress: bool = True, overwrite: bool = False) -> ExperimentResult:
    """Run `config` (train every SAE on its world, evaluate each) and write the report folder `out_dir`.

    device: overrides `config.device` (e.g. "cuda"). progress: progress bars while training (`synthsae.progress`: a bar on a terminal, lines elsewhere).
    The world is built (which validates it) before `out_dir` is claimed (`experiments.folders`): a
    folder holding another experiment's (or a sweep's, a recipe's) results raises `ConfigError`
    unless overwrite=True; the same config resumes.
    """
    from synthsae.sae.base import SAES

    if not isinstance(config, ExperimentConfig):
        fail("config", type(config).__name__, "run_experiment takes an experiment config",
             "an ExperimentConfig (ExperimentConfig.load('experiment.toml'))")
    t0 = time.perf_counter()
    dev = resolve_device(config.device if device is None else device)
    world = build_world(config)
    out = Path(out_dir)
    _claim(out, config, overwrite)
    sio.atomic_write_json(out / "world.json", world.config.to_dict())
    rows, histories = [], {}
    for label, sae_config in config.sae_configs().items():
        folder = out / "saes" / label
        done = folder / RESULT_FILE
        if not done.is_file():
            _train_and_evaluate(SAES.get(sae_config.kind)(sae_config), label, world, config, folder, dev, progress)
        rows.append(_result_row(folder))
        histories[label] = sio.read_json(folder / "history.json")
    from synthsae.experiments.provenance import run_metadata

    meta = run_metadata(out, dev, time.perf_counter() - t0, reproduce=[
        "synthsae", "run", str(out / "config.toml"), "--out", f"{out}-rerun", "--device", str(dev)])
    _write_summary(config, out, world, rows, histories, meta)
    return ExperimentResult(config, out, rows)


def build_world(config: ExperimentConfig):
    """The experiment's `World`, built now: some world configs fail only when built (magnitudes, a
    correlation that is not positive semi-definite), and that must happen before a folder is claimed."""
    from synthsae.world import World

    return World(config.world_config())


def _claim(out: Path, config: ExperimentConfig, overwrite: bool = False) -> None:
    """Claim `out` for this experiment (`folders.claim`), then write its config."""
    folders.claim(out, "experiment", config.name, config.digest(), overwrite=overwrite)
    sio.atomic_write_json(out / "config.json", config.to_dict())
    sio.atomic_write_text(out / "config.toml", config.to_toml())


SEGMENTS_FILE = "segments.json"


def _earlier_seconds(folder: Path) -> float:
    """Training seconds of earlier (killed) segments of this SAE, and open a new segment.

    A segment that was killed is counted from its start to its last checkpoint (the last moment its
    work was saved; what came after is redone and counted in the segment that redoes it)."""
    path = folder / SEGMENTS_FILE
    state = sio.read_json(path) if path.is_file() else {"earlier_seconds": 0.0, "open_since": None}
    earlier = float(state.get("earlier_seconds") or 0.0)
    ckpt = folder / "checkpoint" / "checkpoint.safetensors"
    if state.get("open_since") is not None and ckpt.is_file():
        earlier += max(0.0, ckpt.stat().st_mtime - float(state["open_since"]))
    sio.atomic_write_json(path, {"earlier_seconds": earlier, "open_since": time.time()})
    return earlier


def _train_and_evaluate(sae, label: str, world, config: ExperimentConfig, folder: Path, dev: torch.device,
                        progress: bool) -> None:
    from synthsae.metrics.evaluate import evaluate
    from synthsae.sae.train import train

    folder.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_seconds(folder)
    t0 = time.perf_counter()
    try:
        history = train(sae, world, device=dev, checkpoint_dir=folder / "checkpoint", resume=True, progress=progress,
                        **config.train.train_kwargs(config.seed))
    except FloatingPointError as err:  # say which SAE blew up: an experiment trains several
        raise FloatingPointError(f"SAE {label!r} ({sae.name}): {err}") from None
    t_train = earlier + time.perf_counter() - t0
    sae.save(folder / "model")
    history.save(folder)
    if progress:
        prog.write(f"{label}: evaluating on {config.eval.n:,} fresh samples")
    t0 = time.perf_counter()
    report = evaluate(sae, world, device=dev, config=config.eval)
    report.save(folder / EVAL_DIR, plots=config.plots)
    t_eval = time.perf_counter() - t0
    conv = history.convergence_result()
    row = {"label": label, "variant": sae.name, "m": sae.config.m, "train_seconds": t_train, "eval_seconds": t_eval,
           "converged": _convergence_word(conv)}
    # written last: its presence means this SAE is finished; the metrics are the saved Report's
    tables.write_json(folder / RESULT_FILE, {
        "row": row, "figures": sorted(p.name for p in (folder / EVAL_DIR).glob("*.png")),
        "convergence": None if conv is None else conv.summary(),
    })


def _convergence_word(conv) -> str:
    """yes / no / collapsed (the training diagnostic, `synthsae.sae.convergence`), or n/a without one."""
    if conv is None:
        return "n/a"
    return "collapsed" if conv.collapsed else "yes" if conv.converged else "no"


def _result_row(folder: Path) -> dict[str, Any]:
    """A finished SAE's row: its result.json (label, variant, m, timings) and every metric of its Report."""
    row = sio.read_json(folder / RESULT_FILE)["row"]
    metrics = {k: float(tables.restore(v)) for k, v in Report.load(folder / EVAL_DIR).metrics.items()}
    return tables.restore_row({**row, **metrics}, ("label", "variant", "converged"))


def comparison_text(rows: list[dict[str, Any]]) -> str:
    """The headline metrics as an aligned plain-text table, one line per SAE."""
    head = ["SAE"] + [t for t, _ in HEADLINE] + ["converged"]
    body = [[r["label"]] + [tables.fmt(r.get(k)) for _, k in HEADLINE] + [str(r.get("converged", "n/a"))]
            for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in [head] + body]
    return "\n".join(lines)


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = ["label", "variant", "m"] + [k for _, k in HEADLINE] + ["converged"]
    headers = ["SAE", "variant", "m"] + [t for t, _ in HEADLINE] + ["converged"]
    return "\n".join(tables.markdown_table(rows, columns, headers))


def _write_summary(config: ExperimentConfig, out: Path, world, rows: list[dict[str, Any]],
                   histories: dict[str, dict], meta: dict[str, Any]) -> None:
    keys = tables.columns_of(rows)
    columns = ["label", "variant", "m"] + [k for _, k in HEADLINE if k in keys]
    tables.write_csv(out / "comparison.csv", rows, columns)
    tables.write_json(out / "metrics.json", {"saes": rows, "run": meta})
    figures = []
    if config.plots:
        from synthsae.experiments import plots

        labels = [r["label"] for r in rows]
        cols = [(t, [tables.restore(r.get(k)) for r in rows]) for t, k in HEADLINE]
        save_png(plots.comparison_bars(labels, cols), out / "comparison.png")
        save_png(plots.training_curves(histories), out / "training.png")
        figures = ["comparison.png", "training.png"]
    sio.atomic_write_text(out / "report.md", _report_markdown(config, out, world, rows, figures, meta))


def _report_markdown(config: ExperimentConfig, out: Path, world, rows: list[dict[str, Any]],
                     figures: list[str], meta: dict[str, Any]) -> str:
    t = config.train
    parts = [
        f"# {config.name}",
        "",
        "## Setup",
        "```",
        world.describe(),
        "```",
        f"Training: {t.n_samples:,} samples in batches of {t.batch_size} (lr {t.lr:g}, seed "
        f"{t.train_kwargs(config.seed)['seed']}); evaluation on {config.eval.n:,} fresh samples "
        f"(seed {config.eval.seed}). Full config: [config.toml](config.toml).",
        "",
        "## Comparison",
        "Columns (definitions in docs/metrics.md): " + ", ".join(f"{t} = `{k}`" for t, k in HEADLINE)
        + " (n/a: not applicable, e.g. absorption without a hierarchy); converged = the training diagnostic "
        "on a held-out probe set (yes / no / collapsed; its numbers are in each SAE's section). Compare SAEs "
        "only when every one of them converged.",
        "",
        _markdown_table(rows),
        "",
        "All metrics: [metrics.json](metrics.json); headline table: [comparison.csv](comparison.csv).",
        "",
    ]
    parts += [f"![{Path(f).stem}]({f})\n" for f in figures]
    for r in rows:
        label = r["label"]
        res = sio.read_json(out / "saes" / label / RESULT_FILE)
        report = Report.load(out / "saes" / label / EVAL_DIR)
        parts += ["", f"## {label} ({r['variant']}, m = {r['m']})",
                  f"Trained in {r['train_seconds']:.1f} s, evaluated in {r['eval_seconds']:.1f} s. "
                  f"Files: [model](saes/{label}/model/), [metrics](saes/{label}/eval/metrics.json), "
                  f"[per-feature table](saes/{label}/eval/features.csv), [history](saes/{label}/history.json).", "",
                  f"Convergence: {res.get('convergence') or 'not measured (probe_evals = 0)'}.", ""]
        for why in report.not_applicable.values():
            parts.append(f"- not applicable: {why}")
        for note in report.notes:
            parts.append(f"- note: {note}")
        parts += [""] + [f"![{label} {Path(f).stem}](saes/{label}/eval/{f})\n" for f in res.get("figures", [])]
    from synthsae.experiments.provenance import metadata_markdown

    parts += [""] + metadata_markdown(meta)
    return "\n".join(parts) + "\n"
