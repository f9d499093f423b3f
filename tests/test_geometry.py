"""The barrel geometry agrees with docs/physics.md §1 and with itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calotools import geometry


def test_image_layers_have_the_mltree_shapes():
    """docs/ntuple-format.md: EMB1 128×4, EMB2 16×16, EMB3 8×16, Tile 4×4, 4×4, 2×4."""
    shapes = {lay.name: lay.image_shape for lay in geometry.IMAGE_LAYERS}
    assert shapes == {
        "EMB1": (128, 4),
        "EMB2": (16, 16),
        "EMB3": (8, 16),
        "TileBar0": (4, 4),
        "TileBar1": (4, 4),
        "TileBar2": (2, 4),
    }


def test_every_image_spans_the_0p4_window():
    """n_η Δη = 0.4 and n_φ Δφ = 2π/16 ≈ 0.393: each image is MLTree's window, 2 half-widths."""
    for lay in geometry.IMAGE_LAYERS:
        n_eta, n_phi = lay.image_shape
        assert n_eta * lay.deta == pytest.approx(2 * geometry.IMAGE_HALF_WIDTH_ETA)
        assert n_phi * lay.dphi == pytest.approx(2 * math.pi / 16)
        assert n_phi * lay.dphi == pytest.approx(2 * geometry.IMAGE_HALF_WIDTH_PHI)


def test_pixel_edges_put_the_centre_cell_at_index_n_over_2():
    """MLTree's index rule floor(d/Δ + 1e-4) + n/2 puts d = 0 at n/2 and the edges agree."""
    for lay in geometry.IMAGE_LAYERS:
        for edges, width, n in (
            (lay.eta_edges, lay.deta, lay.image_shape[0]),
            (lay.phi_edges, lay.dphi, lay.image_shape[1]),
        ):
            assert len(edges) == n + 1
            assert np.allclose(np.diff(edges), width)
            centres = (edges[:-1] + edges[1:]) / 2 - width / 2  # left edge = cell offset
            index = np.floor(centres / width + 1e-4).astype(int) + n // 2
            assert list(index) == list(range(n))
            assert edges[n // 2] == 0.0


def test_layers_are_ordered_outwards_without_overlap():
    """Radii increase layer by layer (docs/physics.md §1 table)."""
    radii = [(lay.r_inner_mm, lay.r_outer_mm) for lay in geometry.LAYERS]
    assert all(r_in < r_out for r_in, r_out in radii)
    assert all(radii[i][1] <= radii[i + 1][0] for i in range(len(radii) - 1))


def test_depths_match_the_spec():
    """EM total > 22 X0, Tile ≈ 7.4 λ (docs/physics.md §1)."""
    em = sum(geometry.layer(n).depth_x0 for n in ("EMB1", "EMB2", "EMB3"))
    tile = sum(geometry.layer(n).depth_lambda for n in ("TileBar0", "TileBar1", "TileBar2"))
    assert em == pytest.approx(22.3)
    assert tile == pytest.approx(7.4)


def test_sampling_ids_and_lookup():
    """ATLAS CaloSampling ids, looked up by name or id."""
    ids = {lay.name: lay.sampling for lay in geometry.LAYERS}
    assert ids == {
        "PreSamplerB": 0,
        "EMB1": 1,
        "EMB2": 2,
        "EMB3": 3,
        "TileBar0": 12,
        "TileBar1": 13,
        "TileBar2": 14,
    }
    assert geometry.layer(13) is geometry.layer("TileBar1")
    with pytest.raises(KeyError, match="unknown calorimeter layer 'EMB4'.*EMB1 \\(1\\)"):
        geometry.layer("EMB4")


def test_phi_cells_tile_the_ring():
    """Δφ = 2π/n_φ: 0.098 for strips, presampler and Tile, 0.0245 for EMB2/EMB3."""
    assert geometry.layer("EMB1").dphi == pytest.approx(0.098, abs=3e-4)
    assert geometry.layer("EMB2").dphi == pytest.approx(0.0245, abs=1e-4)
    lay = geometry.layer("EMB2")
    phi = lay.phi_center(np.arange(lay.n_phi))
    assert np.array_equal(lay.phi_index(phi), np.arange(lay.n_phi))
    assert np.all(np.abs(phi) <= math.pi)


def test_cell_index_round_trips_through_centres():
    """η index of a cell centre is the cell; η = 0 is a cell edge."""
    lay = geometry.layer("EMB1")
    index = np.arange(-200, 200)
    assert np.array_equal(lay.eta_index(lay.eta_center(index)), index)
    assert lay.eta_index(1e-9) == 0
    assert lay.eta_index(-1e-9) == -1


def test_cell_volume_formula():
    """V = Δφ (R_out³ − R_in³)/3 (sinh η₂ − sinh η₁): at η ≈ 0 ≈ area × thickness."""
    lay = geometry.layer("EMB2")
    volume = lay.cell_volume_mm3(0.0, lay.deta)
    r_mid = (lay.r_inner_mm + lay.r_outer_mm) / 2
    approx = (r_mid * lay.dphi) * (r_mid * lay.deta) * lay.thickness_mm
    assert volume == pytest.approx(approx, rel=0.02)


def test_wrap_phi():
    """Angles wrap into (−π, π]."""
    assert geometry.wrap_phi(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert geometry.wrap_phi(-math.pi) == pytest.approx(math.pi)
    assert geometry.wrap_phi(0.5) == pytest.approx(0.5)
