"""Realism figures of the default simulation at the cluster level (issue 14, items 3 and 6).

Prints, for fresh π0 and π± samples with their own LCW tables (the default
spectrum, 0.2–2000 GeV), per class and ENG_CALIB_TOT bin: the median number of
cells per cluster; per class and generated-energy bin: clusters per event, the
leading cluster's share of the event's ENG_CALIB_TOT and, for π±, the fraction
of clusters that LCW calls electromagnetic (EM_PROBABILITY > 0.5); and the AUC
of 1 − EM_PROBABILITY as a π± score (clusters with ENG_CALIB_TOT > 0.2 GeV).

To compare with other code, run it with that code first on the path, e.g. a
git worktree: ``PYTHONPATH=/tmp/old python benchmarks/realism.py``.

    python benchmarks/realism.py [--n 3000] [--seed 7] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import calotools
from calotools import metrics, ntuple
from calotools.sim import samples

CALIB_BINS = [0.2, 1.0, 3.0, 10.0, 30.0, 100.0, np.inf]
TRUTH_BINS = [0.2, 2.0, 10.0, 50.0, 200.0, np.inf]


def _bin_labels(edges: list[float]) -> list[str]:
    return [
        f"{lo:g}–{hi:g}" if np.isfinite(hi) else f"> {lo:g}" for lo, hi in itertools.pairwise(edges)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="events per sample")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"calotools from {Path(calotools.__file__).parent}, {args.n} events per sample")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lcw = samples.make_lcw_tables(
            folder / "lcw.npz", n_events=args.n, progress=False, workers=args.workers
        )
        clusters = {}
        for sample in ("pi0", "pipm"):
            path = samples.make_sample(
                sample,
                folder / f"{sample}.root",
                n_events=args.n,
                seed=args.seed,
                lcw=lcw,
                progress=False,
                workers=args.workers,
            )
            clusters[sample] = ntuple.read_clusters(path).scalars

    rows = []
    for label, (lo, hi) in zip(
        _bin_labels(CALIB_BINS), itertools.pairwise(CALIB_BINS), strict=True
    ):
        row = {"ENG_CALIB_TOT (GeV)": label}
        for sample, table in clusters.items():
            inside = table[(table.cluster_ENG_CALIB_TOT >= lo) & (table.cluster_ENG_CALIB_TOT < hi)]
            row[f"{sample} cells"] = np.median(inside.cluster_nCells) if len(inside) else np.nan
            row[f"{sample} n"] = len(inside)
        row["π±/π0"] = row["pipm cells"] / row["pi0 cells"]
        rows.append(row)
    print("\nmedian cells per cluster")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.2f}"))

    rows = []
    for sample, read in clusters.items():
        table = read.assign(calib=read.cluster_ENG_CALIB_TOT.clip(lower=0.0))
        events = table.groupby("eventNumber").agg(
            truth=("truthE", "first"), n=("calib", "size"), total=("calib", "sum")
        )
        leading = table[table.clusterIndex == 0].set_index("eventNumber").calib
        events["leading"] = leading.reindex(events.index).fillna(0.0) / events.total
        em_like = table.assign(em=table.cluster_EM_PROBABILITY > 0.5)
        for label, (lo, hi) in zip(
            _bin_labels(TRUTH_BINS), itertools.pairwise(TRUTH_BINS), strict=True
        ):
            chosen = events[(events.truth >= lo) & (events.truth < hi)]
            in_bin = em_like[(em_like.truthE >= lo) & (em_like.truthE < hi)]
            rows.append(
                {
                    "sample": sample,
                    "truthE (GeV)": label,
                    "clusters/event": chosen.n.mean(),
                    "leading share": chosen.leading.mean(),
                    "EM-like clusters": in_bin.em.mean(),
                    "events": len(chosen),
                }
            )
    print("\nclusters per event, leading cluster's share of ΣENG_CALIB_TOT, EM_PROBABILITY > 0.5")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))

    selected = {s: t[t.cluster_ENG_CALIB_TOT > 0.2] for s, t in clusters.items()}
    labels = np.r_[np.zeros(len(selected["pi0"])), np.ones(len(selected["pipm"]))]
    score = (
        1.0 - np.r_[selected["pi0"].cluster_EM_PROBABILITY, selected["pipm"].cluster_EM_PROBABILITY]
    )
    print(f"\nLCW EM probability as a classifier: AUC {metrics.auc(labels, score):.4f}")


if __name__ == "__main__":
    main()
