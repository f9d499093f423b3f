"""Topo-clustering (docs/physics.md §4) on hand-built events whose clusters are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from athena_reference import reference_clusters
from cell_factory import (
    NOISE_SIGMA,
    cell_index,
    deposit,
    deposit_blob,
    make_batch,
    random_touching_events,
)
from scipy import stats

from calotools import geometry
from calotools.sim.cells import Window
from calotools.sim.clustering import (
    ClusteringConfig,
    cell_positions,
    neighbour_edges,
    topo_cluster,
)

N_CELLS = Window().n_cells


def cells_of(clusters, row: int) -> dict[tuple[str, int, int], float]:
    """{(layer, i_η, i_φ): weight} of one cluster, for readable assertions."""
    start, stop = clusters.cells.offsets[row], clusters.cells.offsets[row + 1]
    out = {}
    for cell, weight in zip(
        clusters.cells.cell[start:stop], clusters.cells.weight[start:stop], strict=True
    ):
        local = int(cell) % N_CELLS
        for lay in geometry.LAYERS:
            n_eta, n_phi = Window().shape(lay.name)
            if local < n_eta * n_phi:
                out[(lay.name, local // n_phi, local % n_phi)] = float(weight)
                break
            local -= n_eta * n_phi
    return out


def as_cell_sets(clusters, event: int) -> list[frozenset]:
    rows = np.flatnonzero(clusters.table["event"].to_numpy() == event)
    out = []
    for row in rows:
        start, stop = clusters.cells.offsets[row], clusters.cells.offsets[row + 1]
        cells = clusters.cells.cell[start:stop] % N_CELLS
        weights = np.round(clusters.cells.weight[start:stop], 9)
        out.append(frozenset(zip(cells.tolist(), weights.tolist(), strict=True)))
    return sorted(out, key=min)


def test_two_separated_deposits_give_two_clusters():
    """Deposits far apart in EMB2 make two clusters, each holding its own seed."""
    batch = make_batch(1)
    deposit_blob(batch, 0, "EMB2", 8, 8, 5.0)
    deposit_blob(batch, 0, "EMB2", 24, 24, 3.0)
    clusters = topo_cluster(batch)
    assert len(clusters) == 2
    assert clusters.table["clusterIndex"].tolist() == [0, 1]
    assert clusters.table["nCluster"].tolist() == [2, 2]
    first, second = cells_of(clusters, 0), cells_of(clusters, 1)
    assert ("EMB2", 8, 8) in first
    assert ("EMB2", 24, 24) in second
    assert not set(first) & set(second)
    assert clusters.table["cluster_E"].iloc[0] > clusters.table["cluster_E"].iloc[1]


def test_two_touching_deposits_split_into_two_clusters():
    """Two maxima in one connected region split; shared border cells have weights summing to 1."""
    batch = make_batch(1)
    deposit_blob(batch, 0, "EMB2", 12, 12, 6.0)
    deposit_blob(batch, 0, "EMB2", 12, 16, 4.0)
    unsplit = topo_cluster(batch, ClusteringConfig(split=False))
    assert len(unsplit) == 1
    clusters = topo_cluster(batch)
    assert len(clusters) == 2
    first, second = cells_of(clusters, 0), cells_of(clusters, 1)
    assert first[("EMB2", 12, 12)] == 1.0
    assert second[("EMB2", 12, 16)] == 1.0
    shared = set(first) & set(second)
    assert shared, "the border cells between the maxima are shared"
    assert ("EMB2", 12, 14) in shared
    for cell in shared:
        assert first[cell] + second[cell] == pytest.approx(1.0)
        assert 0 < first[cell] < 1
    # Splitting moves energy between clusters but keeps the total.
    assert clusters.table["cluster_E"].sum() == pytest.approx(unsplit.table["cluster_E"].sum())


def test_shared_cell_weight_follows_energy_and_distance():
    """w₁ = E₁/(E₁ + r E₂), r = exp((d₁ − d₂)/5 cm), from the unshared cells' E and |E| centroids."""
    batch = make_batch(1, noise=False)
    deposit_blob(batch, 0, "EMB2", 12, 12, 6.0)
    deposit_blob(batch, 0, "EMB2", 12, 16, 3.0)
    links = topo_cluster(batch).cells
    xyz = np.stack([links.x, links.y, links.z], axis=1)
    own = [(links.cluster == k) & (links.weight == 1.0) for k in (0, 1)]
    energy = [links.energy[mask].sum() for mask in own]
    centroid = [np.average(xyz[mask], axis=0, weights=np.abs(links.energy[mask])) for mask in own]
    shared = np.flatnonzero((links.cluster == 0) & (links.weight < 1.0))
    assert len(shared) > 0
    for i in shared:
        d1, d2 = (np.linalg.norm(xyz[i] - c) for c in centroid)
        r = math.exp((d1 - d2) / 50.0)
        assert links.weight[i] == pytest.approx(energy[0] / (energy[0] + r * energy[1]))


def test_cell_below_seed_threshold_is_not_a_seed_and_only_a_perimeter_cell():
    """A 3σ cell seeds nothing; next to a seed it joins as perimeter but does not grow the cluster."""
    sigma = NOISE_SIGMA["EMB2"]
    batch = make_batch(2, noise=False)
    deposit(batch, 0, "EMB2", 10, 10, 5.0 * sigma)  # seed
    deposit(batch, 0, "EMB2", 10, 11, 1.0 * sigma)  # perimeter: touches the seed
    deposit(batch, 0, "EMB2", 10, 12, 3.0 * sigma)  # growing cell, but only touches the perimeter
    deposit(batch, 1, "EMB2", 10, 10, 3.0 * sigma)  # alone: no seed, no cluster
    clusters = topo_cluster(batch)
    assert clusters.table["event"].tolist() == [0]
    assert set(cells_of(clusters, 0)) == {("EMB2", 10, 10), ("EMB2", 10, 11)}


def test_growing_cells_chain_away_from_the_seed():
    """Cells above 2σ keep growing the cluster; their non-zero neighbours are its perimeter."""
    sigma = NOISE_SIGMA["EMB2"]
    batch = make_batch(1, noise=False)
    deposit(batch, 0, "EMB2", 10, 10, 5.0 * sigma)
    deposit(batch, 0, "EMB2", 10, 11, 2.5 * sigma)
    deposit(batch, 0, "EMB2", 10, 12, 2.5 * sigma)
    deposit(batch, 0, "EMB2", 10, 13, 0.5 * sigma)
    deposit(batch, 0, "EMB2", 10, 14, 0.5 * sigma)  # two steps beyond the last growing cell
    clusters = topo_cluster(batch)
    assert set(cells_of(clusters, 0)) == {("EMB2", 10, j) for j in range(10, 14)}


def test_perimeter_cell_goes_to_the_cluster_that_reaches_it_first():
    """A perimeter cell touching two clusters joins the more significant seed's (same generation)."""
    sigma = NOISE_SIGMA["EMB2"]
    batch = make_batch(2, noise=False)
    # Event 0: both seeds touch the perimeter cell directly; the 10σ seed wins.
    deposit(batch, 0, "EMB2", 10, 10, 6.0 * sigma)
    deposit(batch, 0, "EMB2", 10, 11, 1.0 * sigma)
    deposit(batch, 0, "EMB2", 10, 12, 10.0 * sigma)
    # Event 1: the 10σ seed reaches it one generation later, through a growing cell.
    deposit(batch, 1, "EMB2", 10, 10, 6.0 * sigma)
    deposit(batch, 1, "EMB2", 10, 11, 1.0 * sigma)
    deposit(batch, 1, "EMB2", 11, 12, 3.0 * sigma)
    deposit(batch, 1, "EMB2", 12, 13, 10.0 * sigma)
    clusters = topo_cluster(batch, ClusteringConfig(split=False))
    table = clusters.table
    for event, winner_seed in ((0, ("EMB2", 10, 12)), (1, ("EMB2", 10, 10))):
        rows = np.flatnonzero(table["event"].to_numpy() == event)
        assert len(rows) == 2
        owner = [row for row in rows if ("EMB2", 10, 11) in cells_of(clusters, row)]
        assert len(owner) == 1
        assert winner_seed in cells_of(clusters, owner[0])


def test_presampler_does_not_grow_within_itself():
    """Presampler cells are not neighbours of each other (athena RestrictPSNeighbors)."""
    sigma = NOISE_SIGMA["PreSamplerB"]
    batch = make_batch(1, noise=False)
    deposit(batch, 0, "PreSamplerB", 10, 3, 6.0 * sigma)
    deposit(batch, 0, "PreSamplerB", 11, 3, 3.0 * sigma)
    deposit(batch, 0, "EMB2", 10, 10, 0.001)  # far away: unrelated
    clusters = topo_cluster(batch)
    assert set(cells_of(clusters, 0)) == {("PreSamplerB", 10, 3)}


def test_emb3_and_tilebar0_are_neighbours_across_the_cryostat():
    """An EMB3 seed grows into the TileBar0 cell behind it (super3D next-calorimeter neighbour)."""
    batch = make_batch(1, noise=False)
    eta, phi = batch.eta_low[0] + 0.42, batch.phi_low[0] + 0.33
    i3, j3 = cell_index(batch, 0, "EMB3", eta, phi)
    it, jt = cell_index(batch, 0, "TileBar0", eta, phi)
    deposit(batch, 0, "EMB3", i3, j3, 6.0 * NOISE_SIGMA["EMB3"])
    deposit(batch, 0, "TileBar0", it, jt, 3.0 * NOISE_SIGMA["TileBar0"])
    assert set(cells_of(topo_cluster(batch), 0)) == {("EMB3", i3, j3), ("TileBar0", it, jt)}


def test_neighbour_template_is_symmetric_and_overlapping():
    """super3D pairs join in-layer neighbours and overlapping cells of consecutive layers only."""
    window = Window()
    edges = neighbour_edges(window, presampler_in_layer=True)
    assert np.all(edges[:, 0] < edges[:, 1])
    assert len(np.unique(edges, axis=0)) == len(edges)
    fewer = neighbour_edges(window)
    ps = Window().shape("PreSamplerB")
    n_ps = ps[0] * ps[1]
    in_ps = (edges[:, 0] < n_ps) & (edges[:, 1] < n_ps)
    assert len(edges) - len(fewer) == in_ps.sum() > 0
    # An EMB2 cell touches the 8 strips in front of it and the EMB3 cell behind.
    emb1, emb2 = Window().shape("EMB1"), Window().shape("EMB2")
    first_emb2 = n_ps + emb1[0] * emb1[1]
    cell = first_emb2 + 5 * emb2[1] + 5
    partners = np.concatenate([edges[edges[:, 0] == cell, 1], edges[edges[:, 1] == cell, 0]])
    assert ((partners >= n_ps) & (partners < first_emb2)).sum() == 8
    assert (partners >= first_emb2 + emb2[0] * emb2[1]).sum() == 1


def test_noise_only_events_give_clusters_at_the_expected_rate():
    """Without signal, clusters appear at the rate of 4σ noise seeds: n_cells · P(|z| > 4) per event."""
    n_events = 1500
    clusters = topo_cluster(make_batch(n_events, seed=11))
    expected = n_events * N_CELLS * 2 * stats.norm.sf(4.0)  # ≈ 0.25 per event
    assert abs(len(clusters) - expected) < 4 * math.sqrt(expected)
    # And a stricter noise cut (σ × 1.5) leaves almost none.
    assert len(topo_cluster(make_batch(200, seed=12), ClusteringConfig(noise_scale=1.5))) <= 2


def test_cluster_position_is_the_abs_energy_weighted_mean():
    """η and φ are weighted by |w E|, so a negative cell pulls the centre too."""
    batch = make_batch(1, noise=False)
    deposit(batch, 0, "EMB2", 10, 10, 1.0)
    deposit(batch, 0, "EMB2", 11, 11, -0.3)
    deposit(batch, 0, "EMB2", 10, 11, 0.2)
    clusters = topo_cluster(batch)
    lay = geometry.layer("EMB2")
    eta = batch.eta_low[0] + (np.array([10, 11, 10]) + 0.5) * lay.deta
    phi = batch.phi_low[0] + (np.array([10, 11, 11]) + 0.5) * lay.dphi
    weight = np.array([1.0, 0.3, 0.2])
    row = clusters.table.iloc[0]
    assert row["cluster_E"] == pytest.approx(0.9)
    assert row["cluster_Eta"] == pytest.approx(np.average(eta, weights=weight))
    assert row["cluster_Phi"] == pytest.approx(geometry.wrap_phi(np.average(phi, weights=weight)))
    assert row["cluster_Pt"] == pytest.approx(0.9 / np.cosh(row["cluster_Eta"]))


def test_phi_wraps_around_pi():
    """A cluster straddling φ = ±π gets φ near ±π, not near 0."""
    batch = make_batch(1, phi=math.pi - 0.01, noise=False)
    i, j = cell_index(batch, 0, "EMB2", 0.31, math.pi - 0.01)
    for d_phi, energy in ((-1, 1.0), (0, 2.0), (1, 1.0), (2, 2.0)):
        deposit(batch, 0, "EMB2", i, j + d_phi, energy)
    clusters = topo_cluster(batch)
    phi = clusters.table["cluster_Phi"].iloc[0]
    lay = geometry.layer("EMB2")
    centres = batch.phi_low[0] + (j + np.array([-1, 0, 1, 2]) + 0.5) * lay.dphi
    expected = geometry.wrap_phi(np.average(centres, weights=[1, 2, 1, 2]))
    assert -math.pi < phi <= math.pi
    assert abs(geometry.wrap_phi(phi - expected)) < 1e-9
    assert abs(abs(phi) - math.pi) < 0.05
    positions = cell_positions(batch, clusters.cells.cell)
    assert np.all(np.abs(positions["phi"]) <= math.pi)
    assert np.any(positions["phi"] > 3)
    assert np.any(positions["phi"] < -3)


def test_cell_positions_lie_at_the_layer_mid_radius():
    """Cells sit on a cylinder at each layer's mid radius with z = r sinh η."""
    batch = make_batch(3, eta=[-0.5, 0.0, 0.6], phi=[-2.0, 0.5, 3.0], noise=False)
    cells = np.arange(0, 3 * N_CELLS, 37)
    pos = cell_positions(batch, cells)
    radius = np.array([0.5 * (lay.r_inner_mm + lay.r_outer_mm) for lay in geometry.LAYERS])
    r = radius[pos["layer"]]
    assert np.hypot(pos["x"], pos["y"]) == pytest.approx(r)
    assert pos["z"] == pytest.approx(r * np.sinh(pos["eta"]))
    assert np.arctan2(pos["y"], pos["x"]) == pytest.approx(pos["phi"])


@pytest.mark.parametrize(
    ("seed", "config"),
    [
        (1, ClusteringConfig()),
        (2, ClusteringConfig(share_border_cells=False)),
        (3, ClusteringConfig(noise_scale=1.5, split_min_energy=0.2)),
        (4, ClusteringConfig(seed_threshold=6, growth_threshold=3, perimeter_threshold=3)),
    ],
)
def test_batch_clustering_matches_a_literal_port_of_athena(seed, config):
    """Vectorised clusters and weights equal athena's cell-by-cell maker and splitter, event by event."""
    batch = random_touching_events(12, seed)
    clusters = topo_cluster(batch, config)
    for event in range(len(batch)):
        expected = sorted(
            (
                frozenset((c, round(w, 9)) for c, w in cluster.items())
                for cluster in reference_clusters(batch, event, config)
            ),
            key=min,
        )
        assert as_cell_sets(clusters, event) == expected, f"event {event}"


def test_links_are_sorted_and_consistent_with_the_table():
    """Cell links are grouped by cluster in cell order; sums reproduce E and the cell count."""
    batch = random_touching_events(10, 5)
    clusters = topo_cluster(batch)
    links, table = clusters.cells, clusters.table
    key = links.cluster.astype(np.int64) * (len(batch) * N_CELLS) + links.cell
    assert np.all(np.diff(key) > 0)
    assert np.array_equal(np.diff(links.offsets), table["cluster_nCells"].to_numpy())
    energy = np.add.reduceat(links.weight * links.energy, links.offsets[:-1])
    assert energy == pytest.approx(table["cluster_E"].to_numpy())
    flat = np.concatenate(
        [batch.layers[lay.name].energy.reshape(len(batch), -1) for lay in geometry.LAYERS], axis=1
    ).ravel()
    assert links.matrix(len(flat)) @ flat == pytest.approx(table["cluster_E"].to_numpy())
    assert np.all(links.cell // N_CELLS == table["event"].to_numpy()[links.cluster])
    # Ranks run 0, 1, ... by decreasing energy within each event.
    for _, group in table.groupby("event"):
        assert group["clusterIndex"].tolist() == list(range(len(group)))
        assert np.all(np.diff(group["cluster_E"].to_numpy()) <= 0)


def test_clusters_at_or_below_the_et_cut_are_dropped():
    """cluster_min_abs_et drops proto-clusters with |E_T| at or below it (athena ClusterEtorAbsEtCut)."""
    batch = make_batch(1, eta=0.0, noise=False)
    deposit(batch, 0, "EMB2", 8, 8, 2.0)
    deposit(batch, 0, "EMB2", 24, 24, 0.5)
    deposit(batch, 0, "EMB2", 16, 2, -0.8)
    assert len(topo_cluster(batch)) == 3
    kept = topo_cluster(batch, ClusteringConfig(cluster_min_abs_et=0.6))
    assert kept.table["cluster_E"].tolist() == pytest.approx([2.0, -0.8])


def test_simulated_pions_give_a_leading_cluster_with_the_expected_response():
    """On simulated events: π0 cluster_E ≈ ENG_CALIB_TOT, π± below it (docs/physics.md §6)."""
    from calotools.sim.config import SimulationConfig
    from calotools.sim.images import cluster_images
    from calotools.sim.moments import cluster_moments
    from calotools.sim.simulation import simulate_batch

    medians = {}
    for particle in ("pi0", "pi+"):
        config = SimulationConfig(particle=particle, n_events=150, e_min=20.0, e_max=20.0, seed=4)
        clusters = topo_cluster(simulate_batch(config, 0, 150))
        moments = cluster_moments(clusters)
        images = cluster_images(clusters)
        lead = (clusters.table["clusterIndex"] == 0).to_numpy()
        assert lead.sum() >= 145
        response = clusters.table["cluster_E"][lead] / moments["cluster_ENG_CALIB_TOT"][lead]
        medians[particle] = float(np.median(response))
        assert np.isfinite(moments.to_numpy()).all()
        assert all(np.isfinite(image).all() for image in images.values())
    assert 0.97 < medians["pi0"] < 1.03
    assert 0.7 < medians["pi+"] < 0.95


def test_empty_batch_and_empty_events_give_empty_tables():
    """Events without any seed give no clusters and no errors."""
    clusters = topo_cluster(make_batch(3, noise=False))
    assert len(clusters) == 0
    assert len(clusters.cells) == 0
    assert list(clusters.table.columns)[:4] == ["event", "eventNumber", "clusterIndex", "nCluster"]


def test_clustering_config_round_trips_through_json(tmp_path):
    """The settings save as JSON and load back equal; bad settings are refused with the reason."""
    config = ClusteringConfig(noise_scale=1.5, split_secondary_layers=("EMB1",))
    path = tmp_path / "clustering.json"
    config.to_json(path)
    assert ClusteringConfig.from_json(path) == config
    assert ClusteringConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="seed ≥ growth"):
        ClusteringConfig(seed_threshold=1.0)
    with pytest.raises(KeyError, match="EMB9"):
        ClusteringConfig(split_primary_layers=("EMB9",))
    with pytest.raises(ValueError, match="unknown clustering settings"):
        ClusteringConfig.from_dict({"seed": 4})
