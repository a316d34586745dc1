"""Training throughput of synthsae SAEs, against the bare matmuls and against SAELens.

For `topk` and `relu_l1`, on the toy world and on 16,384 latents x 768 dims, prints:

* step: seconds per training step of `synthsae.train` on one fixed batch (no data generation),
  i.e. everything the trainer does: forward, loss, backward, parallel-gradient removal, Adam,
  renormalization, bookkeeping, logging;
* matmul: seconds of the step's bare dense matrix multiplications measured in the same run
  (encoder forward x W_enc, decoder forward z W_dec, and the three backward products
  g W_dec^T, z^T g, x^T g_pre), and step / matmul (goal <= 1.5). `topk` decodes sparsely
  (k rows per sample), so it can beat the dense baseline;
* end-to-end samples/s of `synthsae.train` with world sampling included;
* SAELens `train_toy_sae` (the trainer behind `SyntheticSAERunner`) end to end on its own synthetic
  generator with the same d, m, batch size, architecture and mean L0, when `/opt/bench-venv` has
  sae-lens, and the speed ratio (goal >= 3x).

Usage: python benchmarks/train.py [--quick] [--steps-16k N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthsae._rng import generator  # noqa: E402
from synthsae.sae import make, train  # noqa: E402

SAELENS_PYTHON = Path("/opt/bench-venv/bin/python")


class KSparseWorld:
    """Stand-in world (used when `synthsae.world` cannot build the preset): random unit atoms
    (rows of D, (m, d)); each sample fires k features drawn uniformly (with replacement) with
    magnitudes U[1, 2]; x = z D, computed sparsely."""

    def __init__(self, d: int, m: int, k: int, seed: int = 0):
        D = torch.randn(m, d, generator=generator(seed))
        self.dictionary = D / D.norm(dim=1, keepdim=True)
        self.d, self.m, self.k = d, m, k

    def sample(self, n, seed=0, device=None, dtype=torch.float32):
        g = generator(seed)
        idx = torch.randint(self.m, (n, self.k), generator=g)
        mags = 1.0 + torch.rand(n, self.k, generator=g)
        return SimpleNamespace(x=F.embedding_bag(idx, self.dictionary, per_sample_weights=mags, mode="sum").to(dtype))


class FixedBatch:
    """A 'world' that always returns the same batch: times the trainer without data generation."""

    def __init__(self, x: torch.Tensor):
        self.x, self.d, self.m = x, x.shape[1], -1

    def sample(self, n, seed=0, device=None, dtype=torch.float32):
        return SimpleNamespace(x=self.x)


def get_world(kind: str):
    """(world, description, mean L0 of the world)."""
    try:
        from synthsae.world import World

        preset = "toy" if kind == "toy" else "synthsaebench-16k"
        w = World.preset(preset)
        l0 = float(w.firing_probabilities.sum())
        if kind == "16k" and (w.d, w.m) != (768, 16384):
            raise RuntimeError(f"preset {preset} is {w.m} x {w.d}")
        return w, f"World.preset({preset!r})", l0
    except Exception as err:  # the world package may not be there yet
        d, m, k = (64, 512, 8) if kind == "toy" else (768, 16384, 25)
        print(f"  [{kind}: synthsae.world unavailable ({type(err).__name__}: {err}); using a {m}x{d} k={k} stand-in]")
        return KSparseWorld(d, m, k), f"stand-in {m}x{d}, k={k}", float(k)


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def bare_matmuls(B: int, d: int, m: int, repeats: int) -> float:
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

    return time_it(run, repeats)


def step_time(name: str, hp: dict, world, m: int, batch_size: int, steps: int) -> float:
    x = world.sample(batch_size, seed=123).x
    fixed = FixedBatch(x)
    sae = make(name, world.d, m, **hp)
    train(sae, fixed, batch_size * 2, batch_size, init_b_dec=None, progress=False)  # warm-up
    sae = make(name, world.d, m, **hp)
    t = time.perf_counter()
    train(sae, fixed, batch_size * steps, batch_size, init_b_dec=None, progress=False)
    return (time.perf_counter() - t) / steps


def end_to_end(name: str, hp: dict, world, m: int, batch_size: int, steps: int) -> float:
    sae = make(name, world.d, m, **hp)
    t = time.perf_counter()
    train(sae, world, batch_size * steps, batch_size, init_b_dec="mean", progress=False)
    return batch_size * steps / (time.perf_counter() - t)


SAELENS_SCRIPT = textwrap.dedent("""
    import json, sys, time, torch
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
    t = time.perf_counter()
    train_toy_sae(sae, fd, gen, training_samples=B * steps, batch_size=B)
    e2e = time.perf_counter() - t
    print(json.dumps({{"samples_per_s": B * steps / e2e}}))
""")


def saelens(arch: str, d: int, m: int, B: int, steps: int, l0: float, k: int, threads: int) -> float | None:
    if not SAELENS_PYTHON.exists():
        return None
    code = SAELENS_SCRIPT.format(threads=threads, d=d, m=m, B=B, steps=steps, l0=l0, arch=arch, k=k)
    env = {**os.environ, "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([str(SAELENS_PYTHON), "-c", code], capture_output=True, text=True, env=env, cwd="/tmp")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  [SAELens run failed: {proc.stderr.strip().splitlines()[-1:] }]")
        return None
    return json.loads(lines[-1])["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    ap.add_argument("--steps-16k", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B = args.batch_size
    print(f"synthsae training benchmark  torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"batch {B}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    header = (f"{'world':>6} {'sae':>8} {'step ms':>9} {'matmul ms':>10} {'ratio':>6} {'synthsae samp/s':>16} "
              f"{'SAELens samp/s':>15} {'speedup':>8}")
    for kind in ("toy", "16k"):
        world, desc, l0 = get_world(kind)
        m = world.m if kind == "toy" else 16384
        k = max(1, round(l0))
        steps = (20 if args.quick else 100) if kind == "toy" else max(2, args.steps_16k)
        print(f"\n{kind}: {desc}, SAE d={world.d} m={m}, mean L0 of the world {l0:.1f}, topk k={k}")
        print(header)
        mm = bare_matmuls(B, world.d, m, repeats=steps if kind == "toy" else 2)
        for name, hp in (("topk", {"k": k}), ("relu_l1", {})):
            st = step_time(name, hp, world, m, B, steps)
            e2e = end_to_end(name, hp, world, m, B, steps)
            sl = saelens(name if name == "topk" else "standard", world.d, m, B, steps, l0, k, args.threads)
            sl_txt = f"{sl:15.0f}" if sl else f"{'n/a':>15}"
            sp_txt = f"{e2e / sl:7.1f}x" if sl else f"{'n/a':>8}"
            print(f"{kind:>6} {name:>8} {st * 1e3:9.2f} {mm * 1e3:10.2f} {st / mm:6.2f} {e2e:16.0f} {sl_txt} {sp_txt}")


if __name__ == "__main__":
    main()
