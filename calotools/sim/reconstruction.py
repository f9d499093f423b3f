"""From simulated cells to what an ATLAS analysis sees: one call per batch.

`reconstruct` runs the topo-clustering, the moments and the MLTree images on a
`calotools.sim.cells.CellBatch` and returns the clusters as ntuple rows
(`calotools.ntuple.Clusters`, schema names) together with the cell table that
the LCW calibration fits and applies (`calotools.sim.calibration.CELL_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calotools import geometry
from calotools.ntuple import Clusters
from calotools.sim.cells import CellBatch
from calotools.sim.clustering import (
    ClusteringConfig,
    TopoClusters,
    cell_sigma,
    sigma_at,
    topo_cluster,
)
from calotools.sim.config import PARTICLE_MASS_GEV, PARTICLES
from calotools.sim.images import cluster_images
from calotools.sim.moments import cell_truth, cell_volumes, cluster_moments

__all__ = ["Reconstructed", "reconstruct"]

_SAMPLING = np.array([lay.sampling for lay in geometry.LAYERS])
# PDG id → rest mass (GeV), for the generated particle's momentum.
_MASS_GEV = {PARTICLES[name]: PARTICLE_MASS_GEV[name] for name in PARTICLES}


@dataclass
class Reconstructed:
    """The clusters of a batch, ready to write, and their cells for the LCW calibration."""

    clusters: Clusters
    cells: pd.DataFrame


def _truth_columns(batch: CellBatch, event: np.ndarray) -> dict[str, np.ndarray]:
    energy = batch.truth_e[event]
    mass = np.vectorize(_MASS_GEV.get, otypes=[float])(batch.truth_pdg[event])
    momentum = np.sqrt(np.maximum(energy**2 - mass**2, 0.0))
    eta = batch.truth_eta[event]
    zeros = np.zeros(len(batch.truth_e))
    return {
        "truthE": energy,
        "truthPt": momentum / np.cosh(eta),
        "truthEta": eta,
        "truthPhi": batch.truth_phi[event],
        "truthPDG": batch.truth_pdg[event],
        # §3a.1: converted photons of the event and the first one's radius (mm).
        "truthConversions": batch.extra.get("conversions", zeros)[event].astype(np.int32),
        "truthConversionRadius": batch.extra.get("conversion_radius_mm", zeros)[event].astype(
            np.float32
        ),
    }


def reconstruct(
    batch: CellBatch,
    config: ClusteringConfig | None = None,
    *,
    truth: Callable[[TopoClusters], Mapping[str, np.ndarray]] | None = None,
) -> Reconstructed:
    """Cluster ``batch`` and compute everything the ntuple and the LCW need.

    Parameters
    ----------
    batch
        Simulated events.
    config
        Topo-clustering settings (ATLAS 4-2-0 by default).
    truth
        The truth columns of the clusters; by default the event's generated
        particle (single-particle samples). Whole events give
        `calotools.sim.barrel.cluster_truth`.

    Returns
    -------
    Reconstructed
        ``clusters``: one row per topo-cluster with the kinematics, moments,
        truth moments and generated particle, and the six layer images;
        ``cells``: one row per (cluster, cell) link with the columns of
        `calotools.sim.calibration.CELL_COLUMNS` and the cell truth ``calib``.
    """
    topo = topo_cluster(batch, config)
    table = topo.table
    event = table["event"].to_numpy()
    scalars = pd.concat(
        [
            table.drop(columns="event"),
            cluster_moments(topo),
            pd.DataFrame(_truth_columns(batch, event) if truth is None else truth(topo)),
        ],
        axis=1,
    )
    links = topo.cells
    sigma = cell_sigma(batch) * topo.config.noise_scale
    cells = pd.DataFrame(
        {
            "cluster": links.cluster,
            "sampling": _SAMPLING[links.layer],
            "energy": links.energy,
            "weight": links.weight,
            "volume_mm3": cell_volumes(topo),
            "noise_sigma": sigma_at(sigma, links.cell),
            "calib": cell_truth(topo),
        }
    )
    if batch.pileup_calib is not None:
        # The pile-up's share of the cluster's truth energy; its calibration
        # hits are kept apart, so ENG_CALIB_TOT stays the hard scatter's.
        pileup = links.matrix(batch.pileup_calib.size) @ batch.pileup_calib.reshape(-1)
        hard = scalars["cluster_ENG_CALIB_TOT"].to_numpy()
        total = hard + pileup
        scalars["cluster_ENG_CALIB_FRAC_PILEUP"] = np.divide(
            pileup, total, out=np.zeros_like(total), where=total > 0
        )
    return Reconstructed(Clusters(scalars, cluster_images(topo)), cells)
