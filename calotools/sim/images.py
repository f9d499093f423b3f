"""The six MLTree layer images of each topo-cluster.

`cluster_images` fills, for every cluster of `calotools.sim.clustering.topo_cluster`,
one float32 image per layer of `geometry.IMAGE_LAYERS`, stored [η][φ], exactly
as athena's MLTreeMaker does (``docs/ntuple-format.md``, "How MLTree fills the
images"):

- the window is centred on the cluster's own cell (of any layer, the presampler
  included) nearest to the cluster's (η, φ) in ΔR² = Δη² + Δφ² (φ wrapped; ties
  go to the first cell in layer order);
- a cell at dη = η_cell − η_centre, dφ = φ_cell − φ_centre (wrapped) lands in
  pixel floor(dη/Δη_layer + 10⁻⁴) + n_η/2, floor(dφ/Δφ_layer + 10⁻⁴) + n_φ/2,
  so the centre cell sits at index n/2; cells with |dη| ≥ 0.2 − 10⁻⁴ or
  |dφ| ≥ π/16 − 10⁻⁴ are left out (a cell exactly at the edge is out);
- only the cluster's cells enter, each with its cluster weight; a cell whose
  weighted energy E·w is under 5 MeV, or whose pixel value would be negative,
  is dropped (it still counts in ``cluster_E``);
- pixel = E·w / ``cluster_E``.

A cluster with E ≤ 0 therefore has empty images, as in MLTree.

Examples
--------
>>> images = cluster_images(topo_cluster(batch))  # doctest: +SKIP
>>> images["EMB2"].shape  # doctest: +SKIP
(n_clusters, 16, 16)
"""

from __future__ import annotations

import math

import numpy as np

from calotools import geometry
from calotools.sim.clustering import TopoClusters

__all__ = ["MIN_CELL_ENERGY", "cluster_images", "image_centres"]

#: MLTree's m_cellE_thres: weighted cell energies below 5 MeV stay out of the images (GeV).
MIN_CELL_ENERGY = 0.005
# floor(d/Δ + 1e-4) and the window's edges less 1e-4: MLTree's margin against
# rounding (its ``reg``; docs/ntuple-format.md).
_INDEX_EPSILON = 1e-4


def _wrap(phi: np.ndarray) -> np.ndarray:
    """Into (−π, π]; same as geometry.wrap_phi, cheaper for large arrays."""
    return phi + math.tau * np.floor((math.pi - phi) / math.tau)


def image_centres(clusters: TopoClusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η, φ, layer index) of each cluster's image centre: its cell nearest to (η, φ)."""
    cells, table = clusters.cells, clusters.table
    if len(table) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8)
    cluster, starts = cells.cluster, cells.offsets[:-1]
    d_eta = cells.eta - table["cluster_Eta"].to_numpy()[cluster]
    d_phi = _wrap(cells.phi - table["cluster_Phi"].to_numpy()[cluster])
    distance = d_eta**2 + d_phi**2
    nearest = np.minimum.reduceat(distance, starts)
    # The first link reaching the minimum: links are in cell (so layer) order.
    index = np.where(distance == nearest[cluster], np.arange(len(cells)), len(cells))
    first = np.minimum.reduceat(index, starts)
    return cells.eta[first], cells.phi[first], cells.layer[first]


def cluster_images(
    clusters: TopoClusters, *, min_cell_energy: float = MIN_CELL_ENERGY
) -> dict[str, np.ndarray]:
    """Layer name → float32 array (n_clusters, n_η, n_φ) of every cluster's image.

    Parameters
    ----------
    clusters
        Output of `calotools.sim.clustering.topo_cluster`.
    min_cell_energy
        Cells with weighted energy below this (GeV) are left out (MLTree: 5 MeV).
    """
    cells, table = clusters.cells, clusters.table
    n = len(table)
    centre_eta, centre_phi, _ = image_centres(clusters)
    cluster = cells.cluster
    cluster_e = table["cluster_E"].to_numpy()
    weighted = cells.weight * cells.energy
    pixel = np.divide(
        weighted, cluster_e[cluster], out=np.zeros(len(cells)), where=cluster_e[cluster] != 0
    )
    d_eta = cells.eta - centre_eta[cluster]
    d_phi = _wrap(cells.phi - centre_phi[cluster])
    keep = (
        (weighted >= min_cell_energy)
        & (pixel >= 0)
        & (np.abs(d_eta) < geometry.IMAGE_HALF_WIDTH_ETA - _INDEX_EPSILON)
        & (np.abs(d_phi) < geometry.IMAGE_HALF_WIDTH_PHI - _INDEX_EPSILON)
    )
    images = {}
    for index, lay in enumerate(geometry.LAYERS):
        if lay.image_shape is None:
            continue
        n_eta, n_phi = lay.image_shape
        mask = keep & (cells.layer == index)
        i_eta = np.floor(d_eta[mask] / lay.deta + _INDEX_EPSILON).astype(np.int64) + n_eta // 2
        i_phi = np.floor(d_phi[mask] / lay.dphi + _INDEX_EPSILON).astype(np.int64) + n_phi // 2
        inside = (i_eta >= 0) & (i_eta < n_eta) & (i_phi >= 0) & (i_phi < n_phi)
        flat = (cluster[mask][inside] * n_eta + i_eta[inside]) * n_phi + i_phi[inside]
        image = np.bincount(flat, pixel[mask][inside], minlength=n * n_eta * n_phi)
        images[lay.name] = image.reshape(n, n_eta, n_phi).astype(np.float32)
    return images
