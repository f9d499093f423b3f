"""Cluster moments (athena CaloClusterMomentsMaker) and truth moments on hand-built events."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cell_factory import deposit, deposit_blob, make_batch, random_touching_events

from calotools import geometry
from calotools.sim.cells import Window
from calotools.sim.clustering import topo_cluster
from calotools.sim.moments import MOMENT_NAMES, cluster_moments

N_CELLS = Window().n_cells


def reference_shape_moments(clusters, row: int) -> dict[str, float]:
    """athena's per-cluster loop (CaloClusterMomentsMaker::execute), written out plainly."""
    links = clusters.cells
    start, stop = links.offsets[row], links.offsets[row + 1]
    energy, weight = links.energy[start:stop], links.weight[start:stop]
    xyz = np.stack([links.x, links.y, links.z], axis=1)[start:stop]
    layer, eta = links.layer[start:stop], links.eta[start:stop]
    use = (energy > 0) & (weight > 0)
    e, pos, lay, eta = (energy * weight)[use], xyz[use], layer[use], eta[use]
    w = e.sum()
    if w <= 0:
        return dict.fromkeys(("CENTER_MAG", "SECOND_R", "LATERAL"), 0.0)
    centre = (e[:, None] * pos).sum(axis=0) / w
    axis = centre / np.linalg.norm(centre)
    if len(e) > 2:
        d = pos - centre
        cov = (e[:, None, None] ** 2 * d[:, :, None] * d[:, None, :]).sum(axis=0) / (e**2).sum()
        values, vectors = np.linalg.eigh(cov)
        if np.all(np.abs(values) >= 1e-6):
            best, best_angle = None, None
            for i in range(3):
                v = vectors[:, i]
                angle = math.acos(min(1.0, abs(v @ axis)))
                v = v if v @ axis >= 0 else -v
                if best is None or angle < best_angle:
                    best, best_angle = v, angle
            if best_angle < math.radians(20):
                axis = best
    d = pos - centre
    lam = d @ axis
    r = np.linalg.norm(np.cross(d, axis), axis=1)
    order = np.argsort(-e, kind="stable")
    hot = set(order[:2].tolist())
    lat_num = sum(e[i] * r[i] ** 2 for i in range(len(e)) if i not in hot)
    lon_num = sum(e[i] * lam[i] ** 2 for i in range(len(e)) if i not in hot)
    lat_den = lat_num + sum(e[i] * max(r[i], 40.0) ** 2 for i in hot)
    lon_den = lon_num + sum(e[i] * max(lam[i], 100.0) ** 2 for i in hot)
    volume = np.array(
        [
            geometry.LAYERS[k].cell_volume_mm3(
                x - geometry.LAYERS[k].deta / 2, x + geometry.LAYERS[k].deta / 2
            )
            for k, x in zip(lay, eta, strict=True)
        ]
    )
    core = sum(e[lay == k].max() for k in np.unique(lay))
    em = np.isin(lay, [1, 2, 3])
    return {
        "CENTER_MAG": float(np.linalg.norm(centre)),
        "FIRST_ENG_DENS": float((e**2 / volume).sum() / w),
        "SECOND_R": float((e * r**2).sum() / w),
        "SECOND_LAMBDA": float((e * lam**2).sum() / w),
        "LATERAL": lat_num / lat_den,
        "LONGITUDINAL": lon_num / lon_den,
        "ENG_FRAC_EM": float(e[em].sum() / w),
        "ENG_FRAC_MAX": float(e.max() / w),
        "ENG_FRAC_CORE": float(core / w),
    }


def reference_isolation(clusters, row: int) -> float:
    """athena ISOLATION: per layer, empty / all in-layer neighbours outside the cluster, E-weighted."""
    links = clusters.cells
    owner: dict[int, tuple[int, float]] = {}
    for k, c, w in zip(links.cluster, links.cell, links.weight, strict=True):
        if c not in owner or w > 0.5:
            owner[int(c)] = (int(k), float(w))
    start, stop = links.offsets[row], links.offsets[row + 1]
    empty, other = np.zeros(7), np.zeros(7)
    seen = set()
    for c in links.cell[start:stop]:
        if owner[int(c)][0] != row:
            continue
        local = int(c) % N_CELLS
        lay, i, j = _split_local(local)
        n_eta, n_phi = clusters.batch.window.shape(geometry.LAYERS[lay].name)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di, dj) == (0, 0) or not (0 <= i + di < n_eta and 0 <= j + dj < n_phi):
                    continue
                nb = c + di * n_phi + dj
                if nb in seen:
                    continue
                seen.add(nb)
                who = owner.get(int(nb), (-1, 0.0))[0]
                if who == -1:
                    empty[lay] += 1
                elif who != row:
                    other[lay] += 1
    e_layer = np.bincount(
        links.layer[start:stop], (links.weight * links.energy)[start:stop], minlength=7
    )
    num = den = 0.0
    for lay in range(7):
        if e_layer[lay] > 0 and empty[lay] + other[lay] > 0:
            num += e_layer[lay] * empty[lay] / (empty[lay] + other[lay])
            den += e_layer[lay]
    return num / den if den else 0.0


def _split_local(local: int) -> tuple[int, int, int]:
    """(layer index, i_η, i_φ) of a local cell index."""
    for index, lay in enumerate(geometry.LAYERS):
        n_eta, n_phi = Window().shape(lay.name)
        if local < n_eta * n_phi:
            return index, local // n_phi, local % n_phi
        local -= n_eta * n_phi
    raise AssertionError


@pytest.fixture(scope="module")
def touching():
    batch = random_touching_events(10, 21)
    clusters = topo_cluster(batch)
    return clusters, cluster_moments(clusters)


def test_moments_have_every_column_and_one_row_per_cluster(touching):
    """One row per cluster, one float column per moment name, all finite."""
    clusters, moments = touching
    assert list(moments.columns) == [f"cluster_{name}" for name in MOMENT_NAMES]
    assert len(moments) == len(clusters)
    assert np.isfinite(moments.to_numpy()).all()


def test_shape_moments_match_athena_per_cluster_loop(touching):
    """Vectorised CENTER_MAG … ENG_FRAC_CORE equal athena's loop over one cluster's cells."""
    clusters, moments = touching
    for row in range(len(clusters)):
        expected = reference_shape_moments(clusters, row)
        for name, value in expected.items():
            assert moments[f"cluster_{name}"].iloc[row] == pytest.approx(
                value, rel=1e-7, abs=1e-9
            ), (
                name,
                row,
            )


def test_isolation_matches_athena_neighbour_count(touching):
    """ISOLATION equals the per-layer count of empty vs. other-cluster in-layer neighbours."""
    clusters, moments = touching
    for row in range(len(clusters)):
        assert moments["cluster_ISOLATION"].iloc[row] == pytest.approx(
            reference_isolation(clusters, row), abs=1e-12
        )


def test_isolated_cluster_has_isolation_one_and_significance_e_over_noise():
    """A lone cluster sees only empty neighbours; SIGNIFICANCE = E/√Σσ²."""
    batch = make_batch(1, noise=False)
    deposit(batch, 0, "EMB2", 10, 10, 1.0)
    deposit(batch, 0, "EMB2", 10, 11, 0.5)
    clusters = topo_cluster(batch)
    moments = cluster_moments(clusters)
    assert moments["cluster_ISOLATION"].iloc[0] == pytest.approx(1.0)
    sigma = batch.layers["EMB2"].noise_sigma
    assert moments["cluster_SIGNIFICANCE"].iloc[0] == pytest.approx(1.5 / math.sqrt(2 * sigma**2))
    assert moments["cluster_ENG_FRAC_EM"].iloc[0] == pytest.approx(1.0)
    assert moments["cluster_ENG_FRAC_MAX"].iloc[0] == pytest.approx(1.0 / 1.5)


def test_center_lambda_is_the_depth_behind_the_emb1_front_face():
    """CENTER_LAMBDA: distance along the axis from the centre back to r = EMB1 inner radius."""
    batch = make_batch(1, eta=0.0, noise=False)
    # Two cells: too few for the principal axis, so the axis points from the IP.
    deposit(batch, 0, "EMB2", 16, 16, 1.0)
    deposit(batch, 0, "EMB2", 16, 17, 1.0)
    clusters = topo_cluster(batch)
    moments = cluster_moments(clusters)
    centre_mag = moments["cluster_CENTER_MAG"].iloc[0]
    eta = clusters.table["cluster_Eta"].iloc[0]
    r_centre = centre_mag / math.cosh(eta)
    # The path from r = 1500 mm to the centre along the IP direction.
    expected = (r_centre - geometry.layer("EMB1").r_inner_mm) * math.cosh(eta)
    assert moments["cluster_CENTER_LAMBDA"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_eng_calib_tot_sums_weighted_truth_of_the_cluster_cells():
    """ENG_CALIB_TOT = Σ w · (EM + non-EM + invisible + escaped) over the cluster's cells."""
    batch = make_batch(1)
    deposit_blob(batch, 0, "EMB2", 12, 12, 6.0)
    deposit_blob(batch, 0, "EMB2", 12, 16, 4.0)
    batch.layers["EMB2"].calib_invisible[0, 12, 13] += 0.7
    batch.layers["EMB2"].calib_escaped[0, 12, 14] += 0.3
    clusters = topo_cluster(batch)
    moments = cluster_moments(clusters)
    links = clusters.cells
    truth = np.zeros(len(links))
    for i, c in enumerate(links.cell):
        local = int(c) % N_CELLS
        lay, a, b = _split_local(local)
        lc = batch.layers[geometry.LAYERS[lay].name]
        truth[i] = (lc.calib_em + lc.calib_nonem + lc.calib_invisible + lc.calib_escaped)[0, a, b]
    expected = np.bincount(links.cluster, links.weight * truth)
    assert moments["cluster_ENG_CALIB_TOT"].to_numpy() == pytest.approx(expected)
    # The whole event's in-cluster truth is split, not duplicated, between the two.
    assert expected.sum() == pytest.approx(sum(truth[np.unique(links.cell, return_index=True)[1]]))


def test_out_of_cluster_truth_goes_to_clusters_within_the_tight_cone():
    """Unclustered truth within ΔR ≈ 0.3 is attached (shared by ENG_CALIB_TOT); beyond it is not."""
    batch = make_batch(1, eta=0.3, phi=0.1, noise=False)
    deposit_blob(batch, 0, "EMB2", 16, 16, 5.0)
    cluster_cells = topo_cluster(batch).cells
    lay = geometry.layer("EMB2")
    # Truth-only deposits (no signal): 0.1 in η away (inside) and 0.35 away (outside).
    batch.layers["EMB2"].calib_nonem[0, 16 + 4, 16] += 2.0
    batch.layers["EMB2"].calib_nonem[0, 16 + 14, 16] += 3.0
    clusters = topo_cluster(batch)
    assert np.array_equal(clusters.cells.cell, cluster_cells.cell)
    moments = cluster_moments(clusters)
    assert 4 * lay.deta < 0.3 < 14 * lay.deta
    assert moments["cluster_ENG_CALIB_OUT_T"].iloc[0] == pytest.approx(2.0)


def test_out_of_cluster_truth_is_shared_in_proportion_to_calib_energy():
    """Two clusters in the cone share an unclustered deposit as their ENG_CALIB_TOT."""
    batch = make_batch(1, eta=0.3, phi=0.1, noise=False)
    deposit_blob(batch, 0, "EMB2", 10, 16, 6.0, spread=0.1)
    deposit_blob(batch, 0, "EMB2", 22, 16, 2.0, spread=0.1)
    batch.layers["EMB2"].calib_nonem[0, 16, 16] += 1.0  # between them, no signal
    clusters = topo_cluster(batch)
    moments = cluster_moments(clusters)
    calib = moments["cluster_ENG_CALIB_TOT"].to_numpy()
    assert len(clusters) == 2
    assert moments["cluster_ENG_CALIB_OUT_T"].to_numpy() == pytest.approx(calib / calib.sum())


def test_dead_material_goes_to_the_clusters_next_to_it():
    """Cryostat energy follows EMB3/TileBar0 truth; leakage follows TileBar2; sums are kept."""
    batch = make_batch(2, noise=False)
    deposit_blob(batch, 0, "EMB2", 16, 16, 5.0)
    deposit_blob(batch, 0, "EMB3", 8, 16, 1.0)
    deposit_blob(batch, 1, "EMB2", 16, 16, 5.0)
    for event in (0, 1):
        deposit_blob(batch, event, "EMB1", 130, 4, 1.0)  # in front: takes the front dead material
    batch.dead_material_cryostat[:] = [0.4, 0.4]  # event 1 has no EMB3/Tile truth: lost
    batch.leakage_back[:] = [0.2, 0.0]
    batch.dead_material_front[:] = [0.3, 0.3]
    clusters = topo_cluster(batch)
    moments = cluster_moments(clusters)
    by_event = moments.groupby(clusters.table["event"])
    tile0 = by_event["cluster_ENG_CALIB_DEAD_TILE0"].sum()
    assert tile0.tolist() == pytest.approx([0.4, 0.0])
    assert by_event["cluster_ENG_CALIB_DEAD_EMB0"].sum().tolist() == pytest.approx([0.3, 0.3])
    assert by_event["cluster_ENG_CALIB_DEAD_LEAKAGE"].sum().tolist() == pytest.approx([0.0, 0.0])
    total = moments[[f"cluster_ENG_CALIB_DEAD_{p}" for p in ("EMB0", "TILE0", "LEAKAGE")]].sum(
        axis=1
    )
    assert moments["cluster_ENG_CALIB_DEAD_TOT"].to_numpy() == pytest.approx(total.to_numpy())


def test_empty_input_gives_an_empty_table():
    """No clusters, no rows, same columns."""
    moments = cluster_moments(topo_cluster(make_batch(2, noise=False)))
    assert len(moments) == 0
    assert len(moments.columns) == len(MOMENT_NAMES)
