"""Separable π0/π± cluster files for the model, training and baseline tests.

`calotools.sim.simulation` makes physics, but the clustering and ntuple production
(``calotools simulate``) is not there yet; these clusters are
`calotools.testing.random_clusters` reshaped so that the classes differ the way
real pions do, so that a model that learns anything beats random clearly:

- a π0 puts most of its energy in the EM layers (EM fraction ~ Beta(8, 2)), a
  π± most of it in Tile (~ Beta(2, 5)); the pixel fractions of each group sum
  to that share of the cluster energy, and the layers a class deposits little
  in have fewer cells (Tile for a π0, the EM layers for a π±);
- the moments follow: ``cluster_ENG_FRAC_EM`` is the EM fraction, the shower
  centre ``cluster_CENTER_LAMBDA`` is deeper for π±, and
  ``cluster_EM_PROBABILITY`` is a noisy EM fraction (the LCW score);
- the true energy is the cluster energy times 1.0 (π0) or `PIPM_SCALE` (π±),
  with 5 % noise, so each class needs its own calibration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calotools import geometry, ntuple
from calotools.ntuple import Clusters
from calotools.testing import random_clusters

#: True energy / cluster energy of the synthetic π± (π0: 1).
PIPM_SCALE = 1.6
EM_LAYERS = tuple(lay.name for lay in geometry.IMAGE_LAYERS if lay.is_em)
TILE_LAYERS = tuple(lay.name for lay in geometry.IMAGE_LAYERS if not lay.is_em)


def pion_clusters(n: int, sample: str, *, seed: int = 0) -> Clusters:
    """``n`` synthetic clusters of ``sample`` (``"pi0"`` or ``"pipm"``), see the module docstring."""
    clusters = random_clusters(n, seed=seed, occupancy=0.2)
    rng = np.random.default_rng([seed, 99])
    em_fraction = rng.beta(8, 2, n) if sample == "pi0" else rng.beta(2, 5, n)
    # Few cells where a class deposits little: Tile for a π0, EM for a π±.
    sparse, keep = (TILE_LAYERS, 0.2) if sample == "pi0" else (EM_LAYERS, 0.4)
    for name in sparse:
        image = clusters.images[name]
        image[rng.random(image.shape) > keep] = 0.0
    for group, share in ((EM_LAYERS, em_fraction), (TILE_LAYERS, 1.0 - em_fraction)):
        total = sum(clusters.images[name].reshape(n, -1).sum(axis=1) for name in group)
        factor = np.divide(share, total, out=np.zeros(n), where=total > 0)
        for name in group:
            clusters.images[name] = (clusters.images[name] * factor[:, None, None]).astype(
                np.float32
            )
    energy = 10 ** rng.uniform(-0.3, 2.0, n)
    scale = 1.0 if sample == "pi0" else PIPM_SCALE
    scalars = clusters.scalars
    f4 = np.float32
    scalars["cluster_E"] = energy.astype(f4)
    scalars["cluster_Eta"] = rng.uniform(-0.6, 0.6, n).astype(f4)
    scalars["cluster_ENG_CALIB_TOT"] = (energy * scale * rng.lognormal(0, 0.05, n)).astype(f4)
    scalars["cluster_ENG_FRAC_EM"] = em_fraction.astype(f4)
    scalars["cluster_CENTER_LAMBDA"] = (
        (150.0 if sample == "pi0" else 450.0) * rng.lognormal(0, 0.3, n)
    ).astype(f4)
    p_em = np.clip(em_fraction + rng.normal(0, 0.15, n), 0, 1)
    scalars["cluster_EM_PROBABILITY"] = p_em.astype(f4)
    scalars["cluster_E_LCCalib"] = (energy * np.where(p_em > 0.5, 1.0, 1.5)).astype(f4)
    return clusters


def write_pion_samples(
    folder: Path, n_pi0: int = 600, n_pipm: int = 600, *, seed: int = 0, basket_size: int = 500
) -> dict[str, Path]:
    """``pi0.root`` and ``pipm.root`` in ``folder`` (the default data set layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        sample: ntuple.write_clusters(
            folder / f"{sample}.root",
            pion_clusters(n, sample, seed=seed + offset),
            basket_size=basket_size,
        )
        for offset, (sample, n) in enumerate((("pi0", n_pi0), ("pipm", n_pipm)))
    }
