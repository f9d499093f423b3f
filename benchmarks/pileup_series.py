"""Benchmark: single-particle samples with pile-up (issue 17), against the same sample without.

For each ⟨μ⟩ asked for, `calotools.sim.samples.make_sample` writes a π0 sample
of ``--n`` events with the pile-up library overlaid on every window
(`calotools.sim.pileup.overlay_window`), same seed, same workers. The baseline
is the same sample without a library, made in the same run: the ratio says
what the overlay and the larger clustering cost. Printed beside the speed:

- clusters per event and the EM-scale pile-up energy per window (mean
  ``cluster_E`` summed per event, with minus without);
- the share of the clean clusters above 5 GeV of truth energy that keep a
  partner (`calotools.sim.pileup_samples.partners`), and the median ratio of
  the partner's EM-scale energy to the clean cluster's.

The library (``--library`` minimum-bias events) is made first and timed apart.

    python benchmarks/pileup_series.py [--n 4000] [--mu 0 40 80 200] [--workers 2] [--library 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from calotools.ntuple import read_clusters
from calotools.sim.event_samples import make_pileup_library
from calotools.sim.pileup_samples import partner_fraction, partners
from calotools.sim.samples import make_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="π0 events per file")
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 40.0, 80.0, 200.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--library", type=int, default=200, help="minimum-bias events")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        library = make_pileup_library(folder / "library.npz", n_events=args.library, seed=20_005)
        print(f"library: {args.library} minimum-bias events in {time.perf_counter() - start:.1f} s")

        def run(name: str, **pileup: object) -> tuple[float, Path]:
            path = folder / f"{name}.root"
            start = time.perf_counter()
            make_sample(
                "pi0", path, n_events=args.n, seed=5, progress=False, workers=args.workers, **pileup
            )
            return time.perf_counter() - start, path

        base_seconds, base_path = run("baseline")
        clean = read_clusters(base_path)
        per_event_clean = clean.scalars.groupby("eventNumber")["cluster_E"].sum()
        energetic = clean.scalars["cluster_ENG_CALIB_TOT"].to_numpy() > 5.0
        print(
            f"\nbaseline (no pile-up): {args.n / base_seconds:8.1f} events/s, "
            f"{len(clean) / args.n:.2f} clusters/event"
        )
        print(
            f"{'⟨μ⟩':>5} {'events/s':>9} {'× baseline':>10} {'clusters/ev':>11} "
            f"{'ΔE/window GeV':>13} {'partners >5 GeV':>15} {'E ratio':>7}"
        )
        for mu in args.mu:
            seconds, path = run(f"mu{mu:g}", mu=mu, library=library)
            noisy = read_clusters(path)
            per_event = noisy.scalars.groupby("eventNumber")["cluster_E"].sum()
            added = (per_event - per_event_clean.reindex(per_event.index).fillna(0.0)).mean()
            rows, partner = partners(clean, noisy)
            kept = partner_fraction(clean, noisy, energetic)
            big = energetic[rows]
            ratio = np.median(
                noisy.scalars["cluster_E"].to_numpy()[partner[big]]
                / clean.scalars["cluster_E"].to_numpy()[rows[big]]
            )
            print(
                f"{mu:5g} {args.n / seconds:9.1f} {base_seconds / seconds:10.3f} "
                f"{len(noisy) / args.n:11.2f} {added:13.2f} {kept:15.1%} {ratio:7.3f}"
            )


if __name__ == "__main__":
    main()
