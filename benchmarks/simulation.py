"""Benchmark: events/s of the cell-level fast simulation for π0 and π±.

Prints, for each particle, the wall time and events/s of `calotools.sim.simulation`
over the default spectrum (0.2–2000 GeV, noise on, default 0.8 × 0.8 window of
4,000 cells) and, as the baseline measured in the same run, the time of only
drawing one float32 standard normal per window cell of every event, the
irreducible cost of noise: the ratio says how much the physics costs on top.
Target (simulation issue, part 1): ≥ 2,000 events/s on a 2-core machine.

Then the whole production chain, cells → topo-clusters → moments and images →
LCW → ntuple file (`calotools.sim.samples.make_sample`), in events/s for π0 and
π±, against the same baseline. Target (part 2): ≥ 1,000 events/s.
``--memory N`` also writes an N-event π± file in a subprocess and prints its
peak resident memory (target: under 2 GB for 1M events).

    python benchmarks/simulation.py [--n 20000] [--batch-size 1024] [--profile]
                                    [--memory 1000000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from calotools.sim import samples
from calotools.sim.cells import Window
from calotools.sim.config import SimulationConfig
from calotools.sim.simulation import simulate


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


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def produce(sample: str, n_events: int, folder: Path, lcw: Path) -> None:
    """The end-to-end chain of `calotools simulate`: file, LCW and sidecar."""
    samples.make_sample(
        sample,
        folder / f"{sample}.root",
        n_events=n_events,
        seed=2,
        lcw=lcw,
        progress=False,
    )


def peak_memory_gb(n_events: int, folder: Path, lcw: Path) -> float:
    """Peak RSS of a fresh process writing an ``n_events`` π± file."""
    code = (
        "import sys; from pathlib import Path; from calotools.sim import samples; "
        "samples.make_sample('pipm', Path(sys.argv[1]), n_events=int(sys.argv[2]), "
        "lcw=sys.argv[3], progress=False)"
    )
    out = folder / "memory.root"
    subprocess.run([sys.executable, "-c", code, str(out), str(n_events), str(lcw)], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per particle")
    parser.add_argument("--batch-size", type=int, default=1024, help="events per batch")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each run")
    parser.add_argument("--chain-n", type=int, default=5_000, help="events per end-to-end row")
    parser.add_argument("--memory", type=int, default=0, help="events for the peak-memory run")
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

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lcw = samples.make_lcw_tables(folder / "lcw.npz", n_events=2_000, progress=False)
        chain_baseline = baseline * args.chain_n / args.n
        print(f"\nend to end (cells → clusters → LCW → ntuple), {args.chain_n} events per row")
        print(f"{'':24s} {'seconds':>9s} {'events/s':>10s} {'× baseline':>11s}")
        for sample in ("pi0", "pipm"):
            seconds = timed(produce, sample, args.chain_n, folder, lcw)
            print(
                f"{'chain ' + sample:24s} {seconds:9.2f} {args.chain_n / seconds:10.0f} "
                f"{seconds / chain_baseline:11.1f}"
            )
        if args.memory:
            gigabytes = peak_memory_gb(args.memory, folder, lcw)
            print(f"\npeak resident memory writing {args.memory} π± events: {gigabytes:.2f} GB")


if __name__ == "__main__":
    main()
