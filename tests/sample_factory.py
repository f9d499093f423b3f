"""Labelled π0/π± sample files for the data-pipeline tests.

`calotools.testing.random_clusters` gives every schema branch with random
values; here η is spread over the barrel and beyond and the π± energies are
harder, so that the default cut keeps about 70 % and the two spectra differ
(for the matching tests). Not physics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calotools import ntuple
from calotools.testing import random_clusters

#: Small baskets so that even small files have several chunks.
BASKET = 500


def make_clusters(n: int, *, seed: int, energy_scale: float = 5.0) -> ntuple.Clusters:
    """``n`` clusters with |η| uniform in [0, 1) and cluster_E exponential(energy_scale)."""
    clusters = random_clusters(n, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    scalars = clusters.scalars
    scalars["cluster_Eta"] = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    scalars["cluster_E"] = (rng.exponential(energy_scale, n) + 0.05).astype(np.float32)
    scalars["cluster_ENG_CALIB_TOT"] = (
        scalars["cluster_E"] * rng.uniform(0.5, 1.5, n).astype(np.float32)
    ).astype(np.float32)
    scalars["eventNumber"] = np.arange(n, dtype=np.int64) + seed * 1_000_000
    return clusters


def write_samples(
    folder: Path, *, n_pi0: int = 3_000, n_pipm: int = 2_000, basket_size: int = BASKET
) -> dict[str, Path]:
    """``pi0.root`` and ``pipm.root`` in ``folder``; returns the samples mapping."""
    pi0 = ntuple.write_clusters(
        folder / "pi0.root", make_clusters(n_pi0, seed=1), basket_size=basket_size
    )
    pipm = ntuple.write_clusters(
        folder / "pipm.root",
        make_clusters(n_pipm, seed=2, energy_scale=15.0),
        basket_size=basket_size,
    )
    return {"pi0": pi0, "pipm": pipm}
