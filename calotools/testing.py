"""Synthetic inputs for tests and benchmarks of the I/O and data plumbing.

These clusters are random numbers with the right shapes and types, not
physics: use `calotools.sim.simulation` for anything whose values matter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calotools.ntuple import IMAGE_BRANCHES, SCALAR_BRANCHES, Clusters

__all__ = ["random_clusters"]


def random_clusters(n: int, *, seed: int = 0, occupancy: float = 0.1) -> Clusters:
    """``n`` clusters with every schema branch and sparse random images.

    Parameters
    ----------
    n
        Number of clusters.
    seed
        Seed of the random generator: the same seed gives the same clusters.
    occupancy
        Fraction of non-zero pixels, roughly that of real cluster images.
    """
    rng = np.random.default_rng(seed)
    scalars = pd.DataFrame(
        {
            name: (
                rng.integers(0, 1000, n) if dtype.kind == "i" else rng.exponential(5.0, n)
            ).astype(dtype)
            for name, dtype in SCALAR_BRANCHES.items()
        }
    )
    images = {}
    for name, shape in IMAGE_BRANCHES.items():
        image = rng.random((n, *shape), dtype=np.float32)
        image[rng.random((n, *shape)) > occupancy] = 0.0
        images[name] = image
    return Clusters(scalars, images)
