"""The photon-identification shower shapes: hand-made images with known answers, then physics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calotools import geometry, ntuple
from calotools import shower_shapes as ss
from calotools.errors import InvalidValueError
from calotools.testing import random_clusters

EMB2_DETA = geometry.layer("EMB2").deta


def empty_images(n: int = 1) -> dict[str, np.ndarray]:
    """All-zero images of the six layers for ``n`` clusters."""
    return {name: np.zeros((n, *shape)) for name, shape in ntuple.IMAGE_BRANCHES.items()}


def as_clusters(
    images: dict[str, np.ndarray], cluster_e: float | list[float] = 1.0
) -> ntuple.Clusters:
    n = len(images["EMB2"])
    energies = np.broadcast_to(np.asarray(cluster_e, dtype=np.float64), (n,))
    scalars = pd.DataFrame({"cluster_E": energies.astype(np.float32)})
    return ntuple.Clusters(scalars, {k: v.astype(np.float32) for k, v in images.items()})


def photon_like(strips: dict[int, float], *, emb2_centre: tuple[int, int] = (8, 8)) -> dict:
    """One hot EMB2 cell (the strip array's anchor) and the given strips in φ bin 1."""
    images = empty_images()
    images["EMB2"][0][emb2_centre] = 0.5
    for index, energy in strips.items():
        images["EMB1"][0, index, 1] = energy
    return images


# ---------------------------------------------------------------------------- EMB2


def test_all_emb2_energy_in_one_cell_gives_reta_and_rphi_one_and_no_width():
    emb2 = empty_images()["EMB2"]
    emb2[0, 5, 11] = 0.7
    assert ss.reta(emb2).item() == 1.0
    assert ss.rphi(emb2).item() == 1.0
    assert ss.weta2(emb2).item() == 0.0


def test_energy_spread_evenly_over_7x7_gives_reta_and_rphi_three_sevenths():
    emb2 = empty_images()["EMB2"]
    emb2[0, 5:12, 5:12] = 1.0 / 49
    emb2[0, 8, 8] *= 1 + 1e-9  # so that the centre is the hottest cell
    assert ss.reta(emb2).item() == pytest.approx(3 / 7, abs=1e-8)  # 21 of 49 cells
    assert ss.rphi(emb2).item() == pytest.approx(3 / 7, abs=1e-8)  # 9 of 21


def test_reta_and_rphi_count_the_cells_of_each_window():
    emb2 = empty_images()["EMB2"]
    emb2[0, 8, 8] = 0.5
    emb2[0, 8, 10] = 0.2  # in 3×7, not in 3×3
    emb2[0, 11, 8] = 0.1  # in 7×7, not in 3×7
    emb2[0, 13, 8] = 0.2  # beyond 7×7: no variable sees it
    assert ss.reta(emb2).item() == pytest.approx(0.7 / 0.8)
    assert ss.rphi(emb2).item() == pytest.approx(0.5 / 0.7)


def test_weta2_is_the_rms_in_eta_of_the_3x5_window():
    emb2 = empty_images()["EMB2"]
    # η rows of 0.1, 0.2, 0.1 (the middle one split over two φ cells of the 5):
    # variance (0.1 Δη² + 0.1 Δη²) / 0.4.
    emb2[0, 7:10, 8] = 0.1, 0.15, 0.1
    emb2[0, 8, 10] = 0.05
    emb2[0, 10, 8] = 0.05  # two cells away in η: outside the window
    assert ss.weta2(emb2).item() == pytest.approx(EMB2_DETA / math.sqrt(2))


def test_windows_at_the_image_edge_are_clipped_to_the_image():
    emb2 = empty_images()["EMB2"]
    emb2[0, 0, 8], emb2[0, 1, 8], emb2[0, 3, 8] = 0.6, 0.2, 0.2
    assert ss.reta(emb2).item() == pytest.approx(0.8)
    assert ss.window_sum(emb2, np.array([0]), np.array([8]), (7, 7)).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- fractions


def test_f1_and_f3_are_layer_shares_of_the_em_energy():
    images = empty_images()
    images["EMB1"][0, 60:64, 1] = 0.05  # 0.2
    images["EMB2"][0, 8, 8] = 0.5
    images["EMB3"][0, 4, 8] = 0.3
    images["TileBar0"][0, 2, 2] = 0.4  # not EM: no part of the denominator
    table = ss.shower_shapes(as_clusters(images))
    assert table["f1"].item() == pytest.approx(0.2)
    assert table["f3"].item() == pytest.approx(0.3)


def test_rhad1_takes_the_first_tile_layer_and_rhad_all_three():
    images = empty_images()
    images["EMB2"][0, 8, 8] = 0.8
    images["TileBar0"][0, 2, 2] = 0.04
    images["TileBar1"][0, 1, 3] = 0.02
    images["TileBar2"][0, 1, 2] = 0.02
    table = ss.shower_shapes(as_clusters(images))
    assert table["Rhad1"].item() == pytest.approx(0.05)
    assert table["Rhad"].item() == pytest.approx(0.1)


# ---------------------------------------------------------------------------- strips


def test_two_strip_maxima_give_eratio_and_delta_e_in_gev():
    # The hottest EMB2 cell at η index 8 anchors the strip array on strip 68.
    images = photon_like({60: 0.1, 61: 0.3, 62: 0.1, 64: 0.02, 65: 0.05, 66: 0.1, 67: 0.05})
    table = ss.shower_shapes(as_clusters(images, cluster_e=50.0))
    assert table["Eratio"].item() == pytest.approx((0.3 - 0.1) / (0.3 + 0.1))
    # Lowest strip between the maxima: strip 63, which is empty.
    assert table["DeltaE"].item() == pytest.approx(0.1 * 50.0)
    images["EMB1"][0, 63, 1] = 0.01
    table = ss.shower_shapes(as_clusters(images, cluster_e=50.0))
    assert table["DeltaE"].item() == pytest.approx((0.1 - 0.01) * 50.0)


def test_a_single_strip_maximum_gives_eratio_one_and_no_delta_e():
    images = photon_like({66: 0.1, 67: 0.4, 68: 0.1})
    table = ss.shower_shapes(as_clusters(images, cluster_e=20.0))
    assert table["Eratio"].item() == 1.0
    assert table["DeltaE"].item() == 0.0


def test_strip_widths_and_fside_of_a_known_profile():
    images = photon_like({64: 0.05, 66: 0.1, 67: 0.4, 68: 0.1, 70: 0.05})
    emb1, emb2 = images["EMB1"], images["EMB2"]
    assert ss.strip_ws3(emb1, emb2).item() == pytest.approx(math.sqrt(0.2 / 0.6))
    assert ss.strip_wstot(emb1, emb2).item() == pytest.approx(math.sqrt((0.2 + 0.9) / 0.7))
    assert ss.strip_fside(emb1, emb2).item() == pytest.approx((0.7 - 0.6) / 0.6)


def test_wstot_takes_20_strips_and_the_maxima_40_around_the_hottest_emb2_cell():
    images = photon_like({66: 0.1, 67: 0.4, 68: 0.1})
    emb1, emb2 = images["EMB1"], images["EMB2"]
    emb1[0, 79, 1] = 0.05  # 11.5 strips from the anchor: outside w_s,tot, inside the array
    assert ss.strip_wstot(emb1, emb2).item() == pytest.approx(math.sqrt(0.2 / 0.6))
    assert ss.strip_eratio(emb1, emb2).item() == pytest.approx(0.35 / 0.45)
    emb1[0, 79, 1] = 0.0
    emb1[0, 89, 1] = 0.05  # 21.5 strips away: outside athena's strip array
    assert ss.strip_eratio(emb1, emb2).item() == 1.0


def test_the_strip_profile_sums_the_two_adjacent_phi_bins_with_most_energy():
    images = empty_images()
    images["EMB2"][0, 8, 8] = 0.5
    images["EMB1"][0, 67, 2:4] = 0.3, 0.1
    images["EMB1"][0, 67, 0] = 0.05  # two bins away from the richest pair
    profile, hottest = ss.strip_profile(images["EMB1"], images["EMB2"])
    assert hottest.item() == 67
    assert profile[0, 67] == pytest.approx(0.4)


# ---------------------------------------------------------------------------- edge cases


def test_an_empty_cluster_gives_nan_and_no_warning():
    # pytest turns warnings into errors here: a 0/0 would fail the test.
    table = ss.shower_shapes(as_clusters(empty_images(2)))
    assert table.isna().all().all()
    assert list(table.columns) == list(ss.VARIABLES)


def test_strip_variables_need_an_emb2_cell_to_anchor_them():
    images = empty_images()
    images["EMB1"][0, 60:63, 1] = 0.1, 0.3, 0.1
    table = ss.shower_shapes(as_clusters(images))
    strip_variables = ["wstot", "ws3", "Eratio", "DeltaE", "Fside"]
    assert table[strip_variables].isna().all().all()
    assert table["f1"].item() == 1.0


def test_a_batch_equals_the_clusters_one_by_one():
    clusters = random_clusters(40, seed=3, occupancy=0.3)
    batch = ss.shower_shapes(clusters)
    one_by_one = pd.concat(
        [ss.shower_shapes(clusters[i : i + 1]) for i in range(len(clusters))], ignore_index=True
    )
    pd.testing.assert_frame_equal(batch, one_by_one)
    assert len(batch) == 40
    assert batch["Reta"].notna().all()


def test_missing_branches_are_named():
    clusters = random_clusters(3)
    del clusters.images["TileBar2"]
    with pytest.raises(InvalidValueError, match="lack TileBar2"):
        ss.shower_shapes(clusters)


def test_images_of_the_wrong_shape_are_refused():
    with pytest.raises(InvalidValueError, match=r"\(n_clusters, 16, 16\)"):
        ss.reta(np.zeros((2, 16, 8)))


# ---------------------------------------------------------------------------- physics


@pytest.fixture(scope="module")
def leading_clusters(tmp_path_factory):
    """The leading cluster of 300 simulated photons and 300 π± (default energy spectrum)."""
    from calotools.sim import samples

    folder = tmp_path_factory.mktemp("shower_shapes")
    leading = {}
    for sample in ("gamma", "pipm"):
        path = samples.make_sample(
            sample, folder / f"{sample}.root", n_events=300, progress=False, workers=1
        )
        clusters = ntuple.read_clusters(path)
        leading[sample] = clusters[(clusters.scalars["clusterIndex"] == 0).to_numpy()]
    return leading


def test_simulated_photons_are_narrow_and_stay_in_the_em_calorimeter(leading_clusters):
    photons = ss.shower_shapes(leading_clusters["gamma"])
    assert photons["Reta"].median() > 0.85
    assert photons["Rhad"].median() < 0.05


def test_simulated_charged_pions_leak_far_more_into_tile_than_photons(leading_clusters):
    photons = ss.shower_shapes(leading_clusters["gamma"])
    pions = ss.shower_shapes(leading_clusters["pipm"])
    assert pions["Rhad"].median() > photons["Rhad"].median() + 0.1
