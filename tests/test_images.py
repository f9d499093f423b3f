"""MLTree cluster images (docs/ntuple-format.md, "How MLTree fills the images")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cell_factory import cell_index, deposit, deposit_blob, make_batch, random_touching_events

from calotools import geometry
from calotools.sim.clustering import ClusteringConfig, topo_cluster
from calotools.sim.images import MIN_CELL_ENERGY, cluster_images, image_centres


def single_cluster(*deposits, eta: float = 0.31, phi: float = 0.12):
    """One event without noise; ``deposits`` are (layer, d_eta, d_phi, energy) around (eta, phi)."""
    batch = make_batch(1, eta=eta, phi=phi, noise=False)
    for layer, d_eta, d_phi, energy in deposits:
        i, j = cell_index(batch, 0, layer, eta + d_eta, phi + d_phi)
        deposit(batch, 0, layer, i, j, energy)
    clusters = topo_cluster(batch)
    assert len(clusters) == 1
    return batch, clusters


def test_images_have_the_mltree_shapes_and_float32():
    """Six float32 images per cluster with geometry.IMAGE_LAYERS shapes, stored [η][φ]."""
    clusters = topo_cluster(random_touching_events(6, 3))
    images = cluster_images(clusters)
    assert list(images) == list(geometry.IMAGE_LAYER_NAMES)
    for lay in geometry.IMAGE_LAYERS:
        assert images[lay.name].shape == (len(clusters), *lay.image_shape)
        assert images[lay.name].dtype == np.float32


def test_centre_cell_lands_at_index_n_over_2():
    """The cluster's cell nearest to its (η, φ) fills pixel (n_η/2, n_φ/2) of its layer."""
    _, clusters = single_cluster(("EMB2", 0.0, 0.0, 5.0), ("EMB2", 0.026, 0.0, 0.5))
    centre_eta, centre_phi, centre_layer = image_centres(clusters)
    assert geometry.LAYERS[centre_layer[0]].name == "EMB2"
    image = cluster_images(clusters)["EMB2"][0]
    assert image[8, 8] == pytest.approx(5.0 / 5.5)
    assert image[9, 8] == pytest.approx(0.5 / 5.5)
    links = clusters.cells
    nearest = np.argmin(
        (links.eta - clusters.table["cluster_Eta"][0]) ** 2
        + (links.phi - clusters.table["cluster_Phi"][0]) ** 2
    )
    assert (centre_eta[0], centre_phi[0]) == (links.eta[nearest], links.phi[nearest])


def test_centre_cell_can_be_in_any_layer():
    """The window centres on the nearest cluster cell of any layer, here a TileBar0 cell."""
    _, clusters = single_cluster(("TileBar0", 0.0, 0.0, 5.0), ("EMB3", 0.0, 0.0, 0.1))
    _, _, layer = image_centres(clusters)
    images = cluster_images(clusters)
    lay = geometry.layer("TileBar0")
    assert geometry.LAYERS[layer[0]].name == "TileBar0"
    n_eta, n_phi = lay.image_shape
    assert images["TileBar0"][0, n_eta // 2, n_phi // 2] == pytest.approx(5.0 / 5.1)
    assert images["EMB3"][0].sum() == pytest.approx(0.1 / 5.1)


def _whole_window_cluster(batch):
    """Cluster with growth threshold 0: every non-zero cell of the window joins."""
    return topo_cluster(batch, ClusteringConfig(split=False, growth_threshold=0.0))


def _emb2_centred_batch():
    """One event of 1 MeV in every cell (connects, never imaged) and 1 TeV in EMB2 cell (12, 14).

    Returns the batch and the (η, φ) of that cell, which the image window centres on.
    """
    batch = make_batch(1, eta=0.3, phi=0.1, noise=False)
    for name, cells in batch.layers.items():
        cells.energy[:] = 0.001 * (name != "PreSamplerB")
    emb2 = geometry.layer("EMB2")
    i2, j2 = 12, 14
    deposit(batch, 0, "EMB2", i2, j2, 1000.0)
    centre_eta = batch.eta_low[0] + (i2 + 0.5) * emb2.deta
    centre_phi = batch.phi_low[0] + (j2 + 0.5) * emb2.dphi
    return batch, centre_eta, centre_phi


@pytest.mark.parametrize(
    ("layer", "offset", "pixel"),
    [
        ("EMB2", (3.0, -2.0), (11, 6)),  # whole cells: floor(3 + 1e-4) survives rounding
        ("EMB3", (2.0, 4.0), (6, 12)),
        ("EMB1", (5.5, 1.0), (69, 2)),
        ("TileBar1", (1.0, -1.0), (3, 0)),
        ("TileBar2", (-0.5, 1.0), (0, 2)),  # |dη| < 0.2: the cell below the centre
    ],
)
def test_deposit_at_a_known_offset_lands_where_the_index_rule_says(layer, offset, pixel):
    """A cell offset (k_η Δη, k_φ Δφ) from the centre cell fills pixel floor(d/Δ + 1e-4) + n/2."""
    lay = geometry.layer(layer)
    batch, centre_eta, centre_phi = _emb2_centred_batch()
    i, j = cell_index(
        batch, 0, layer, centre_eta + offset[0] * lay.deta, centre_phi + offset[1] * lay.dphi
    )
    deposit(batch, 0, layer, i, j, 0.05)
    clusters = _whole_window_cluster(batch)
    eta_c, phi_c, layer_c = image_centres(clusters)
    assert geometry.LAYERS[layer_c[0]].name == "EMB2"
    assert (eta_c[0], phi_c[0]) == pytest.approx((centre_eta, centre_phi))
    # The rule, written out for this cell.
    d_eta = batch.eta_low[0] + (i + 0.5) * lay.deta - centre_eta
    d_phi = batch.phi_low[0] + (j + 0.5) * lay.dphi - centre_phi
    n_eta, n_phi = lay.image_shape
    rule = (
        math.floor(d_eta / lay.deta + 1e-4) + n_eta // 2,
        math.floor(d_phi / lay.dphi + 1e-4) + n_phi // 2,
    )
    assert rule == pixel
    image = cluster_images(clusters)[layer][0]
    e_clus = clusters.table["cluster_E"][0]
    assert image[pixel] == pytest.approx((0.05 + 0.001) / e_clus, rel=1e-6)
    assert np.count_nonzero(image) == 1 + (layer == "EMB2")


def test_index_rule_for_every_cell_of_a_blob():
    """Every kept cell's pixel is floor(dη/Δη + 1e-4) + n_η/2, floor(dφ/Δφ + 1e-4) + n_φ/2."""
    batch = make_batch(1, noise=False)
    deposit_blob(batch, 0, "EMB2", 12, 14, 8.0, spread=0.6)
    deposit_blob(batch, 0, "EMB1", 100, 3, 2.0, spread=0.6)
    deposit_blob(batch, 0, "EMB3", 6, 14, 1.0, spread=0.6)
    clusters = _whole_window_cluster(batch)
    images = cluster_images(clusters)
    eta_c, phi_c, _ = image_centres(clusters)
    links = clusters.cells
    e_clus = clusters.table["cluster_E"].to_numpy()
    expected = {
        lay.name: np.zeros((len(clusters), *lay.image_shape)) for lay in geometry.IMAGE_LAYERS
    }
    for k, layer, eta, phi, e, w in zip(
        links.cluster, links.layer, links.eta, links.phi, links.energy, links.weight, strict=True
    ):
        lay = geometry.LAYERS[layer]
        d_eta, d_phi = eta - eta_c[k], geometry.wrap_phi(phi - phi_c[k])
        if lay.image_shape is None or e * w < MIN_CELL_ENERGY:
            continue
        if abs(d_eta) >= 0.2 - 1e-4 or abs(d_phi) >= math.pi / 16 - 1e-4:
            continue
        i = math.floor(d_eta / lay.deta + 1e-4) + lay.image_shape[0] // 2
        j = math.floor(d_phi / lay.dphi + 1e-4) + lay.image_shape[1] // 2
        expected[lay.name][k, i, j] += e * w / e_clus[k]
    for name, image in images.items():
        assert image == pytest.approx(expected[name].astype(np.float32), abs=1e-7)


def test_cells_under_5_mev_and_negative_cells_are_dropped():
    """E·w < 5 MeV or < 0 stays out of the images but counts in cluster_E."""
    _, clusters = single_cluster(
        ("EMB2", 0.0, 0.0, 2.0),
        ("EMB2", 0.026, 0.0, 0.004),  # 4 MeV: dropped
        ("EMB2", 0.0, 0.025, -0.1),  # negative: dropped
        ("EMB2", -0.026, 0.0, 0.006),  # 6 MeV: kept
    )
    assert clusters.table["cluster_E"][0] == pytest.approx(1.91)
    image = cluster_images(clusters)["EMB2"][0]
    assert image[8, 8] == pytest.approx(2.0 / 1.91)
    assert image[9, 8] == 0.0
    assert image[8, 9] == 0.0
    assert image[7, 8] == pytest.approx(0.006 / 1.91)
    assert np.count_nonzero(image) == 2


def test_pixels_and_dropped_energy_add_up_to_one_less_the_presampler():
    """Σ pixels + dropped cells + out-of-window cells + presampler = cluster_E, for every cluster."""
    clusters = topo_cluster(random_touching_events(8, 17))
    images = cluster_images(clusters)
    links = clusters.cells
    eta_c, phi_c, _ = image_centres(clusters)
    e_w = links.weight * links.energy
    d_eta = links.eta - eta_c[links.cluster]
    d_phi = geometry.wrap_phi(links.phi - phi_c[links.cluster])
    presampler = links.layer == 0
    dropped = (
        (e_w < MIN_CELL_ENERGY)
        | (np.abs(d_eta) >= 0.2 - 1e-4)
        | (np.abs(d_phi) >= math.pi / 16 - 1e-4)
    )
    e_clus = clusters.table["cluster_E"].to_numpy()
    rest = np.bincount(links.cluster, e_w * (presampler | dropped), minlength=len(clusters))
    pixel_sum = sum(
        image.reshape(len(clusters), -1).sum(axis=1, dtype=np.float64) for image in images.values()
    )
    positive = e_clus > 0
    assert pixel_sum[positive] + rest[positive] / e_clus[positive] == pytest.approx(1.0, abs=1e-5)
    assert np.all(pixel_sum[~positive] == 0)


def test_negative_energy_cluster_has_empty_images():
    """pixel = E·w / cluster_E < 0 for a negative cluster: MLTree drops them all."""
    _, clusters = single_cluster(("EMB2", 0.0, 0.0, -0.5), ("EMB2", 0.026, 0.0, 0.1))
    assert clusters.table["cluster_E"][0] < 0
    assert all(not image.any() for image in cluster_images(clusters).values())


def test_image_window_wraps_in_phi():
    """A cluster at φ ≈ π fills its image across the ±π seam."""
    _, clusters = single_cluster(
        ("EMB2", 0.0, 0.0, 3.0), ("EMB2", 0.0, 0.0245, 1.0), eta=0.2, phi=math.pi - 0.005
    )
    image = cluster_images(clusters)["EMB2"][0]
    assert image.sum() == pytest.approx(1.0)
    assert np.count_nonzero(image) == 2
    assert image[8, 8] == pytest.approx(0.75)


@pytest.mark.parametrize("layer", geometry.IMAGE_LAYER_NAMES)
def test_window_edges_of_every_layer(layer):
    """The outermost cells inside MLTree's window fill the edge pixels; the next ones are out.

    Hand-placed cells around an EMB2 centre cell: in ``layer``, the cells with the most
    negative and most positive offsets still inside |dη| < 0.2 − 10⁻⁴ and |dφ| < π/16 − 10⁻⁴ land
    where floor(d/Δ + 1e-4) + n/2 says: the last pixel n − 1 on both axes, and the first
    pixel 0 except in φ for EMB2 and EMB3 and in η for EMB2. There the cell 8 steps away
    is at 0.2 in η and 8 · 2π/256 = π/16 in φ, at the edges and so outside: row and column 0
    stay empty whenever the window centres on an EMB2 cell (docs/ntuple-format.md). The
    cells one step further out count in cluster_E but in no pixel.
    """
    lay = geometry.layer(layer)
    n_eta, n_phi = lay.image_shape
    batch, centre_eta, centre_phi = _emb2_centred_batch()
    window_eta, window_phi = batch.window.shape(layer)
    d_eta = batch.eta_low[0] + (np.arange(window_eta) + 0.5) * lay.deta - centre_eta
    d_phi = batch.phi_low[0] + (np.arange(window_phi) + 0.5) * lay.dphi - centre_phi
    inside_eta = np.flatnonzero(np.abs(d_eta) < 0.2 - 1e-4)
    inside_phi = np.flatnonzero(np.abs(d_phi) < math.pi / 16 - 1e-4)

    def pixel(d: float, step: float, n: int) -> int:
        return math.floor(d / step + 1e-4) + n // 2

    first = (
        pixel(d_eta[inside_eta[0]], lay.deta, n_eta),
        pixel(d_phi[inside_phi[0]], lay.dphi, n_phi),
    )
    last = (
        pixel(d_eta[inside_eta[-1]], lay.deta, n_eta),
        pixel(d_phi[inside_phi[-1]], lay.dphi, n_phi),
    )
    assert last == (n_eta - 1, n_phi - 1)
    # EMB2 cells 8 steps from the centre are at exactly 8 · 0.025 = 0.2 in η and at
    # 8 · 2π/256 = π/16 in φ: both outside. EMB3's η cells sit half a cell off.
    assert first == {"EMB2": (1, 1), "EMB3": (0, 1)}.get(layer, (0, 0))
    beyond = (inside_eta[-1] + 1, inside_phi[-1] + 1)
    assert beyond[0] < window_eta
    assert beyond[1] < window_phi
    for cell in ((inside_eta[0], inside_phi[0]), (inside_eta[-1], inside_phi[-1]), beyond):
        deposit(batch, 0, layer, *cell, 0.05)
    clusters = _whole_window_cluster(batch)
    assert geometry.LAYERS[image_centres(clusters)[2][0]].name == "EMB2"
    image = cluster_images(clusters)[layer][0]
    e_clus = clusters.table["cluster_E"][0]
    expected = (0.05 + 0.001) / e_clus
    for corner in (first, last):
        assert image[corner] == pytest.approx(expected, rel=1e-6)
    assert not image[: first[0]].any()
    assert not image[:, : first[1]].any()
    # The cell beyond the window: its 51 MeV are in cluster_E, nowhere in the image (the
    # 1 MeV cells are under the 5 MeV cut, so the image holds the corners and the centre).
    centre = (1000.0 + 0.001) * (layer == "EMB2")
    assert image.sum() * e_clus == pytest.approx(2 * expected * e_clus + centre, rel=1e-5)
    everything = sum(c.energy[0].sum() for n, c in batch.layers.items() if n != "PreSamplerB")
    assert e_clus == pytest.approx(everything, rel=1e-6)
