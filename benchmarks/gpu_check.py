"""The timed parts of benchmarks/gpu_check.sh (one GPU, SynthSAEBench-16k). Every figure is printed.

    python benchmarks/gpu_check.py sae   [--steps 3000] [--device cuda]   # BatchTopK (L0 = 25, width 4096):
                                                                          # our trainer vs SAELens's SyntheticSAERunner
    python benchmarks/gpu_check.py codes [--n 100000] [--device cuda]     # certified exact codes (synthsae.solvers)

`sae`: the same SAE (BatchTopK, k = 25, 4096 latents, 768 inputs), batch 1024, lr 3e-4, the same number
of steps, on the same device, each side drawing its own data there: ours from
`World.preset("synthsaebench-16k")` through the device sampler (`World.sample(..., device="cuda")`),
SAELens's from its `SyntheticModel` of the same world definition (benchmarks/generate.py's "16k-hc":
no orthogonalization, which does not change sampling cost). Only the training loop is timed
(`train(...)` against `SyntheticSAERunner.run()`, final evaluation, checkpoints, outputs and wandb
off); building the worlds is timed separately. A warm-up of --warmup steps on each side comes
first (CUDA context, kernels; SAELens's on the same SyntheticModel). `--world small` swaps in small
worlds, to check the script on a CPU.
`codes`: n samples of the 16k world drawn on the device, then `sparse_code(x, D, l1, nonneg=True,
device=...)` on the true dictionary in chunks of --chunk samples: time, samples/s, share certified
(relative duality gap <= 1e-9 and KKT <= 1e-7), largest relative gap.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/generate.py: SAELens's world config


def _require_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"gpu_check: device = {device!r} is invalid: no CUDA device is visible to torch "
                 f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Expected: a machine with a GPU.")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _worlds(kind: str):
    """(our World, SAELens SyntheticModelConfig dict) of the same definition."""
    from generate import CASES

    from synthsae import World

    if kind == "16k":
        return World.preset("synthsaebench-16k"), CASES["16k-hc"][0]
    small = {"num_features": 512, "hidden_dim": 64, "seed": 0, "bias": 1.0,
             "firing_probability": {"generator_name": "zipfian", "exponent": 0.5, "max_prob": 0.4, "min_prob": 5e-3}}
    return World.preset("toy", m=512, d=64), small


def check_sae(args) -> None:
    from sae_lens import BatchTopKTrainingSAEConfig, LoggingConfig
    from sae_lens.synthetic import SyntheticModelConfig
    from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunner, SyntheticSAERunnerConfig

    from synthsae.sae import make
    from synthsae.sae.train import train

    dev, batch, width, k = args.device, 1024, args.width, args.k
    t0 = time.perf_counter()
    world, sl_dict = _worlds(args.world)
    print(f"our world built in {time.perf_counter() - t0:.1f} s (m = {world.m}, d = {world.d})")
    d = world.d

    def ours(steps: int) -> float:
        sae = make("batchtopk", d, width, k=k)
        _sync(dev)
        t = time.perf_counter()
        train(sae, world, steps * batch, batch, lr=3e-4, seed=0, device=dev, progress=False)
        _sync(dev)
        return time.perf_counter() - t

    def runner(steps: int, model=None):
        cfg = SyntheticSAERunnerConfig(
            synthetic_model=SyntheticModelConfig.from_dict(sl_dict),
            sae=BatchTopKTrainingSAEConfig(d_in=d, d_sae=width, k=k, device=dev),
            training_samples=steps * batch, batch_size=batch, lr=3e-4, device=dev,
            checkpoint_path=None, output_path=None, run_final_eval=False, eval_samples=0,
            logger=LoggingConfig(log_to_wandb=False))
        return SyntheticSAERunner(cfg, override_synthetic_model=model)

    def theirs(r) -> float:
        _sync(dev)
        t = time.perf_counter()
        r.run()
        _sync(dev)
        return time.perf_counter() - t

    t = time.perf_counter()
    built = runner(args.steps)
    _sync(dev)
    print(f"SAELens SyntheticModel built in {time.perf_counter() - t:.1f} s")
    ours(args.warmup)
    theirs(runner(args.warmup, built.synthetic_model))  # the same model: warm-up without a second build
    ours_s, theirs_s = ours(args.steps), theirs(built)
    n = args.steps * batch
    print(f"BatchTopK k = {k}, width {width}, batch {batch}, {args.steps} steps ({n:,} samples) on {dev}")
    label = "device" if dev.startswith("cuda") else "reference"
    print(f"  synthsae train ({label} sampler){' ' * (10 - len(label))}{ours_s:8.2f} s  {n / ours_s:12,.0f} samples/s")
    print(f"  SAELens SyntheticSAERunner.run()  {theirs_s:8.2f} s  {n / theirs_s:12,.0f} samples/s")
    print(f"  ratio (SAELens time / ours)       {theirs_s / ours_s:8.2f}x")
    full = 200_000_000
    print(f"  projected 200M-sample run: ours {full / (n / ours_s) / 60:.1f} min, "
          f"SAELens {full / (n / theirs_s) / 60:.1f} min")


def check_codes(args) -> None:
    from synthsae.solvers import sparse_code

    dev = args.device
    t0 = time.perf_counter()
    world, _ = _worlds(args.world)
    print(f"world built in {time.perf_counter() - t0:.1f} s (m = {world.m}, d = {world.d})")
    _sync(dev)
    t = time.perf_counter()
    x = world.sample(args.n, seed=0, device=dev).x.double()
    _sync(dev)
    print(f"{args.n:,} samples drawn on {dev} in {time.perf_counter() - t:.2f} s")
    D = world.dictionary.to(dev, torch.float64)
    sparse_code(x[:64], D, args.l1, nonneg=True, device=dev, warn=False)  # warm-up
    _sync(dev)
    t = time.perf_counter()
    certified, worst, support = 0, 0.0, 0.0
    for start in range(0, args.n, args.chunk):
        res = sparse_code(x[start:start + args.chunk], D, args.l1, nonneg=True, device=dev, warn=False)
        certified += int(res.converged.sum())
        worst = max(worst, float(res.rel_gap.max()))
        support += float(res.support.sum())
    _sync(dev)
    sec = time.perf_counter() - t
    print(f"certified exact codes, l1 = {args.l1}, non-negative, {args.n:,} samples in chunks of {args.chunk:,}:")
    print(f"  {sec:.1f} s, {args.n / sec:,.0f} samples/s; certified {certified:,} / {args.n:,} "
          f"({certified / args.n:.4%}); max relative gap {worst:.3g}; mean support {support / args.n:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("sae", "codes"):
        p = sub.add_parser(name)
        p.add_argument("--device", default="cuda")
        p.add_argument("--world", choices=["16k", "small"], default="16k")
    sae = sub.choices["sae"]
    sae.add_argument("--steps", type=int, default=3000)
    sae.add_argument("--warmup", type=int, default=20)
    sae.add_argument("--width", type=int, default=4096)
    sae.add_argument("--k", type=int, default=25)
    codes = sub.choices["codes"]
    codes.add_argument("--n", type=int, default=100_000)
    codes.add_argument("--chunk", type=int, default=10_000)
    codes.add_argument("--l1", type=float, default=0.5)
    args = parser.parse_args()
    _require_device(args.device)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; torch {torch.__version__}; "
          f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
    {"sae": check_sae, "codes": check_codes}[args.what](args)


if __name__ == "__main__":
    main()
