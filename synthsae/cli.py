"""The `synthsae` command line.

    synthsae demo                  build the default preset world and print its summary
    synthsae world PRESET [--save DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import sys


def _world_summary(preset: str, seed: int, save: str | None) -> int:
    from synthsae.world import World

    world = World.preset(preset, seed=seed)
    print(world.describe())
    batch = world.sample(1024, seed=seed)
    print(f"  sampled 1024 x: mean L0 = {batch.codes.nnz / 1024:.2f}, mean ||x|| = {float(batch.x.norm(dim=1).mean()):.3f}")
    if save:
        print(f"saved to {world.save(save)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from synthsae.world import PRESETS

    parser = argparse.ArgumentParser(prog="synthsae", description="Synthetic ground truth for sparse autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a preset world and print its summary")
    demo.add_argument("--preset", default="toy", choices=PRESETS.available())
    demo.add_argument("--seed", type=int, default=0)
    world = sub.add_parser("world", help="describe (and optionally save) a preset world")
    world.add_argument("preset", choices=PRESETS.available())
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--save", metavar="DIR", help="write config.json + world.safetensors here")
    args = parser.parse_args(argv)
    try:
        return _world_summary(args.preset, args.seed, getattr(args, "save", None))
    except ValueError as err:
        print(f"synthsae: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
