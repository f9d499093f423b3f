"""Benchmark: events/s of collision-event generation (issue 16), against single particles.

Today the first stage of the event chain: Pythia 8 and the truth jets
(`calotools.sim.generator.generate`), for a JZ slice and for minimum bias.
For each it prints the events kept per second, the share of candidates a slice
keeps, and the share of the time in FastJet's truth jets, clustered again on
the kept events only (for a slice a lower bound: `generate` clusters every
candidate). The baseline, measured in the same run, is the single-particle
cell simulation (`calotools.sim.simulation.simulate`, π± over the default
spectrum): the ratio says what a collision event costs against one pion.
The cells, clusters, LCW and file of whole events come with the rest of issue 16.

    python benchmarks/events.py [--n 500] [--samples jz2w minbias]
"""

from __future__ import annotations

import argparse
import time

import awkward as ak

from calotools.sim import generator
from calotools.sim.config import SimulationConfig
from calotools.sim.generator import GeneratorConfig, generate, truth_jets
from calotools.sim.simulation import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="events per sample")
    parser.add_argument(
        "--samples", nargs="*", default=["jz2w", "minbias"], choices=generator.SAMPLES
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    baseline = sum(
        len(b) for b in simulate(SimulationConfig(particle="pi+", n_events=args.n, seed=args.seed))
    )
    single = baseline / (time.perf_counter() - start)
    print(f"baseline, single π± cells: {single:,.0f} events/s ({args.n} events)")

    print(f"\n{'sample':8} {'events/s':>9} {'kept':>6} {'jets':>6} {'particles':>9} {'vs π±':>7}")
    for sample in args.samples:
        start = time.perf_counter()
        events = generate(GeneratorConfig(sample=sample, n_events=args.n, seed=args.seed))
        seconds = time.perf_counter() - start
        candidates = int(events.event_number[-1]) + 1
        start = time.perf_counter()
        truth_jets(events.particles)
        jets = time.perf_counter() - start
        particles = float(ak.mean(ak.num(events.particles)))
        rate = len(events) / seconds
        print(
            f"{sample:8} {rate:9.1f} {len(events) / candidates:6.1%} {jets / seconds:6.1%} "
            f"{particles:9.0f} {rate / single:7.4f}"
        )
    print(
        "\nkept: share of Pythia's candidates in the slice; jets: FastJet on the kept events / total"
    )


if __name__ == "__main__":
    main()
