"""The `synthsae` command line.

    synthsae demo [--out DIR] [--samples N] [--variants a,b]     four SAE variants on a toy world
    synthsae run CONFIG.toml|RECIPE [--out DIR] [--device cuda] [--set key=value ...] [--executor local]
    synthsae sweep CONFIG.toml [--executor local|serial|ray] [--address A] [--workers N] [--out DIR]
    synthsae world PRESET [--save DIR] [--seed N]
    synthsae evaluate CHECKPOINT --world PRESET|DIR [--n N] [--out DIR]
    synthsae recipes

User errors (bad configs, unknown names, missing files) print `synthsae: error: ...` and exit 2.
A folder holding another experiment's results is refused unless `--overwrite` (experiments.folders).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from synthsae.errors import ConfigError

EXIT_USAGE = 2
EXIT_FAILED = 1  # the command ran, but some of its work failed (sweep trials)
# optional dependencies: a missing one is the user's environment, not a bug
OPTIONAL_MODULES = ("ray", "sae_lens", "cvxpy", "matplotlib", "transformer_lens")


class UserError(ConfigError):
    """A mistake in what the user asked for (printed without a traceback)."""


# ---- helpers --------------------------------------------------------------------------------------
def _read_table(path: str) -> dict[str, Any]:
    """A TOML or JSON file as a dict."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{path} is a folder, not a config file (expected a .toml or .json file)")
    if not p.is_file():
        raise UserError(f"{path} does not exist (expected a .toml or .json config file)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not a text file ({err.reason} at byte {err.start}); expected a UTF-8 "
                        ".toml or .json config file") from None
    try:
        return json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {err}") from None


def _apply_sets(data: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    from synthsae.experiments.config import parse_value, set_dotted

    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} is invalid: expected key=value, e.g. --set train.lr=1e-3")
        set_dotted(data, key.strip(), parse_value(value.strip()))
    return data


def _device(name: str | None):
    from synthsae._rng import resolve_device

    return None if name is None else resolve_device(name)


def _check_out_dir(path: str, option: str) -> None:
    """Fail before any work if `path` cannot become an output folder: an existing file, a path under a
    file, or a folder this user may not write into (the nearest existing parent is checked)."""
    if not path.strip():  # Path("") is the current folder: never the intent
        raise UserError(f"{option} {path!r} is empty. Expected: a folder path, e.g. {option} results")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {path} is an existing file, not a folder: results are written as several files "
                        f"into a folder. Expected: a new or existing folder, e.g. {option} {p.with_suffix('')}-out")
    parent = p
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{option} {path} is inside {parent}, which is a file, not a folder. Expected: a folder path "
                        "whose existing part is a folder")
    if not parent.is_dir():
        return
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: cannot create or write into {parent} (permission denied). Expected: a "
                        "folder you can write to")
    try:  # permission bits do not tell everything (root, read-only or virtual file systems): try it
        import tempfile

        os.rmdir(tempfile.mkdtemp(prefix=".synthsae-write-test-", dir=parent))
    except OSError as err:
        raise UserError(f"{option} {path}: cannot create folders in {parent} ({err.strerror}). Expected: a folder "
                        "you can write to") from None


def _os_error(err: OSError) -> str:
    """An OSError on a user's path as one line: the path, what failed and what to do."""
    hint = {errno.EACCES: "permission denied: choose a folder you can write to",
            errno.EPERM: "operation not permitted: choose a folder you can write to",
            errno.EROFS: "the file system is read-only: choose another folder",
            errno.ENOSPC: "the disk is full: free some space or choose another disk",
            errno.ENOTDIR: "a part of this path is a file, not a folder",
            errno.EISDIR: "this is a folder, expected a file",
            errno.EEXIST: "this already exists and is in the way"}.get(err.errno, err.strerror or str(err))
    where = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
    return f"{where}: {hint} ([Errno {err.errno}] {err.strerror})"


def _missing_optional(err: ImportError) -> bool:
    """True for a missing optional dependency (or an import error written for the user), not a bug."""
    name = (err.name or "").split(".")[0]
    return name in OPTIONAL_MODULES or "pip install" in str(err)


def _set_threads(n: int) -> None:
    if n < 1:
        raise UserError(f"--threads {n} is invalid: the number of CPU threads must be at least 1")
    most = max(64, 4 * (os.cpu_count() or 1))  # torch would try to start them all (a huge n crashes it)
    if n > most:
        raise UserError(f"--threads {n} is invalid: far more threads than this machine's {os.cpu_count()} CPU cores. "
                        f"Expected: an int in [1, {most}]; usually the number of cores or fewer")
    import torch

    torch.set_num_threads(n)


def _threads_option(parser, default: int | None = None) -> None:
    shown = "torch's choice" if default is None else default
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"torch CPU threads (default: {shown}; 1 is fastest for small models such as "
                             "the demo's, especially on a busy machine)")


def _headline_legend() -> str:
    """The headline columns of comparison tables and the Report key each shows (from the metric registry)."""
    from synthsae.metrics import HEADLINE

    return ", ".join(f"{title} = {key}" for title, key in HEADLINE)


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


# ---- subcommands ----------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from synthsae.experiments.demo import demo_config
    from synthsae.experiments.run import run_experiment

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    config = demo_config(samples=args.samples, variants=variants, eval_samples=args.eval_samples, seed=args.seed,
                         plots=not args.no_plots)
    _device(args.device)  # fail now on an unavailable device
    from synthsae.world import World

    print(World(config.world_config()).describe())
    print(f"\nTraining {len(config.sae)} SAEs ({', '.join(s.name for s in config.sae)}) on "
          f"{config.train.n_samples:,} samples each, then evaluating on {config.eval.n:,} fresh samples.")
    result = run_experiment(config, args.out, device=args.device, progress=_progress(args), overwrite=args.overwrite)
    print("\n" + result.table())
    print(f"\nColumns: {_headline_legend()} (definitions in docs/metrics.md).")
    print(f"Report: {result.report_path}")
    return 0


def cmd_run(args) -> int:
    from synthsae.experiments.run import run_experiment

    target = args.target
    is_file = Path(target).suffix in (".toml", ".json") or Path(target).is_file()
    if is_file:
        data = _read_table(target)
        if "recipe" in data:
            name = data.pop("recipe")
            return _run_recipe(name, data, args, default_out=Path(target).stem)
        if "sweep" in data:
            raise UserError(f"{target} has a [sweep] table: run it with `synthsae sweep {target}`")
        from synthsae.experiments.config import ExperimentConfig

        if args.executor is not None or args.workers is not None or args.address is not None:
            raise UserError("--executor / --workers / --address apply to recipes; an experiment config runs its SAEs "
                            "in this process (for a grid of experiments use `synthsae sweep`)")
        config = ExperimentConfig.from_dict(_apply_sets(data, args.set))
        out = args.out or str(Path("synthsae-runs") / Path(target).stem)
        result = run_experiment(config, out, device=_device(args.device), progress=_progress(args),
                                overwrite=args.overwrite)
        print(result.table())
        print(f"Report: {result.report_path}")
        return 0
    return _run_recipe(target, None, args, default_out=target)


def _run_recipe(name: str, data: dict[str, Any] | None, args, default_out: str) -> int:
    import torch

    from synthsae.experiments.recipes import RECIPES

    try:
        recipe = RECIPES.get(name)
    except ConfigError as err:
        raise UserError(f"{err} (or give a path to a .toml experiment config)") from None
    if data is None:
        config = recipe.config_class.small() if args.small else recipe.config_class()
        data = config.to_dict()
    elif args.small:
        raise UserError("--small applies to a recipe name, not to a config file (edit the file instead)")
    config = recipe.config_class.from_dict(_apply_sets(data, args.set), path=name)
    out = Path(args.out or str(Path("synthsae-runs") / default_out))
    device = _device(args.device) or torch.device("cpu")
    from synthsae.experiments.engine import CellsFailed, run_recipe

    options = {"address": args.address} if args.address is not None else {}
    try:
        result, report = run_recipe(recipe, config, out, device, _progress(args), executor=args.executor or "serial",
                                    n_workers=args.workers, overwrite=args.overwrite, **options)
    except CellsFailed as err:  # the command ran; some of its work failed (as a sweep with failed trials)
        print(f"synthsae: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{name}: {result.claim.strip().splitlines()[0] if result.claim.strip() else ''}")
    from synthsae.experiments.recipes.base import verdict_word

    print(f"verdict: {verdict_word(result.held)}")
    print(f"Report: {report}")
    return 0


def cmd_sweep(args) -> int:
    from synthsae.experiments.sweep import SweepConfig, run_sweep

    data = _apply_sets(_read_table(args.config), args.set)
    config = SweepConfig.from_dict(data)
    out = args.out or str(Path("synthsae-sweeps") / Path(args.config).stem)
    options = {"address": args.address} if args.address is not None else {}
    if options and args.executor != "ray":
        raise UserError(f"--address is an option of the ray executor, not of {args.executor!r}")
    _device(args.device)
    result = run_sweep(config, out, executor=args.executor, n_workers=args.workers, device=args.device,
                       retry_failed=args.retry_failed, progress=_progress(args), overwrite=args.overwrite, **options)
    n_ok = len(result.rows) - len(result.failed)
    print(f"{len(result.rows)} trials: {n_ok} ok, {len(result.failed)} failed")
    for r in result.failed:
        print(f"  failed {r['trial']}: {r['error']}")
    print(f"Results: {Path(out) / 'results.csv'}  Report: {Path(out) / 'report.md'}")
    if result.failed:  # scripts and CI must be able to tell
        print(f"synthsae: error: {len(result.failed)} of {len(result.rows)} trials failed (their errors are listed "
              f"above and in the `error` column of {Path(out) / 'results.csv'}); fix the cause and rerun with "
              "--retry-failed", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_world(args) -> int:
    from synthsae.world import World

    world = World.preset(args.preset, seed=args.seed)
    print(world.describe())
    batch = world.sample(1024, seed=args.seed)
    print(f"  sampled 1024 x: mean L0 = {batch.codes.nnz / 1024:.2f}, "
          f"mean ||x|| = {float(batch.x.norm(dim=1).mean()):.3f}")
    if args.save:
        from synthsae.experiments import folders

        folders.claim(args.save, "world", args.preset, folders.digest_of(world.config.to_dict()), args.overwrite)
        print(f"saved to {world.save(args.save)}")
    return 0


def _load_world(spec: str, seed: int | None):
    from synthsae import io as sio
    from synthsae.world import PRESETS, World, WorldConfig

    path = Path(spec)
    if path.is_dir():
        if seed is not None:
            raise UserError("--world-seed applies to a preset, not to a saved world folder")
        if (path / "world.safetensors").is_file():
            return World.load(path)
        if (path / "world.json").is_file():  # an experiment folder written by `synthsae run`
            return World(WorldConfig.from_dict(sio.read_json(path / "world.json"), path=str(path / "world.json")))
        raise UserError(f"{spec} holds no world (expected world.safetensors from `synthsae world --save`, "
                        "or world.json from `synthsae run`)")
    if spec not in PRESETS:
        raise UserError(f"--world {spec!r} is neither a folder nor a preset. Presets: {', '.join(PRESETS.available())}")
    return World.preset(spec, **({} if seed is None else {"seed": seed}))


def _load_sae(spec: str, device):
    from synthsae.sae.base import CONFIG_FILE, SAE

    path = Path(spec)
    for folder in (path, path / "model"):  # an SAE folder, or an experiment's saes/<label>/
        if (folder / CONFIG_FILE).is_file() and (folder / "model.safetensors").is_file():
            return SAE.load(folder, device=device)
    raise UserError(f"{spec} holds no saved SAE (expected config.json + model.safetensors, as written by "
                    "SAE.save or `synthsae run` in saes/<label>/model/)")


def cmd_evaluate(args) -> int:
    from synthsae.metrics.evaluate import evaluate

    device = _device(args.device)
    sae = _load_sae(args.checkpoint, device)
    world = _load_world(args.world, args.world_seed)
    report = evaluate(sae, world, n=args.n, seed=args.seed, device=device)
    print(report.table())
    if args.out:
        from synthsae.experiments import folders

        what = {"sae": sae.config.to_dict(), "weights": folders.tensors_digest(sae.state_dict()),
                "world": world.config.to_dict(), "n": args.n, "seed": args.seed}
        folders.claim(args.out, "evaluation", str(args.checkpoint), folders.digest_of(what), args.overwrite)
        print(f"saved to {report.save(args.out)}")
    return 0


def cmd_recipes(args) -> int:
    from synthsae.experiments.recipes import RECIPES

    names = RECIPES.available()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {RECIPES.get(name).description}")
    print("\nRun one with `synthsae run NAME [--small] [--set key=value]`; its knobs: "
          "`synthsae run NAME --print-config`.")
    return 0


# ---- the parser -------------------------------------------------------------------------------------
OVERWRITE_HELP = ("replace --out when it holds another experiment's results (deletes them); without it such a "
                  "folder is refused, and the same command resumes in its own folder")


def build_parser() -> argparse.ArgumentParser:
    from synthsae.experiments.demo import DEMO_EVAL_SAMPLES, DEMO_SAMPLES, DEMO_VARIANTS
    from synthsae.experiments.executors import EXECUTORS
    from synthsae.metrics import HEADLINE
    from synthsae.world import PRESETS

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="synthsae", formatter_class=fmt,
        description="Synthetic ground truth for sparse autoencoders: plant features, train SAEs, score them.",
        epilog="examples:\n  synthsae demo\n  synthsae run configs/topk_vs_relu.toml --out runs/topk\n"
               "  synthsae sweep configs/sweep_l1.toml --workers 2\n  synthsae recipes\n"
               "Run `synthsae COMMAND --help` for the options of a command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", formatter_class=fmt, help="train relu_l1, topk, jumprelu and aen on a toy world and compare them",
        description="Train four SAE variants on a toy world with planted features (CPU, a few minutes), print "
                    f"a comparison table ({', '.join(t for t, _ in HEADLINE)}) and write a report "
                    "folder with plots. Rerunning the same command into the same folder reuses finished results.",
        epilog="examples:\n  synthsae demo\n  synthsae demo --out my-demo --variants topk,relu_l1 --samples 100000")
    demo.add_argument("--out", default="synthsae-demo", metavar="DIR", help="report folder (default: %(default)s)")
    demo.add_argument("--samples", type=int, default=DEMO_SAMPLES, metavar="N",
                      help="training samples per SAE (default: %(default)s)")
    demo.add_argument("--eval-samples", type=int, default=DEMO_EVAL_SAMPLES, metavar="N",
                      help="evaluation samples (default: %(default)s)")
    demo.add_argument("--variants", default=",".join(DEMO_VARIANTS), metavar="LIST",
                      help="comma-separated subset of the default %(default)s")
    demo.add_argument("--seed", type=int, default=0, help="root seed (default: %(default)s)")
    demo.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
    demo.add_argument("--no-plots", action="store_true", help="skip the PNG figures (faster)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    # The demo's matrices are tiny (d = 32, m = 256): extra CPU threads only add synchronisation,
    # and with any other load on the machine OpenMP's spin-waiting made training ~20x slower.
    _threads_option(demo, default=1)

    run = sub.add_parser(
        "run", formatter_class=fmt, help="run one experiment from a TOML config, or a named recipe",
        description="Run one experiment: a TOML/JSON experiment config (see configs/), a TOML file with a "
                    "top-level `recipe = NAME` key, or a recipe name (`synthsae recipes` lists them). Writes "
                    "config, metrics (JSON), per-feature tables (CSV), checkpoints (safetensors), plots (PNG) and "
                    "report.md into --out. Rerunning the same command after a kill resumes where it stopped.",
        epilog="examples:\n  synthsae run configs/topk_vs_relu.toml --out runs/topk\n"
               "  synthsae run configs/topk_vs_relu.toml --set train.n_samples=50000 --set sae[0].k=8\n"
               "  synthsae run starvation --small --out runs/starvation\n"
               "  synthsae run configs/topk_vs_relu.toml --device cuda")
    run.add_argument("target", metavar="CONFIG.toml|RECIPE")
    run.add_argument("--out", metavar="DIR", help="output folder (default: synthsae-runs/<name>)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (overrides the config)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key (dotted, TOML value), repeatable: --set train.lr=1e-3")
    run.add_argument("--small", action="store_true", help="recipes: the CI-sized configuration")
    run.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    run.add_argument("--executor", default=None, choices=EXECUTORS.available(),
                     help="recipes: where the recipe's cells run (serial: in-process, the default; local: parallel "
                          "processes; ray: a Ray cluster)")
    run.add_argument("--workers", type=int, default=None, metavar="N", help="recipes: parallel cells")
    run.add_argument("--address", default=None, help="recipes, ray: cluster address (default: start a local Ray)")
    _threads_option(run)

    sweep = sub.add_parser(
        "sweep", formatter_class=fmt, help="run a grid of experiments (seeds x variants x hyperparameters)",
        description="Run every trial of a sweep config (an experiment config plus a [sweep] table with seeds and "
                    "grid) and write one tidy table (results.csv/json: one row per trial) plus plots of each "
                    "metric against each swept parameter. A killed sweep resumes: rerun the same command and "
                    "finished trials are skipped. A failing trial is recorded with its error.",
        epilog="examples:\n  synthsae sweep configs/sweep_l1.toml --out sweeps/l1\n"
               "  synthsae sweep configs/sweep_l1.toml --executor serial     # in-process, for debugging\n"
               "  synthsae sweep configs/sweep_l1.toml --executor ray --address auto   # pip install 'synthsae[ray]'")
    sweep.add_argument("config", metavar="CONFIG.toml")
    sweep.add_argument("--executor", default="local", choices=EXECUTORS.available(),
                       help="local: parallel processes (default); serial: in-process; ray: a Ray cluster")
    sweep.add_argument("--address", default=None, help="ray: cluster address (default: start a local Ray)")
    sweep.add_argument("--workers", type=int, default=None, metavar="N",
                       help="parallel trials (local: default = CPU cores, at most 8; ray: CPUs of a local Ray)")
    sweep.add_argument("--out", metavar="DIR", help="output folder (default: synthsae-sweeps/<config name>)")
    sweep.add_argument("--device", default=None, help="cpu, cuda, ... for every trial (overrides the config)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of the base experiment or of [sweep], e.g. --set sweep.seeds=[0]")
    sweep.add_argument("--retry-failed", action="store_true", help="rerun trials that failed before")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    world = sub.add_parser("world", formatter_class=fmt, help="describe (and optionally save) a preset world",
                           epilog="examples:\n  synthsae world toy\n  synthsae world hierarchy --save worlds/h")
    world.add_argument("preset", choices=PRESETS.available())
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--save", metavar="DIR", help="write config.json + world.safetensors here")
    world.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    ev = sub.add_parser(
        "evaluate", formatter_class=fmt, help="evaluate a saved SAE against a world's ground truth",
        description="Evaluate a saved SAE (a folder with config.json + model.safetensors, or an experiment's "
                    "saes/<label>/ folder) against a world: a preset, a folder saved by `synthsae world --save`, "
                    "or an experiment folder written by `synthsae run`.",
        epilog="examples:\n  synthsae evaluate runs/topk/saes/topk --world runs/topk\n"
               "  synthsae evaluate my_sae/ --world toy --n 50000 --out my_sae/eval")
    ev.add_argument("checkpoint", metavar="CHECKPOINT")
    ev.add_argument("--world", required=True, metavar="PRESET|DIR")
    ev.add_argument("--world-seed", type=int, default=None, metavar="N", help="seed of a preset world (default 0)")
    ev.add_argument("--n", type=int, default=100_000, help="evaluation samples (default: %(default)s)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation samples (default: %(default)s)")
    ev.add_argument("--out", metavar="DIR", help="write metrics.json, CSV tables and PNG plots here")
    ev.add_argument("--device", default=None)
    ev.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _threads_option(ev)

    bench = sub.add_parser(
        "bench", formatter_class=fmt, help="score SAEs (ours or your own class) on every task, with CIs",
        description="Run the bench: tasks (worlds isolating one failure mode each) x SAEs x seeds at matched L0, and "
                    "write a leaderboard (report.md, results.csv, results.json, figures/). An SAE is a registered "
                    "variant, path/to/file.py:Class or package.module:Class (see docs/bench.md). A killed bench "
                    "resumes: rerun the same command.",
        epilog="examples:\n  synthsae bench --tier lite --out bench-lite\n"
               "  synthsae bench --sae main --sae my_sae.py:MySAE --seeds 3 --executor local --workers 2\n"
               "  synthsae bench --config bench.toml     # [bench] tier, saes, seeds, tasks, out\n"
               "  synthsae bench --tier full --device cuda   # the published SynthSAEBench protocol")
    bench.add_argument("--tier", default=None, choices=("lite", "full", "micro"), help="lite (default): CPU, minutes; "
                       "full: the published protocol, GPU; micro: a smoke test")
    bench.add_argument("--sae", action="append", default=None, metavar="NAME|FILE.py:CLASS|MODULE:CLASS",
                       help="an SAE to bench (repeat; 'main' = the main variants; default: the main variants)")
    bench.add_argument("--task", action="append", default=None, metavar="TASK", help="a task (repeat; default: all)")
    bench.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds per cell (default 3)")
    bench.add_argument("--budget", type=float, default=None, metavar="X",
                       help="multiply every task's training samples by X (default 1; e.g. 4 when SAEs did not converge)")
    bench.add_argument("--config", default=None, metavar="FILE.toml", help="a TOML file with a [bench] table")
    bench.add_argument("--out", metavar="DIR", help="output folder (default: synthsae-bench-<tier>)")
    bench.add_argument("--executor", default="serial", choices=EXECUTORS.available())
    bench.add_argument("--workers", type=int, default=None, metavar="N", help="parallel cells (local / ray)")
    bench.add_argument("--address", default=None, help="ray: cluster address")
    bench.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _threads_option(bench)

    sub.add_parser("recipes", help="list the recipes (experiments that test published claims)")
    return parser


def cmd_bench(args) -> int:
    from synthsae.bench import bench

    table = _read_table(args.config).get("bench", {}) if args.config else {}
    unknown = set(table) - {"tier", "saes", "seeds", "tasks", "out", "budget"}
    if unknown:
        raise UserError(f"{args.config}: [bench] has unknown key(s) {sorted(unknown)}; expected tier, saes, seeds, "
                        "tasks, out, budget")
    tier = args.tier or table.get("tier", "lite")
    out = args.out or table.get("out") or f"synthsae-bench-{tier}"
    options = {"address": args.address} if args.address is not None else {}
    _device(args.device)
    board = bench(tier=tier, saes=args.sae or table.get("saes"), seeds=args.seeds or table.get("seeds", 3), out=out,
                  tasks=args.task or table.get("tasks"), executor=args.executor, workers=args.workers,
                  device=args.device, overwrite=args.overwrite, progress=_progress(args),
                  budget=args.budget or table.get("budget", 1.0),
                  command="synthsae " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None, **options)
    print(f"bench {tier}: {len(board.tasks)} tasks x {len(board.saes)} SAEs x {len(board.meta['seeds'])} seeds. "
          f"Report: {Path(out) / 'report.md'}  Results: {Path(out) / 'results.csv'}")
    return 0


COMMANDS = {"demo": cmd_demo, "run": cmd_run, "sweep": cmd_sweep, "world": cmd_world, "evaluate": cmd_evaluate,
            "recipes": cmd_recipes, "bench": cmd_bench}


def _print_config(args) -> int:
    """`run --print-config`: the resolved config (after --set / --small) as TOML."""
    import tomli_w

    from synthsae.config import _drop_none

    target = args.target
    if Path(target).suffix in (".toml", ".json") or Path(target).is_file():
        data = _read_table(target)
        if "recipe" not in data:
            from synthsae.experiments.config import ExperimentConfig

            from synthsae.experiments.run import build_world

            config = ExperimentConfig.from_dict(_apply_sets(data, args.set))
            build_world(config)  # a world that fails only when built is invalid too: exit 2, not 0
            print(config.to_toml(), end="")
            return 0
        name = data.pop("recipe")
    else:
        name, data = target, None
    from synthsae.experiments.recipes import RECIPES

    recipe = RECIPES.get(name)
    if data is None:
        data = (recipe.config_class.small() if args.small else recipe.config_class()).to_dict()
    config = recipe.config_class.from_dict(_apply_sets(data, args.set), path=name)
    from synthsae.experiments.engine import validate_recipe

    validate_recipe(recipe, config)  # builds its cells and worlds: an invalid config exits 2, not 0
    print(tomli_w.dumps({"recipe": name, **_drop_none(config.to_dict())}), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status: 0 ok, 1 some work failed (sweep trials, recipe cells), 2 a user error,
    130 interrupted.

    User errors (`ConfigError` from any check, an OSError on a user's path, a missing optional
    dependency, a training blow-up) print one `synthsae: error: ...` line; anything else is a bug
    and keeps its traceback. `--device`, `--out` and `--save` are checked before any work."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            _set_threads(args.threads)
        if getattr(args, "device", None) is not None:  # before any work, and naming the option
            from synthsae._rng import resolve_device

            resolve_device(args.device, "--device")
        for option in ("out", "save"):
            if getattr(args, option, None) is not None and not getattr(args, "print_config", False):
                _check_out_dir(getattr(args, option), f"--{option}")
        if args.command == "run" and args.print_config:
            return _print_config(args)
        return COMMANDS[args.command](args)
    except (ConfigError, FloatingPointError) as err:  # bad input; a blow-up of the user's hyperparameters
        print(f"synthsae: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a user's path: missing, not writable, a file where a folder should be, disk full
        if err.filename is None:
            raise
        print(f"synthsae: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as err:
        if not _missing_optional(err):
            raise
        print(f"synthsae: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("synthsae: interrupted. Rerun the same command to resume (finished work is kept).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
