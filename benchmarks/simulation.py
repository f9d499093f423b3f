"""Benchmark: events/s of the cell-level fast simulation for π0 and π±.

Prints, for each particle, the wall time and events/s of `calotools.simulation`
over the default spectrum (0.2–2000 GeV, noise on, default 0.8 × 0.8 window of
4,000 cells) and, as the baseline measured in the same run, the time of only
drawing one float32 standard normal per window cell of every event, the
irreducible cost of noise: the ratio says how much the physics costs on top.
Target (simulation issue, part 1): ≥ 2,000 events/s on a 2-core machine.

    python benchmarks/simulation.py [--n 20000] [--batch-size 1024] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

from calotools.cells import Window
from calotools.simulation import SimulationConfig, simulate


def simulate_all(config: SimulationConfig) -> int:
    return sum(len(batch) for batch in simulate(config))


def noise_only(n_events: int, batch_size: int, seed: int) -> int:
    """Draw, batch by batch, the float32 standard normals of every window cell."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n_cells = Window().n_cells
    drawn = 0
    for start in range(0, n_events, batch_size):
        size = min(batch_size, n_events - start)
        drawn += len(rng.standard_normal((size, n_cells), dtype=np.float32))
    return drawn


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per particle")
    parser.add_argument("--batch-size", type=int, default=1024, help="events per batch")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each run")
    args = parser.parse_args()

    baseline = timed(noise_only, args.n, args.batch_size, 1)
    rows = [("noise only (baseline)", baseline)]
    for particle in ("pi0", "pi+"):
        config = SimulationConfig(
            particle=particle, n_events=args.n, batch_size=args.batch_size, seed=1
        )
        simulate_all(SimulationConfig(particle=particle, n_events=64))  # warm caches, imports
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        rows.append((f"simulate {particle}", timed(simulate_all, config)))
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)

    print(f"{args.n} events per row, batches of {args.batch_size}, {Window().n_cells} cells/event")
    print(f"{'':24s} {'seconds':>9s} {'events/s':>10s} {'× baseline':>11s}")
    for name, seconds in rows:
        print(f"{name:24s} {seconds:9.2f} {args.n / seconds:10.0f} {seconds / baseline:11.1f}")


if __name__ == "__main__":
    main()
