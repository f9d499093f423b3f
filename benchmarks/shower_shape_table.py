"""Photon and π0 shower shapes of the simulation at fixed energies (``docs/shower-shapes.md``).

For photons and π0 at 10, 50 and 100 GeV (|η| uniform in [0, 0.7], 2 000
events each, seed 1), the leading cluster of each event: the median and the
16 % and 84 % quantiles of each shower shape, photons split into unconverted
and converted ones where the ntuple has ``truthConversions``.

To compare with other code, put it first on the path (a git worktree):
``PYTHONPATH=/tmp/old python benchmarks/shower_shape_table.py``.

    python benchmarks/shower_shape_table.py [--n 2000] [--variables Reta Rphi ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import calotools
from calotools import ntuple
from calotools.shower_shapes import shower_shapes
from calotools.sim import samples

ENERGIES_GEV = (10.0, 50.0, 100.0)
DEFAULT_VARIABLES = ("Reta", "Rphi", "weta2", "f1", "wstot", "Eratio", "Rhad")


def _cell(values: pd.Series) -> str:
    low, mid, high = np.nanquantile(values, [0.16, 0.5, 0.84])
    digits = 4 if abs(mid) < 0.05 else 3
    return f"{mid:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="events per sample and energy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variables", nargs="*", default=list(DEFAULT_VARIABLES))
    args = parser.parse_args()
    print(f"calotools from {Path(calotools.__file__).parent}, {args.n} events each")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sample in ("gamma", "pi0"):
            for energy in ENERGIES_GEV:
                path = samples.make_sample(
                    sample,
                    Path(tmp) / f"{sample}-{energy:g}.root",
                    n_events=args.n,
                    seed=args.seed,
                    simulation={"e_min": energy, "e_max": energy},
                    progress=False,
                )
                clusters = ntuple.read_clusters(path, cut="clusterIndex == 0")
                shapes = shower_shapes(clusters)
                groups = {"all": np.ones(len(shapes), dtype=bool)}
                if sample == "gamma" and "truthConversions" in clusters.scalars:
                    converted = clusters.scalars["truthConversions"].to_numpy() > 0
                    groups = {"unconverted": ~converted, "converted": converted}
                for group, inside in groups.items():
                    row = {"sample": f"{sample} {energy:g} GeV {group}"}
                    row |= {v: _cell(shapes[v][inside]) for v in args.variables}
                    row["n"] = int(inside.sum())
                    rows.append(row)
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
