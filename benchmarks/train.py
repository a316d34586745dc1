"""Training throughput of synthsae SAEs, against the bare matmuls and against SAELens.

For `topk` and `relu_l1`, on the toy preset and on 16,384 latents x 768 dims (the
synthsaebench-16k preset), prints:

* step: process CPU seconds per training step of `synthsae.train` on one fixed batch (no data
  generation): forward, loss, backward, parallel-gradient removal, Adam, renormalization,
  bookkeeping and logging (log_every=100, as in a long run). Per-step time is
  (T(1 + steps) - T(1)) / steps, so set-up and the first step's allocations are excluded.
* matmul: process CPU seconds of the five dense products a dense step needs (encoder forward
  x W_enc, decoder forward z W_dec, and the backward products g W_dec^T, z^T g, x^T g_pre), and
  step / matmul (goal <= 1.5 at 16k). SAEs run their default, plain dense path; with
  --sparse-kernels they are built with `sparse_kernels=True` (synthsae.sae.sparse), which can
  beat this dense baseline when codes are sparse.
* Sparsity state: a fresh relu_l1 SAE fires on about half its latents, a trained one on a few.
  Step times are reported at initialization ("init") and at trained sparsity ("trained": b_enc
  set so each latent fires with probability L0/m on the batch, L0 = the world's mean L0), since
  the sparse kernels only pay once codes are sparse. TopK is exactly k-sparse from the start.
* end to end: samples/s of `synthsae.train` with world sampling included, from the same state,
  against SAELens `train_toy_sae` (the trainer behind `SyntheticSAERunner`) on its own synthetic
  generator with the same d, m, batch size, architecture and mean L0, in the same run (goal >= 3x).
  SAELens runs in a subprocess of this Python when `sae_lens` is importable (pip install
  "synthsae[bench]"). SAELens's dense step cost does not depend on sparsity.

Rounds alternate synthsae and the baselines; medians are printed. Torch uses --threads threads.

Usage: python benchmarks/train.py [--quick] [--rounds R] [--steps-16k N] [--threads T] [--batch-size B]
                                 [--presets toy,synthsaebench-16k] [--sparse-kernels] [--no-saelens]
                                 [--reuse-freed-memory]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthsae._malloc import reuse_freed_memory  # noqa: E402
from synthsae._rng import generator  # noqa: E402
from synthsae.sae import make, train  # noqa: E402
from synthsae.world import World  # noqa: E402


class FixedBatch:
    """A 'world' that always returns the same batch: times the trainer without data generation."""

    def __init__(self, x: torch.Tensor):
        self.x, self.d, self.m = x, x.shape[1], -1

    def sample(self, n, seed=0, device=None, dtype=torch.float32):
        return SimpleNamespace(x=self.x)


def cpu_time(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def bare_matmuls(B: int, d: int, m: int, repeats: int) -> float:
    """CPU seconds of the five dense products of one dense training step (median of repeats)."""
    g = generator(0)
    x, gx = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    W_enc, W_dec = torch.randn(d, m, generator=g), torch.randn(m, d, generator=g)
    z, gpre = torch.randn(B, m, generator=g), torch.randn(B, m, generator=g)

    def run():
        x @ W_enc          # encoder forward
        z @ W_dec          # decoder forward
        gx @ W_dec.T       # grad wrt codes
        z.T @ gx           # grad wrt W_dec
        x.T @ gpre         # grad wrt W_enc

    run()  # warm-up
    return statistics.median(cpu_time(run) for _ in range(repeats))


def build(name: str, hp: dict, d: int, m: int, x: torch.Tensor, trained_l0: float | None):
    """A fresh SAE; with trained_l0, b_enc is set so each latent fires on ~trained_l0/m of x."""
    sae = make(name, d, m, **hp)
    if trained_l0 is not None:
        with torch.no_grad():
            a = (x - sae.b_dec) @ sae.W_enc
            sae.b_enc.copy_(-torch.quantile(a[:512], 1.0 - trained_l0 / m, dim=0))
    return sae


def steady_cpu_per_step(name, hp, world, x, m, steps, trained_l0) -> float:
    """CPU seconds per training step on `world` after the first: (T(1 + steps) - T(1)) / steps,
    each from a fresh SAE built by `build` on x (so set-up and first-step costs cancel)."""
    B = x.shape[0]

    def run(n_steps):
        sae = build(name, hp, world.d, m, x, trained_l0)
        return cpu_time(lambda: train(sae, world, B * n_steps, B, init_b_dec=None, progress=False, log_every=100))

    return max(run(1 + steps) - run(1), 1e-9) / steps


def step_time(name, hp, x, m, steps, trained_l0) -> float:
    """CPU seconds per steady-state training step on the fixed batch x (no data generation)."""
    fixed = FixedBatch(x)
    steady_cpu_per_step(name, hp, fixed, x, m, 1, trained_l0)  # warm-up: one-time costs of the first call
    return steady_cpu_per_step(name, hp, fixed, x, m, steps, trained_l0)


def end_to_end(name, hp, world, m, B, steps, trained_l0) -> float:
    """samples/s (CPU time) of synthsae.train with world sampling, from the same state as step_time,
    first step excluded as for SAELens."""
    return B / steady_cpu_per_step(name, hp, world, world.sample(B, seed=1).x, m, steps, trained_l0)


SAELENS_SCRIPT = textwrap.dedent("""
    import json, time, torch
    torch.set_num_threads({threads})
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig, StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.synthetic import ActivationGenerator, FeatureDictionary
    from sae_lens.synthetic.training import train_toy_sae
    d, m, B, steps, l0, arch = {d}, {m}, {B}, {steps}, {l0}, {arch!r}
    fd = FeatureDictionary(m, d, initializer=None, seed=0)
    gen = ActivationGenerator(m, firing_probabilities=l0 / m, mean_firing_magnitudes=1.5, std_firing_magnitudes=0.29)
    if arch == "topk":
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=m, k={k}))
    else:
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=m, l1_coefficient=1e-3))
    train_toy_sae(sae, fd, gen, training_samples=B, batch_size=B)  # warm-up step
    t = time.process_time()
    train_toy_sae(sae, fd, gen, training_samples=B * steps, batch_size=B)
    print(json.dumps({{"samples_per_s": B * steps / (time.process_time() - t)}}))
""")


def saelens(arch: str, d: int, m: int, B: int, steps: int, l0: float, k: int, threads: int) -> float | None:
    """SAELens end-to-end samples/s (CPU time), or None when sae_lens is not installed."""
    if importlib.util.find_spec("sae_lens") is None:
        return None
    code = SAELENS_SCRIPT.format(threads=threads, d=d, m=m, B=B, steps=steps, l0=l0, arch=arch, k=k)
    env = {**os.environ, "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/tmp")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  [SAELens run failed: {proc.stderr.strip().splitlines()[-1:]}]")
        return None
    return json.loads(lines[-1])["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps and one round (smoke run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps-16k", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--presets", default="toy,synthsaebench-16k", help="comma-separated world presets")
    ap.add_argument("--sparse-kernels", action="store_true", help="build the SAEs with sparse_kernels=True")
    ap.add_argument("--no-saelens", action="store_true", help="skip the SAELens baseline")
    ap.add_argument("--reuse-freed-memory", action="store_true",
                    help="run everything inside synthsae.reuse_freed_memory() (the malloc opt-in)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    B = args.batch_size
    print(f"synthsae training benchmark  torch {torch.__version__}  threads {torch.get_num_threads()}  batch {B}  "
          f"rounds {rounds}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  load {os.getloadavg()[0]:.1f}  "
          f"sparse_kernels {args.sparse_kernels}  reuse_freed_memory {args.reuse_freed_memory}")
    print(f"{'world':>5} {'sae':>8} {'state':>7} {'step ms':>9} {'matmul ms':>10} {'ratio':>6} "
          f"{'synthsae samp/s':>16} {'SAELens samp/s':>15} {'speedup':>8}")
    with reuse_freed_memory() if args.reuse_freed_memory else contextlib.nullcontext():
        for preset in args.presets.split(","):
            run_preset(preset, args, rounds, B)


def run_preset(preset: str, args, rounds: int, B: int) -> None:
    """Measure and print the rows of one world preset."""
    world = World.preset(preset)
    l0 = float(world.firing_probabilities.sum())
    m, k = world.m, max(1, round(l0))
    steps = (10 if args.quick else 100) if preset == "toy" else max(2, args.steps_16k)
    x = world.sample(B, seed=123).x
    opt = {"sparse_kernels": True} if args.sparse_kernels else {}
    cases = [("topk", {"k": k, **opt}, None), ("relu_l1", opt, None), ("relu_l1", opt, l0)]
    results = {i: {"step": [], "mm": [], "e2e": [], "sl": []} for i in range(len(cases))}
    for _ in range(rounds):
        for i, (name, hp, trained) in enumerate(cases):
            r = results[i]
            r["step"].append(step_time(name, hp, x, m, steps, trained))
            r["mm"].append(bare_matmuls(B, world.d, m, repeats=3 if preset == "toy" else 1))
            r["e2e"].append(end_to_end(name, hp, world, m, B, steps, trained))
            if trained is None and not args.no_saelens:  # SAELens's cost does not depend on sparsity
                sl = saelens("topk" if name == "topk" else "standard", world.d, m, B, steps, l0, k, args.threads)
                if sl is not None:
                    r["sl"].append(sl)
    tag = "toy" if preset == "toy" else "16k"
    print(f"# {preset}: d={world.d} m={m}, world mean L0 {l0:.1f}, topk k={k}, {steps} steps per timing")
    saelens_of = {}
    for i, (name, hp, trained) in enumerate(cases):
        r = {key: statistics.median(v) if v else None for key, v in results[i].items()}
        if r["sl"] is not None:
            saelens_of[name] = r["sl"]
        sl = saelens_of.get(name)
        state = "init" if trained is None and name != "topk" else ("trained" if trained else "k-sparse")
        sl_txt = f"{sl:15.0f}" if sl else f"{'n/a':>15}"
        sp_txt = f"{r['e2e'] / sl:7.2f}x" if sl else f"{'n/a':>8}"
        print(f"{tag:>5} {name:>8} {state:>7} {r['step'] * 1e3:9.2f} {r['mm'] * 1e3:10.2f} "
              f"{r['step'] / r['mm']:6.2f} {r['e2e']:16.0f} {sl_txt} {sp_txt}")


if __name__ == "__main__":
    main()
