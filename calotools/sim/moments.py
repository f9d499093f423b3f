"""Cluster moments, as athena's ``CaloClusterMomentsMaker`` computes them, plus truth moments.

`cluster_moments` takes the output of `calotools.sim.clustering.topo_cluster` and
returns one row per cluster with the MLTree branch names (``docs/ntuple-format.md``):

- shape moments from the cells with w·E > 0 (``docs/physics.md`` §4):
  ``cluster_CENTER_MAG``, ``cluster_CENTER_LAMBDA``, ``cluster_FIRST_ENG_DENS``,
  ``cluster_SECOND_R``, ``cluster_SECOND_LAMBDA``, ``cluster_LATERAL``,
  ``cluster_LONGITUDINAL``, ``cluster_ENG_FRAC_EM``, ``cluster_ENG_FRAC_MAX``,
  ``cluster_ENG_FRAC_CORE``, ``cluster_ISOLATION``, ``cluster_SIGNIFICANCE``;
- truth moments (athena ``CaloCalibClusterMomentsMaker2``):
  ``cluster_ENG_CALIB_TOT``, ``cluster_ENG_CALIB_OUT_T``, ``cluster_ENG_CALIB_DEAD_TOT``
  and its parts ``cluster_ENG_CALIB_DEAD_EMB0`` (in front of the presampler),
  ``cluster_ENG_CALIB_DEAD_TILE0`` (cryostat) and ``cluster_ENG_CALIB_DEAD_LEAKAGE``.

Units: GeV and mm; FIRST_ENG_DENS in GeV/mm³ (athena: MeV/mm³). Clusters with
no cell of positive energy get 0 for the shape moments, as in athena.

How truth outside the clusters is attached (the simulation has no calibration
hits, so these follow athena's rules on what the cells and events carry):

ENG_CALIB_OUT_T
    The truth energy of window cells that belong to no cluster, binned on the
    EMB3 grid (Δη × Δφ = 0.05 × 2π/256, close to athena's 127-bin lookup),
    goes to the clusters of the event with ENG_CALIB_TOT > 0 whose direction is
    within the tight cone (0.3 rad scaled by athena's ``angle_mollier_factor``,
    i.e. ΔR ≲ 0.3 in the barrel) of the bin, shared in proportion to their
    ENG_CALIB_TOT. Truth outside the simulated window is not attached.
ENG_CALIB_DEAD_TOT
    Each dead-material deposit of the event (in front of the presampler, in the
    cryostat, leaking out of the back) is placed at the generated particle's
    direction and shared among the clusters with ENG_CALIB_TOT > 20 MeV and
    E > 200 MeV in proportion to √(truth energy of the cluster in the layers
    that bound that dead region) · exp(−ΔR/0.2) (athena's "way 2"). Unlike
    athena, the cluster's own presampler truth is not added (it is already in
    ENG_CALIB_TOT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calotools import geometry
from calotools.sim.clustering import TopoClusters, _ranges, _template, cell_sigma, sigma_at

__all__ = [
    "DEAD_MATERIAL_NEIGHBOURS",
    "MOMENT_NAMES",
    "cell_truth",
    "cell_volumes",
    "cluster_moments",
]

#: Moments returned by `cluster_moments`, without the ``cluster_`` prefix.
MOMENT_NAMES = (
    "CENTER_MAG",
    "CENTER_LAMBDA",
    "FIRST_ENG_DENS",
    "SECOND_R",
    "SECOND_LAMBDA",
    "LATERAL",
    "LONGITUDINAL",
    "ENG_FRAC_EM",
    "ENG_FRAC_MAX",
    "ENG_FRAC_CORE",
    "ISOLATION",
    "SIGNIFICANCE",
    "ENG_CALIB_TOT",
    "ENG_CALIB_OUT_T",
    "ENG_CALIB_DEAD_TOT",
    "ENG_CALIB_DEAD_EMB0",
    "ENG_CALIB_DEAD_TILE0",
    "ENG_CALIB_DEAD_LEAKAGE",
)

# athena CaloClusterMomentsMaker.cxx defaults.
MAX_AXIS_ANGLE = math.radians(20.0)  #: principal axis used if within 20° of IP → centre
MIN_R_LATERAL_MM = 40.0  #: LATERAL floor for the two hottest cells (4 cm)
MIN_L_LONGITUDINAL_MM = 100.0  #: LONGITUDINAL floor for the two hottest cells (10 cm)
_EIGENVALUE_EPSILON = 1e-6  # mm²: below this the principal axes are not used
_EM_LAYERS = ("EMB1", "EMB2", "EMB3")  # ENG_FRAC_EM: the EM samplings, presampler excluded

# athena CaloCalibClusterMomentsMaker2.cxx.
OUT_OF_CLUSTER_CONE = 0.3  #: m_rmaxOut[2], the tight ("_T") cone (rad at η = 0)
DEAD_MIN_CLUSTER_E = 0.2  #: m_energyMin, 200 MeV
DEAD_MIN_CLUSTER_CALIB = 0.02  #: m_energyMinCalib, 20 MeV
DEAD_SHARING_ALPHA = 0.5  #: m_apars_alpha
DEAD_SHARING_R0 = 0.2  #: m_apars_r0

#: Layers bounding each dead-material region, whose truth energy in a cluster
#: sets its share of that region's deposit (athena CaloDmRegion neighbours) [A].
DEAD_MATERIAL_NEIGHBOURS = {
    "dead_material_front": ("PreSamplerB", "EMB1"),
    "dead_material_cryostat": ("EMB3", "TileBar0"),
    "leakage_back": ("TileBar2",),
}
_DEAD_COLUMNS = {
    "dead_material_front": "ENG_CALIB_DEAD_EMB0",
    "dead_material_cryostat": "ENG_CALIB_DEAD_TILE0",
    "leakage_back": "ENG_CALIB_DEAD_LEAKAGE",
}

_N_LAYERS = len(geometry.LAYERS)
_LAYER_INDEX = {lay.name: i for i, lay in enumerate(geometry.LAYERS)}


def cluster_moments(clusters: TopoClusters) -> pd.DataFrame:
    """Moments of every cluster, one row per row of ``clusters.table``.

    Parameters
    ----------
    clusters
        Output of `calotools.sim.clustering.topo_cluster`.

    Returns
    -------
    pandas.DataFrame
        Columns ``cluster_<MOMENT>`` for each name in `MOMENT_NAMES`.
    """
    if len(clusters.table) == 0:
        return pd.DataFrame({f"cluster_{name}": np.zeros(0) for name in MOMENT_NAMES})
    links = _Links.of(clusters)
    moments = _shape_moments(clusters, links)
    moments.update(_truth_moments(clusters, links))
    return pd.DataFrame({f"cluster_{name}": moments[name] for name in MOMENT_NAMES})


@dataclass
class _Links:
    """What every moment needs about the cell links, computed once.

    Links are grouped by cluster and, inside a cluster, sorted by cell, hence
    by layer: per-cluster and per-(cluster, layer) sums are ``reduceat`` over
    contiguous segments (~20× faster than ``bincount`` here).
    """

    starts: np.ndarray  #: first link of each cluster
    layer_starts: np.ndarray  #: first link of each (cluster, layer) segment
    layer_cluster: np.ndarray  #: cluster of each segment
    layer_index: np.ndarray  #: layer of each segment
    owner: np.ndarray  #: flat cell → owning cluster (−1: none)
    owns: np.ndarray  #: per link: does its cluster own the cell?
    truth: np.ndarray  #: per link: the cell's calibration-hit energy

    @classmethod
    def of(cls, clusters: TopoClusters) -> _Links:
        cells = clusters.cells
        key = cells.cluster.astype(np.int64) * _N_LAYERS + cells.layer
        layer_starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        owner = _owners(clusters)
        return cls(
            starts=cells.offsets[:-1],
            layer_starts=layer_starts,
            layer_cluster=cells.cluster[layer_starts],
            layer_index=cells.layer[layer_starts],
            owner=owner,
            owns=owner[cells.cell] == cells.cluster,
            truth=_gather_truth(clusters, cells.cell, cells.layer),
        )

    def total(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums."""
        return np.add.reduceat(values, self.starts)

    def per_layer(self, values: np.ndarray, n: int, reduce=np.add) -> np.ndarray:
        """(n_clusters, n_layers) sums (or other reductions) over each cluster's cells per layer."""
        out = np.zeros((n, _N_LAYERS))
        out[self.layer_cluster, self.layer_index] = reduce.reduceat(values, self.layer_starts)
        return out


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b ≠ 0, else 0 (athena leaves a moment at 0 when its norm is 0)."""
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


def _top_two(e: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mask of the two most energetic finite entries of each cluster (ties: the first)."""
    top = np.zeros(len(e), dtype=bool)
    index = np.arange(len(e))
    values = e.copy()
    sizes = np.diff(np.append(starts, len(e)))
    for _ in range(2):
        best = np.repeat(np.maximum.reduceat(values, starts), sizes)
        first = np.minimum.reduceat(np.where(values == best, index, len(e)), starts)
        found = first < len(e)
        found[found] = np.isfinite(values[first[found]])
        top[first[found]] = True
        values[first[found]] = -np.inf
    return top


def _shape_moments(clusters: TopoClusters, links: _Links) -> dict[str, np.ndarray]:
    cells, n = clusters.cells, len(clusters.table)
    cluster, total = cells.cluster, links.total
    e = cells.weight * cells.energy
    positive = (cells.energy > 0) & (cells.weight > 0)
    ep = e * positive
    norm = total(ep)
    xyz = (cells.x, cells.y, cells.z)
    centre = np.stack([_divide(total(ep * c), norm) for c in xyz], 1)
    delta = [c - centre[:, k][cluster] for k, c in enumerate(xyz)]
    centre_mag = np.linalg.norm(centre, axis=1)
    ip_axis = centre / np.where(centre_mag > 0, centre_mag, 1.0)[:, None]

    # Principal axis of the E²-weighted covariance, if close to the IP direction.
    e2 = ep * ep
    e2_norm = total(e2)
    cov = np.empty((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = _divide(total(e2 * delta[i] * delta[j]), e2_norm)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    cosines = np.einsum("kij,ki->kj", eigenvectors, ip_axis)
    best = np.argmax(np.abs(cosines), axis=1)
    rows = np.arange(n)
    principal = eigenvectors[rows, :, best] * np.sign(cosines[rows, best])[:, None]
    angle = np.arccos(np.clip(np.abs(cosines[rows, best]), 0.0, 1.0))
    use = (
        (total(positive.astype(np.int64)) > 2)
        & np.all(np.abs(eigenvalues) >= _EIGENVALUE_EPSILON, axis=1)
        & (angle < MAX_AXIS_ANGLE)
    )
    axis = np.where(use[:, None], principal, ip_axis)

    lam = sum(delta[k] * axis[:, k][cluster] for k in range(3))
    r2 = np.maximum(delta[0] ** 2 + delta[1] ** 2 + delta[2] ** 2 - lam**2, 0.0)
    top = _top_two(np.where(positive, e, -np.inf), links.starts)
    rest, hot = ep * ~top, ep * top
    lateral, longitudinal = total(rest * r2), total(rest * lam**2)
    lateral_floor = total(hot * np.maximum(r2, MIN_R_LATERAL_MM**2))
    # athena floors the signed λ: a hot cell in front of the centre counts 10 cm.
    longitudinal_floor = total(hot * np.maximum(lam, MIN_L_LONGITUDINAL_MM) ** 2)
    em = np.isin(cells.layer, [_LAYER_INDEX[name] for name in _EM_LAYERS])
    core = links.per_layer(ep, n, np.maximum).sum(axis=1)

    moments = {
        "CENTER_MAG": centre_mag,
        "CENTER_LAMBDA": _center_lambda(centre, axis),
        "FIRST_ENG_DENS": _divide(total(e2 / cell_volumes(clusters)), norm),
        "SECOND_R": _divide(total(ep * r2), norm),
        "SECOND_LAMBDA": _divide(total(ep * lam**2), norm),
        "LATERAL": _divide(lateral, lateral + lateral_floor),
        "LONGITUDINAL": _divide(longitudinal, longitudinal + longitudinal_floor),
        "ENG_FRAC_EM": _divide(total(ep * em), norm),
        "ENG_FRAC_MAX": _divide(np.maximum.reduceat(ep, links.starts), norm),
        "ENG_FRAC_CORE": _divide(core, norm),
        "ISOLATION": _isolation(clusters, links, e),
        "SIGNIFICANCE": _significance(clusters, links),
    }
    # athena computes none of these when no cell has positive energy.
    empty = norm <= 0
    for values in moments.values():
        values[empty] = 0.0
    return moments


def cell_volumes(clusters: TopoClusters) -> np.ndarray:
    """Volume of each linked cell (mm³), ``geometry.cell_volume``."""
    cells = clusters.cells
    half_deta = np.array([0.5 * lay.deta for lay in geometry.LAYERS])[cells.layer]
    # V = Δφ (R_out³ − R_in³)/3 · (sinh η₂ − sinh η₁), the layer factor tabulated.
    factor = np.array([lay.cell_volume_mm3(0.0, 1.0) / math.sinh(1.0) for lay in geometry.LAYERS])[
        cells.layer
    ]
    return factor * np.abs(np.sinh(cells.eta + half_deta) - np.sinh(cells.eta - half_deta))


def _center_lambda(centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Distance along the axis from the centre back to the calorimeter front face.

    The front face is the EMB1 entrance radius (athena uses
    ``CaloDepthTool::get_entrance_radius(EMB1)``); the smaller root wins.
    """
    r_calo = geometry.layer("EMB1").r_inner_mm
    r_s2 = axis[:, 0] ** 2 + axis[:, 1] ** 2
    r_cs = axis[:, 0] * centre[:, 0] + axis[:, 1] * centre[:, 1]
    r_cr = centre[:, 0] ** 2 + centre[:, 1] ** 2 - r_calo**2
    safe = np.where(r_s2 > 0, r_s2, 1.0)
    det = (r_cs / safe) ** 2 - r_cr / safe
    ok = (r_s2 > 0) & (det > 0)
    root = np.sqrt(np.where(ok, det, 0.0))
    l1, l2 = -r_cs / safe + root, -r_cs / safe - root
    return np.where(ok, np.minimum(np.abs(l1), np.abs(l2)), 0.0)


def _significance(clusters: TopoClusters, links: _Links) -> np.ndarray:
    """E / √Σσ² over all the cluster's cells, unweighted σ (athena)."""
    sigma = cell_sigma(clusters.batch) * clusters.config.noise_scale
    cell_noise = sigma_at(sigma, clusters.cells.cell)
    return _divide(clusters.table["cluster_E"].to_numpy(), np.sqrt(links.total(cell_noise**2)))


def _owners(clusters: TopoClusters) -> np.ndarray:
    """Flat cell → the cluster that owns it (−1: none).

    A shared cell belongs to the cluster where its weight is above 0.5; at
    exactly 0.5 to the first cluster (athena CaloClusterMomentsMaker).
    """
    cells = clusters.cells
    owner = np.full(len(clusters.batch) * clusters.n_cells_per_event, -1, dtype=np.int32)
    owner[cells.cell] = cells.cluster
    major = cells.weight > 0.5
    owner[cells.cell[major]] = cells.cluster[major]
    tie = np.flatnonzero(cells.weight == 0.5)[::-1]  # links are in cluster order
    owner[cells.cell[tie]] = cells.cluster[tie]
    return owner


def _isolation(clusters: TopoClusters, links: _Links, e: np.ndarray) -> np.ndarray:
    """Energy-weighted fraction, per layer, of in-layer neighbours in no cluster (athena ISOLATION).

    For each layer: (neighbours of the cluster's own cells that are in no
    cluster) / (neighbours outside the cluster), each neighbour counted once;
    layers weighted by the cluster's energy in them (where positive).
    """
    cells, n, owner = clusters.cells, len(clusters.table), links.owner
    tpl = _template(clusters.batch.window)
    owned = np.flatnonzero(links.owns)
    neighbours = tpl.in_layer.lookup(cells.cell[owned], tpl.n_cells)
    cluster = cells.cluster[owned]
    outside = np.flatnonzero(owner[neighbours] != cluster[:, None])
    cluster = cluster[outside // neighbours.shape[1]]
    neighbour = neighbours.reshape(-1)[outside]
    # Count each (cluster, neighbour) once, as athena's per-cluster marker
    # does. Scatter the cluster: where the last writer is every pair's
    # cluster, a second scatter of positions finds the first of each cell.
    # The few cells next to two clusters are deduplicated by sorting.
    mark = np.full(owner.size, -1, dtype=np.int32)
    mark[neighbour] = cluster
    single = mark[neighbour] == cluster
    position = np.arange(len(neighbour), dtype=np.int32)
    mark[neighbour[single]] = position[single]
    first = single & (mark[neighbour] == position)
    key = np.sort(cluster[~single].astype(np.int64) * owner.size + neighbour[~single])
    key = key[np.concatenate(([True], key[1:] != key[:-1]))] if len(key) else key
    cluster = np.concatenate([cluster[first], key // owner.size])
    neighbour = np.concatenate([neighbour[first], key % owner.size])
    slot = cluster.astype(np.int64) * _N_LAYERS + tpl.layer[neighbour % tpl.n_cells]
    n_all = np.bincount(slot, minlength=n * _N_LAYERS).reshape(n, _N_LAYERS)
    n_empty = np.bincount(slot, owner[neighbour] < 0, minlength=n * _N_LAYERS)
    e_layer = links.per_layer(e, n)  # athena eSample: the weighted energy, all cells
    used = (e_layer > 0) & (n_all > 0)
    fraction = _divide(n_empty.reshape(n, _N_LAYERS).astype(float), n_all.astype(float))
    return _divide((e_layer * fraction * used).sum(axis=1), (e_layer * used).sum(axis=1))


# ---------------------------------------------------------------------- truth


def cell_truth(clusters: TopoClusters) -> np.ndarray:
    """Calibration-hit energy of every cell link of ``clusters`` (unweighted, GeV)."""
    return _gather_truth(clusters, clusters.cells.cell, clusters.cells.layer)


def _gather_truth(clusters: TopoClusters, cells: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Calibration-hit energy (EM + non-EM + invisible + escaped) of flat cells."""
    tpl = _template(clusters.batch.window)
    event, local = np.divmod(cells, tpl.n_cells)
    # Index into each layer's own arrays, visiting the links layer by layer.
    size = np.diff(tpl.offsets)[layer]
    flat = event * size + (local - tpl.offsets[layer])
    by_layer = np.argsort(layer, kind="stable")
    bounds = np.searchsorted(layer[by_layer], np.arange(_N_LAYERS + 1))
    truth = np.zeros(len(cells))
    for index, lay in enumerate(geometry.LAYERS):
        rows = by_layer[bounds[index] : bounds[index + 1]]
        if len(rows) == 0:
            continue
        lc = clusters.batch.layers[lay.name]
        where = flat[rows]
        parts = (lc.calib_em, lc.calib_nonem, lc.calib_invisible, lc.calib_escaped)
        truth[rows] = sum(np.asarray(part).reshape(-1)[where] for part in parts)
    return truth


def _angle_mollier_factor(eta: np.ndarray) -> np.ndarray:
    """athena's cone scaling with η (CaloCalibClusterMomentsMaker2::angle_mollier_factor, barrel)."""
    return np.arctan(5.0 * 1.7 / (200.0 * np.cosh(np.abs(eta)))) / math.atan(5.0 * 1.7 / 200.0)


def _truth_moments(clusters: TopoClusters, links: _Links) -> dict[str, np.ndarray]:
    cells, table, batch = clusters.cells, clusters.table, clusters.batch
    n = len(table)
    weighted = cells.weight * links.truth
    calib_tot = links.total(weighted)
    calib_layer = links.per_layer(weighted, n)
    moments = {
        "ENG_CALIB_TOT": calib_tot,
        "ENG_CALIB_OUT_T": _out_of_cluster(clusters, links, calib_tot),
    }

    # Dead material: each region's deposit, placed at the direction of the
    # particle that lost it, goes to the clusters of its event.
    event = table["event"].to_numpy()
    eta, phi = table["cluster_Eta"].to_numpy(), table["cluster_Phi"].to_numpy()
    deposits = _dead_deposits(batch)
    dep_event = deposits["event"].to_numpy()
    eligible = (calib_tot > DEAD_MIN_CLUSTER_CALIB) & (
        table["cluster_E"].to_numpy() > DEAD_MIN_CLUSTER_E
    )
    # Every (eligible cluster, deposit) pair of the same event; the others get
    # nothing. Clusters are sorted by event, so the eligible ones are too.
    chosen = np.flatnonzero(eligible)
    per_event = np.bincount(event[chosen], minlength=len(batch))
    first = np.cumsum(per_event) - per_event
    pair_deposit = np.repeat(np.arange(len(deposits)), per_event[dep_event])
    pair_cluster = chosen[_ranges(first[dep_event], first[dep_event] + per_event[dep_event])]
    d_eta = eta[pair_cluster] - deposits["eta"].to_numpy()[pair_deposit]
    d_phi = geometry.wrap_phi(phi[pair_cluster] - deposits["phi"].to_numpy()[pair_deposit])
    closeness = np.exp(-np.hypot(d_eta, d_phi) / DEAD_SHARING_R0)
    total = np.zeros(n)
    for region, layers in DEAD_MATERIAL_NEIGHBOURS.items():
        deposit = deposits[region].to_numpy(dtype=np.float64)
        near = calib_layer[:, [_LAYER_INDEX[name] for name in layers]].sum(axis=1)[pair_cluster]
        share = np.where(
            eligible[pair_cluster] & (near > 0),
            np.maximum(near, 0.0) ** DEAD_SHARING_ALPHA * closeness,
            0.0,
        )
        norm = np.bincount(pair_deposit, share, minlength=len(deposits))
        part = np.bincount(
            pair_cluster, deposit[pair_deposit] * _divide(share, norm[pair_deposit]), minlength=n
        )
        moments[_DEAD_COLUMNS[region]] = part
        total += part
    moments["ENG_CALIB_DEAD_TOT"] = total
    return moments


def _dead_deposits(batch) -> pd.DataFrame:
    """Dead-material deposits: per particle of a whole event, or the event's totals at its particle."""
    if batch.dead_deposits is not None:
        return batch.dead_deposits
    columns = {"event": np.arange(len(batch)), "eta": batch.truth_eta, "phi": batch.truth_phi}
    columns.update({region: getattr(batch, region) for region in DEAD_MATERIAL_NEIGHBOURS})
    return pd.DataFrame(columns)


def _binned_truth(batch, n_eta: int, n_phi: int) -> np.ndarray:
    """(N, n_eta · n_phi) truth energy of all window cells on the EMB3-sized grid.

    Finer cells are summed into the bin they fill; a coarser cell goes to the
    bin holding its centre (the same rule as ``cell_bin`` in `_out_of_cluster`).
    No layer is finer than the grid in φ.
    """
    grid = geometry.layer("EMB3")
    n_events = len(batch)
    binned = np.zeros((n_events, n_eta, n_phi))
    for lay in geometry.LAYERS:
        lc = batch.layers[lay.name]
        ne, nph = batch.window.shape(lay.name)
        fine = max(1, round(grid.deta / lay.deta))
        coarse_eta = max(1, round(lay.deta / grid.deta))
        coarse_phi = grid.n_phi // lay.n_phi
        target = binned[:, coarse_eta // 2 :: coarse_eta, coarse_phi // 2 :: coarse_phi]
        for part in (lc.calib_em, lc.calib_nonem, lc.calib_invisible, lc.calib_escaped):
            values = np.asarray(part)
            target += (
                values.reshape(n_events, ne // fine, fine, nph).sum(axis=2) if fine > 1 else values
            )
    return binned.reshape(n_events, -1)


def _out_of_cluster(clusters: TopoClusters, links: _Links, calib_tot: np.ndarray) -> np.ndarray:
    """ENG_CALIB_OUT_T: unclustered truth in the tight cone, shared by ENG_CALIB_TOT."""
    cells, table, batch = clusters.cells, clusters.table, clusters.batch
    n, n_events = len(table), len(batch)
    tpl = _template(batch.window)
    grid = geometry.layer("EMB3")
    n_eta, n_phi = batch.window.shape("EMB3")
    n_bins = n_eta * n_phi
    # Each cell goes to the EMB3-sized bin holding its centre (fine units).
    lo_eta, hi_eta, lo_phi, hi_phi = tpl.fine[tpl.offsets[_LAYER_INDEX["EMB3"]]]
    centre_eta, centre_phi = tpl.fine[:, 0] + tpl.fine[:, 1], tpl.fine[:, 2] + tpl.fine[:, 3]
    cell_bin = (centre_eta // (2 * (hi_eta - lo_eta))) * n_phi + centre_phi // (
        2 * (hi_phi - lo_phi)
    )
    owns = links.owns  # each clustered cell once
    event_of_cell, local = np.divmod(cells.cell[owns], tpl.n_cells)
    clustered = np.bincount(
        event_of_cell * n_bins + cell_bin[local], links.truth[owns], minlength=n_events * n_bins
    )
    outside = np.maximum(
        _binned_truth(batch, n_eta, n_phi) - clustered.reshape(n_events, n_bins), 0.0
    )
    if batch.window.wraps_phi:
        return _out_of_cluster_near(clusters, calib_tot, outside.reshape(n_events, n_eta, n_phi))

    # cos(angle) between each cluster and each bin of its event's window; the
    # bin grid is a product of η and φ rows, so no per-bin trigonometry.
    event = table["event"].to_numpy()
    eta, phi = table["cluster_Eta"].to_numpy(), table["cluster_Phi"].to_numpy()
    bin_eta = batch.eta_low[event][:, None] + (np.arange(n_eta) + 0.5) * grid.deta
    bin_phi = batch.phi_low[event][:, None] + (np.arange(n_phi) + 0.5) * grid.dphi
    transverse = np.cos(bin_phi - phi[:, None]) / np.cosh(eta)[:, None]  # (n, n_phi)
    cos_angle = (
        transverse[:, None, :] / np.cosh(bin_eta)[:, :, None]
        + (np.tanh(eta)[:, None] * np.tanh(bin_eta))[:, :, None]
    ).reshape(n, n_bins)
    cone = np.cos(OUT_OF_CLUSTER_CONE * _angle_mollier_factor(eta))
    weight = (cos_angle > cone[:, None]) * np.where(calib_tot > 0, calib_tot, 0.0)[:, None]
    # Clusters are sorted by event: per-event sums are reduceat over their rows.
    first_of_event = np.flatnonzero(np.concatenate(([True], event[1:] != event[:-1])))
    norm = np.add.reduceat(weight, first_of_event, axis=0)
    group = np.repeat(np.arange(len(first_of_event)), np.diff(np.append(first_of_event, n)))
    return (outside[event] * _divide(weight, norm[group])).sum(axis=1)


# A window of the whole barrel holds thousands of EMB3 bins, a cone a few
# hundred: each cluster looks only at a box of bins around it that holds its
# cone. Angle θ < c between directions needs |Δη| < c cosh η and |Δφ| < c / sin ϑ
# (ϑ the polar angle) to first order; the box is 25 % wider than the largest of
# these in the barrel, |η| ≤ CELLS_ETA_MAX. tests/test_moments.py checks it
# against every bin.
_BOX_MARGIN = 1.25


def _out_of_cluster_near(
    clusters: TopoClusters, calib_tot: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """ENG_CALIB_OUT_T over a window of the whole φ ring, from the bins near each cluster."""
    table = clusters.table
    n = len(table)
    _, n_eta, n_phi = outside.shape
    grid = geometry.layer("EMB3")
    eta_edge = geometry.CELLS_ETA_MAX
    polar_min = 2.0 * math.atan(math.exp(-eta_edge))
    reach = _BOX_MARGIN * OUT_OF_CLUSTER_CONE
    half_eta = math.ceil(reach * math.cosh(eta_edge) / grid.deta)
    half_phi = math.ceil(reach / math.sin(polar_min) / grid.dphi)
    event = table["event"].to_numpy()
    eta, phi = table["cluster_Eta"].to_numpy(), table["cluster_Phi"].to_numpy()
    eta_low, phi_low = clusters.batch.eta_low[event], clusters.batch.phi_low[event]
    centre_eta = np.floor((eta - eta_low) / grid.deta).astype(np.int64)
    centre_phi = np.floor(geometry.wrap_phi(phi - phi_low) % math.tau / grid.dphi).astype(np.int64)
    i_eta = centre_eta[:, None] + np.arange(-half_eta, half_eta + 1)  # (n, a)
    i_phi = (centre_phi[:, None] + np.arange(-half_phi, half_phi + 1)) % n_phi  # (n, b)
    valid = (i_eta >= 0) & (i_eta < n_eta)
    bin_eta = eta_low[:, None] + (i_eta + 0.5) * grid.deta
    bin_phi = phi_low[:, None] + (i_phi + 0.5) * grid.dphi
    transverse = np.cos(bin_phi - phi[:, None]) / np.cosh(eta)[:, None]  # (n, b)
    cos_angle = (
        transverse[:, None, :] / np.cosh(bin_eta)[:, :, None]
        + (np.tanh(eta)[:, None] * np.tanh(bin_eta))[:, :, None]
    )
    cone = np.cos(OUT_OF_CLUSTER_CONE * _angle_mollier_factor(eta))
    inside = (cos_angle > cone[:, None, None]) & valid[:, :, None]
    weight = inside * np.where(calib_tot > 0, calib_tot, 0.0)[:, None, None]
    flat = (event[:, None, None] * n_eta + np.clip(i_eta, 0, n_eta - 1)[:, :, None]) * n_phi
    flat = flat + i_phi[:, None, :]
    norm = np.bincount(flat.ravel(), weight.ravel(), minlength=outside.size)
    share = _divide(weight, norm[flat]) * outside.reshape(-1)[flat]
    return share.reshape(n, -1).sum(axis=1)
