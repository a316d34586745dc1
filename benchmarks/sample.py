"""Sampling throughput (samples/s) of the device sampler against the CPU reference sampler, measured in
the same run, on SynthSAEBench-16k (`World.preset("synthsaebench-16k")`: 16,384 features x 768 dims,
hierarchy, low-rank copula, max(0, N) magnitudes).

    python benchmarks/sample.py                      # reference vs device sampler on the CPU (and on CUDA if present)
    python benchmarks/sample.py --devices cuda --gpu-batch 131072 --repeats 5

Each timed call is a full `World.sample(n, seed, device, sampler=...)`: codes and x = z D + bias, on
that device (CUDA timings synchronize before the clock stops). The reference sampler runs on one
CPU thread by default (--threads: the machine may be shared), always on the CPU and at --cpu-batch
(its rate hardly depends on the batch size); its batch is moved to the device only for the row
"reference -> cuda" (what a CUDA run did before the device sampler). Calls take turns (A B A B ...) so that
load from other processes hits them alike; we report the median over --repeats after one warm-up
call each. Goal (issue 19, item 7): >= 1M samples/s for the device sampler on one H100-class GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def _timed(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds per call of each function, after one warm-up call each, interleaved."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in wall.items()}


def _call(world, n: int, device: str, sampler: str):
    seeds = iter(range(10**9))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run():
        world.sample(n, seed=next(seeds), device=device, sampler=sampler)
        sync()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="synthsaebench-16k")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="devices for the device sampler (default: cpu, plus cuda when available)")
    parser.add_argument("--cpu-batch", type=int, default=4096,
                        help="samples per call on the CPU (and of the reference)")
    parser.add_argument("--gpu-batch", type=int, default=65536, help="samples per call on CUDA")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))

    import synthsae
    from synthsae import World

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"synthsae from {synthsae.__file__}")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; torch {torch.__version__}, {torch.get_num_threads()} CPU "
          f"thread(s); {platform.processor() or platform.machine()}; GPU: {gpu}; median of {args.repeats} "
          f"interleaved calls; load average {load}")
    t0 = time.perf_counter()
    world = World.preset(args.preset)
    print(f"world {args.preset}: m = {world.m}, d = {world.d}, expected L0 = {world.expected_l0():.1f} "
          f"(built in {time.perf_counter() - t0:.1f} s)\n")

    rows = []
    for dev in devices:
        n_ref, n = args.cpu_batch, args.gpu_batch if dev.startswith("cuda") else args.cpu_batch
        fns = {"reference (cpu)": (n_ref, _call(world, n_ref, "cpu", "reference")),
               f"device ({dev})": (n, _call(world, n, dev, "device"))}
        if dev.startswith("cuda"):
            fns[f"reference -> {dev}"] = (n_ref, _call(world, n_ref, dev, "reference"))
        times = _timed({name: fn for name, (_, fn) in fns.items()}, args.repeats)
        ref = n_ref / times["reference (cpu)"]
        for name, (size, _) in fns.items():
            rate = size / times[name]
            rows.append((name, size, rate, rate / ref))
    print(f"{'sampler':<26} {'batch':>8} {'samples/s':>14} {'vs reference':>13}")
    for name, n, rate, ratio in rows:
        print(f"{name:<26} {n:>8} {rate:>14,.0f} {ratio:>12.2f}x")
    for name, n, rate, _ in rows:
        if name.startswith("device (cuda"):
            print(f"\ngoal >= 1,000,000 samples/s on the GPU: {'met' if rate >= 1e6 else 'NOT met'} ({rate:,.0f})")


if __name__ == "__main__":
    main()
