"""Benchmark: events/s of collision events end to end (issue 16), against single particles.

Two parts, each against a baseline measured in the same run:

1. **Generator** (`calotools.sim.generator.generate`): for a JZ slice (unbiased
   and with its default p̂T bias) and minimum bias, the events kept per second,
   the share of candidates kept, the weighted acceptance Σw/N, the effective
   sample size fraction (Σw)² / (N Σw²), and the share of FastJet's truth jets.
2. **End to end** (`calotools.sim.event_samples.make_event_sample`: generation →
   cells → clusters → LCW → file) at each ⟨μ⟩ asked for, with ``--workers``
   processes: events/s of the whole run (the pile-up library's making is timed
   apart), then, in one process, the share of the time per stage. Peak memory
   (the largest resident set of the run's processes) is printed for n and 2n
   events, to show it flat in the number of events.

The baseline is the single-particle path (`calotools.sim.samples.make_sample`,
π± over the default spectrum, same workers): the ratio says what a collision
event costs against one pion.

    python benchmarks/events.py [--n 200] [--mu 0 40] [--workers 2] [--lcw data/quick/lcw_tables.npz]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from calotools.ntuple import ClusterWriter
from calotools.sim import generator
from calotools.sim.barrel import cluster_truth, digitise, simulate_deposits
from calotools.sim.calibration import LCWCalibration
from calotools.sim.config import SimulationConfig
from calotools.sim.event_samples import EVENT_BATCH, EVENT_TREE, _event_record, make_pileup_library
from calotools.sim.generator import GeneratorConfig, generate, truth_jets
from calotools.sim.pileup import PileupLibrary, overlay
from calotools.sim.reconstruction import reconstruct
from calotools.sim.samples import make_sample

_RUN = """
import json, resource, sys, time
from calotools.sim.event_samples import make_event_sample
sample, path, n, mu, workers, lcw, library = sys.argv[1:8]
start = time.perf_counter()
make_event_sample(sample, path, n_events=int(n), mu=float(mu), seed=1, workers=int(workers),
                  lcw=lcw or None, library_events=int(library), progress=False)
seconds = time.perf_counter() - start
peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))
"""


def _generator_table(n: int, seed: int) -> None:
    print(
        f"\n{'sample':8} {'bias':>4} {'events/s':>9} {'kept':>6} {'Σw/N':>6} {'ESS':>6} "
        f"{'jets':>6} {'particles':>9}"
    )
    for sample in ("jz2w", "minbias"):
        powers = [None] if sample not in generator.JZ_SLICES else [0.0, None]
        for power in powers:
            config = GeneratorConfig(sample=sample, n_events=n, seed=seed, pt_hat_bias_power=power)
            start = time.perf_counter()
            events = generate(config)
            seconds = time.perf_counter() - start
            candidates = int(events.event_number[-1]) + 1
            start = time.perf_counter()
            truth_jets(events.particles)
            jets = time.perf_counter() - start
            weight = ak.to_numpy(events.weight)
            ess = weight.sum() ** 2 / (len(weight) * np.sum(weight**2))
            print(
                f"{sample:8} {config.pt_hat_bias_power:4g} {len(events) / seconds:9.1f} "
                f"{len(events) / candidates:6.1%} {weight.sum() / candidates:6.1%} {ess:6.1%} "
                f"{jets / seconds:6.1%} {float(ak.mean(ak.num(events.particles))):9.0f}"
            )


def _stages(n: int, mu: float, library: Path | None, lcw: Path | None) -> dict[str, float]:
    """Seconds per stage of ``n`` JZ2W events in this process (what a worker does)."""
    physics = SimulationConfig()
    calibration = LCWCalibration.load(lcw) if lcw else None
    pileup = PileupLibrary.load(library) if library and mu else None
    sigma = pileup.noise_sigma(mu) if pileup else None
    times = dict.fromkeys(
        ["generation", "showers", "pile-up", "digitise", "clusters", "LCW", "file"], 0.0
    )
    config = GeneratorConfig(sample="jz2w", n_events=n, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        writer = ClusterWriter(Path(folder) / "stages.root")
        done, chunk = 0, 0
        while done < n:
            start = time.perf_counter()
            events = generator.generate_chunk(config, chunk)[: n - done]
            times["generation"] += time.perf_counter() - start
            chunk += 1
            for lo in range(0, len(events), EVENT_BATCH):
                batch = events[lo : lo + EVENT_BATCH]
                numbers = ak.to_numpy(batch.event_number)
                t0 = time.perf_counter()
                deposits = simulate_deposits(batch.particles, numbers, physics, seed=1)
                t1 = time.perf_counter()
                if pileup is not None:
                    deposits = overlay(deposits, pileup, mu, seed=1)
                t2 = time.perf_counter()
                cells = digitise(deposits, physics, seed=1, pileup_sigma=sigma)
                t3 = time.perf_counter()
                truth = functools.partial(cluster_truth, deposits=deposits)
                result = reconstruct(cells, truth=truth)
                t4 = time.perf_counter()
                if calibration is not None:
                    calibrated = calibration.apply(result.clusters.scalars, result.cells)
                    for column in calibrated.columns:
                        result.clusters.scalars[column] = calibrated[column].to_numpy()
                t5 = time.perf_counter()
                actual = deposits.extra.get("actual_mu", np.zeros(len(numbers)))
                writer.write(result.clusters)
                writer.write_events(_event_record(batch, numbers, actual, mu), tree=EVENT_TREE)
                t6 = time.perf_counter()
                for key, seconds in zip(
                    list(times)[1:], np.diff([t0, t1, t2, t3, t4, t5, t6]), strict=True
                ):
                    times[key] += seconds
            done += len(events)
        writer.close()
    return times


def _end_to_end(sample: str, n: int, mu: float, workers: int, lcw: str, library: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        if mu:  # the library is made once per seed and reused: time it apart
            seed = 1 + 20_000
            start = time.perf_counter()
            make_pileup_library(
                Path(folder) / f"minbias_library_{seed}_{library}.npz", n_events=library, seed=seed
            )
            library_s = time.perf_counter() - start
        else:
            library_s = 0.0
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _RUN,
                sample,
                f"{folder}/{sample}.root",
                str(n),
                str(mu),
                str(workers),
                lcw,
                str(library),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["library_s"] = library_s
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="events per end-to-end run")
    parser.add_argument("--mu", type=float, nargs="*", default=[0.0, 40.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--library", type=int, default=200, help="minimum-bias library events")
    parser.add_argument("--lcw", default="", help="LCW tables (e.g. data/quick/lcw_tables.npz)")
    parser.add_argument("--skip-generator", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        n_single = 20 * args.n
        start = time.perf_counter()
        make_sample(
            "pipm",
            Path(folder) / "pipm.root",
            n_events=n_single,
            seed=1,
            lcw=args.lcw or None,
            progress=False,
            workers=args.workers,
        )
        single = n_single / (time.perf_counter() - start)
    print(f"baseline, single π± to file ({args.workers} workers): {single:,.0f} events/s")
    if not args.skip_generator:
        _generator_table(args.n, 1)

    print(f"\nend to end, JZ2W, {args.workers} workers, LCW: {'yes' if args.lcw else 'no'}")
    print(
        f"{'<mu>':>5} {'events':>6} {'events/s':>9} {'vs π±':>8} {'peak MB':>8} {'library s':>10}"
    )
    for mu in args.mu:
        for n in (args.n, 2 * args.n):
            r = _end_to_end("jz2w", n, mu, args.workers, args.lcw, args.library)
            print(
                f"{mu:5g} {n:6d} {n / r['seconds']:9.2f} {n / r['seconds'] / single:8.5f} "
                f"{r['peak_mb']:8.0f} {r['library_s']:10.1f}"
            )

    print("\nshare of the time per stage, one process:")
    with tempfile.TemporaryDirectory() as folder:
        library = None
        if any(args.mu):
            library = make_pileup_library(Path(folder) / "lib.npz", n_events=args.library, seed=7)
        for mu in args.mu:
            times = _stages(args.n // 2, mu, library, Path(args.lcw) if args.lcw else None)
            total = sum(times.values())
            shares = "  ".join(f"{k} {v / total:5.1%}" for k, v in times.items())
            print(f"<mu> = {mu:g}: {args.n // 2 / total:6.2f} events/s  {shares}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process: peak {peak:.0f} MB)")


if __name__ == "__main__":
    main()
