"""World sampling throughput (samples/s): synthsae's `World.sample` against SAELens's `SyntheticModel.sample`
on the same distribution, measured in the same run.

    python benchmarks/generate.py                  # all cases
    python benchmarks/generate.py --cases toy --repeats 5

Cases (each SAELens config is turned into a synthsae world with `synthsae.interop.world_from_saelens`, so
both sides sample exactly the same distribution; no orthogonalization, which does not change sampling):
  toy        128 x 32, Zipf(1.0, 0.25 .. 0.01) -- the toy preset's firing, with SAELens's magnitude law
             (the toy preset itself, with uniform magnitudes, is timed too, for reference)
  16k        16,384 x 768, independent Zipfian firing (0.5, 0.4 .. 5e-4), magnitudes N(1, 0)
  16k-hc     the same plus SynthSAEBench's hierarchy (128 roots, branching 4, depth 3, all mutually
             exclusive, SAELens compensation) and low-rank copula (rank 25, scale 0.1), magnitudes
             max(0, N(5 .. 4, |N(0.5, 0.5)|))
Requires `pip install sae-lens`. SAELens samples from torch's global RNG; we fork it around each call.
Both sides run with the same number of torch threads (--threads, default 1: the machine is shared) and
take turns call by call; we report the median wall time and the median process CPU time per call.
Goals (issue 2): >= 2x SAELens on toy, >= 10x at 16k, >= 5x at 16k with hierarchy + correlation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

ZIPF_16K = {"generator_name": "zipfian", "exponent": 0.5, "max_prob": 0.4, "min_prob": 5e-4}
CASES = {
    "toy": ({"num_features": 128, "hidden_dim": 32, "seed": 0, "bias": 0.0, "mean_firing_magnitudes": 1.0,
             "std_firing_magnitudes": 0.29,
             "firing_probability": {"generator_name": "zipfian", "exponent": 1.0, "max_prob": 0.25, "min_prob": 0.01}},
            4096),
    "16k": ({"num_features": 16384, "hidden_dim": 768, "seed": 0, "bias": 0.0, "firing_probability": ZIPF_16K}, 4096),
    "16k-hc": ({"num_features": 16384, "hidden_dim": 768, "seed": 0, "bias": 1.0, "firing_probability": ZIPF_16K,
                "hierarchy": {"total_root_nodes": 128, "branching_factor": 4, "max_depth": 3,
                              "mutually_exclusive_portion": 1.0, "compensate_probabilities": True},
                "correlation": {"rank": 25, "correlation_scale": 0.1, "seed": None},
                "mean_firing_magnitudes": {"generator_name": "linear", "start": 5.0, "end": 4.0},
                "std_firing_magnitudes": {"generator_name": "folded_normal", "mean": 0.5, "std": 0.5}}, 4096),
}


def _interleaved(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds per call of each function, after one warm-up call each; the
    functions take turns (A B A B ...) so that load from other processes hits them alike."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig

    from synthsae import World
    from synthsae.interop import SAELensCompatibilityWarning, world_from_saelens

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    import synthsae
    print(f"synthsae from {synthsae.__file__}")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"median of {args.repeats} interleaved runs; load average {load}\n")
    print(f"{'case':<22} {'batch':>6} {'synthsae samples/s':>19} {'SAELens samples/s':>18} {'ratio (wall)':>13} "
          f"{'ratio (CPU)':>12}")
    for name in args.cases:
        spec, batch = CASES[name]
        model = SyntheticModel(SyntheticModelConfig.from_dict(spec))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAELensCompatibilityWarning)
            world = world_from_saelens(spec)
        calls = {"seed": 0}

        def ours(world=world, batch=batch, calls=calls):
            calls["seed"] += 1
            return world.sample(batch, seed=calls["seed"]).x

        def theirs(model=model, batch=batch, calls=calls):
            with torch.random.fork_rng():
                torch.manual_seed(calls["seed"])
                return model.sample(batch)

        fns = {"ours": ours, "theirs": theirs}
        if name == "toy":
            toy = World.preset("toy")
            fns["preset"] = lambda toy=toy, batch=batch: toy.sample(batch, seed=1).x
        t = _interleaved(fns, args.repeats)
        (w_ours, c_ours), (w_theirs, c_theirs) = t["ours"], t["theirs"]
        print(f"{name:<22} {batch:>6} {batch / w_ours:>19,.0f} {batch / w_theirs:>18,.0f} {w_theirs / w_ours:>12.2f}x "
              f"{c_theirs / c_ours:>11.2f}x", flush=True)
        if name == "toy":
            print(f"{'toy preset (uniform)':<22} {batch:>6} {batch / t['preset'][0]:>19,.0f} {'-':>18} {'-':>13} "
                  f"{'-':>12}", flush=True)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nload average at the end: {load}")


if __name__ == "__main__":
    main()
