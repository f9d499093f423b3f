"""The LCW-style calibration recovers known responses from synthetic cell-level clusters.

The samples are built here with numpy and the real geometry: each cluster has
cells in every barrel layer, with layer shares like those of π0 (EM, compact,
shallow) or π± (an EM core plus a wide, deep hadronic part), and pure-noise
cells of both signs. The truth is set by hand so that the right answer is
known: π± cells measure E = calib / 1.4 below a true density of 1e-7 GeV/mm³
and calib / 1.1 above; ENG_CALIB_OUT_T = k(E) · ISOLATION · E;
ENG_CALIB_DEAD_TOT = α(E)·E_PS + β·√(E_EMB3·E_TileBar0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from calotools import geometry
from calotools.sim.calibration import (
    CELL_COLUMNS,
    CLUSTER_COLUMNS,
    CLUSTER_TRUTH_COLUMNS,
    LAYER_ENERGY_COLUMNS,
    OUTPUT_COLUMNS,
    Binning,
    CalibrationFileError,
    CalibrationInputError,
    LCWCalibration,
    LCWConfig,
)

#: The true density below which the synthetic π± response is 1/1.4, above 1/1.1;
#: an edge of the test's density binning, so that each bin has one true weight.
DENSITY_SPLIT = 1e-7  # GeV/mm³
LOW_DENSITY_WEIGHT, HIGH_DENSITY_WEIGHT = 1.4, 1.1
#: OOC fraction k and DM coefficient α change at E_EM = 10 GeV, a bin edge of both
#: tables, so that every bin has one true value, the empty ones above the training
#: energies included.
ENERGY_SPLIT = 10.0  # GeV
OOC_FRACTION = {"pi0": (0.03, 0.01), "pipm": (0.08, 0.03)}  # below, above ENERGY_SPLIT
DM_ALPHA = {"pi0": (1.2, 1.6), "pipm": (1.5, 2.5)}
DM_BETA = {"pi0": 0.0, "pipm": 0.3}

#: Cells per cluster in each layer (sampling id → count).
CELLS_PER_LAYER = {0: 2, 1: 8, 2: 6, 3: 3, 12: 3, 13: 3, 14: 2}
#: Mean layer shares of the energy (PS, EMB1, EMB2, EMB3, Tile0, Tile1, Tile2).
EM_SHARES = np.array([0.04, 0.30, 0.60, 0.05, 0.01, 0.0, 0.0])
HAD_SHARES = np.array([0.02, 0.08, 0.20, 0.06, 0.30, 0.28, 0.06])
#: Electronic noise per cell (docs/physics.md §2), GeV.
NOISE_SIGMA = {0: 0.030, 1: 0.015, 2: 0.025, 3: 0.020, 12: 0.020, 13: 0.020, 14: 0.020}
#: Pure-noise cells per cluster in each layer.
NOISE_CELLS_PER_LAYER = 6

TEST_CONFIG = LCWConfig(
    class_log10_energy=Binning(0.0, 2.5, 10),
    class_log10_density=Binning(-10.0, -4.0, 12),
    class_log10_lambda=Binning(1.5, 3.5, 8),
    cell_log10_energy=Binning(0.0, 2.5, 5),
    cell_log10_density=Binning(-10.0, -3.0, 14),  # -7 is an edge: DENSITY_SPLIT
)


def _by_energy(values: tuple[float, float], energy: np.ndarray) -> np.ndarray:
    return np.where(energy < ENERGY_SPLIT, values[0], values[1])


def make_sample(kind: str, n_clusters: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clusters, cells) tables of ``n_clusters`` synthetic π0 or π± clusters."""
    rng = np.random.default_rng(seed)
    true_e = 10 ** rng.uniform(np.log10(2.0), np.log10(200.0), n_clusters)
    eta = rng.uniform(-0.69, 0.69, n_clusters)
    if kind == "pi0":
        shares = rng.dirichlet(EM_SHARES * 60 + 0.05, n_clusters)
    else:
        # the EM fraction of a hadronic shower varies from shower to shower
        f_em = rng.beta(2.0, 3.0, n_clusters)
        em = rng.dirichlet(EM_SHARES * 60 + 0.05, n_clusters)
        had = rng.dirichlet(HAD_SHARES * 60 + 0.05, n_clusters)
        shares = f_em[:, None] * em + (1 - f_em[:, None]) * had

    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("cluster", "sampling", "calib", "noise", "volume_mm3", "depth")
    }
    for column, (sampling, count) in enumerate(CELLS_PER_LAYER.items()):
        lay = geometry.layer(sampling)
        # the layer's energy falls off from the hottest cell outwards; then
        # pure-noise cells (no deposit) of the cluster's perimeter
        profile = 0.45 ** np.arange(count)
        deposit = true_e[:, None] * shares[:, column, None] * profile / profile.sum()
        deposit = np.concatenate([deposit, np.zeros((n_clusters, NOISE_CELLS_PER_LAYER))], 1)
        n_cells = count + NOISE_CELLS_PER_LAYER
        noise = np.concatenate(
            [
                np.zeros((n_clusters, count)),
                rng.normal(0.0, NOISE_SIGMA[sampling], (n_clusters, NOISE_CELLS_PER_LAYER)),
            ],
            1,
        )
        eta_low = np.abs(eta)[:, None] + np.arange(n_cells) * lay.deta
        radius = 0.5 * (lay.r_inner_mm + lay.r_outer_mm)
        parts["cluster"].append(np.repeat(np.arange(n_clusters), n_cells))
        parts["sampling"].append(np.full(n_clusters * n_cells, sampling))
        parts["calib"].append(deposit.ravel())
        parts["noise"].append(noise.ravel())
        parts["volume_mm3"].append(lay.cell_volume_mm3(eta_low, eta_low + lay.deta).ravel())
        parts["depth"].append(np.repeat((radius - 1460.0) * np.cosh(eta), n_cells))
    cells = pd.DataFrame({name: np.concatenate(values) for name, values in parts.items()})
    if kind == "pi0":
        response = 1.0
    else:
        true_density = cells["calib"] / cells["volume_mm3"]
        response = np.where(
            true_density < DENSITY_SPLIT, 1 / LOW_DENSITY_WEIGHT, 1 / HIGH_DENSITY_WEIGHT
        )
    cells["energy"] = cells["calib"] * response + cells.pop("noise")
    cells["noise_sigma"] = cells["sampling"].map(NOISE_SIGMA)
    # a third of the cells are shared with a neighbouring cluster after splitting
    cells["weight"] = np.where(rng.random(len(cells)) < 1 / 3, 0.6, 1.0)
    depth = cells.pop("depth").to_numpy()

    n = n_clusters
    cluster = cells["cluster"].to_numpy()
    e_w = (cells["weight"] * cells["energy"]).to_numpy()
    energy = np.bincount(cluster, weights=e_w, minlength=n)
    positive = np.clip(e_w, 0.0, None)
    sum_positive = np.bincount(cluster, weights=positive, minlength=n)
    density = np.clip(cells["energy"], 0.0, None) / cells["volume_mm3"]
    first_eng_dens = np.bincount(cluster, weights=positive * density, minlength=n) / sum_positive
    center_lambda = np.bincount(cluster, weights=positive * depth, minlength=n) / sum_positive
    isolation = rng.uniform(0.3, 1.0, n)
    calib_tot = np.bincount(cluster, weights=cells["weight"] * cells["calib"], minlength=n)
    layer_e = {
        name: np.clip(
            np.bincount(
                cluster,
                weights=np.where(cells["sampling"] == geometry.layer(name).sampling, e_w, 0.0),
                minlength=n,
            ),
            0.0,
            None,
        )
        for name in LAYER_ENERGY_COLUMNS
    }
    dead = _by_energy(DM_ALPHA[kind], energy) * layer_e["PreSamplerB"] + DM_BETA[kind] * np.sqrt(
        layer_e["EMB3"] * layer_e["TileBar0"]
    )
    clusters = pd.DataFrame(
        {
            "cluster_E": energy,
            "cluster_Eta": eta,
            "cluster_FIRST_ENG_DENS": first_eng_dens,
            "cluster_CENTER_LAMBDA": center_lambda,
            "cluster_ISOLATION": isolation,
            "cluster_ENG_CALIB_TOT": calib_tot,
            "cluster_ENG_CALIB_OUT_T": _by_energy(OOC_FRACTION[kind], energy) * isolation * energy,
            "cluster_ENG_CALIB_DEAD_TOT": dead,
            # two clusters per event, to exercise the E_calib(cluster)/E_calib(event) weight
            "eventNumber": np.arange(n) // 2,
        }
    )
    return clusters, cells


@pytest.fixture(scope="module")
def training():
    return {"pi0": make_sample("pi0", 3000, seed=1), "pipm": make_sample("pipm", 3000, seed=2)}


@pytest.fixture(scope="module")
def testing():
    """Independent samples to apply the calibration to (docs/physics.md §5)."""
    return {"pi0": make_sample("pi0", 2000, seed=11), "pipm": make_sample("pipm", 2000, seed=12)}


@pytest.fixture(scope="module")
def lcw(training) -> LCWCalibration:
    return LCWCalibration.fit(pi0=training["pi0"], pipm=training["pipm"], config=TEST_CONFIG)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve, from the Mann–Whitney rank sum (ties count half)."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return (ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_hadronic_weights_recover_the_inverse_response_per_density_bin(lcw):
    density_edges = lcw.cell_edges[2]
    populated = lcw.had_entries > TEST_CONFIG.cell_entries_above
    low = density_edges[1:] <= np.log10(DENSITY_SPLIT) + 1e-9
    expected = np.where(low, LOW_DENSITY_WEIGHT, HIGH_DENSITY_WEIGHT)
    expected = np.broadcast_to(expected, lcw.had_weight.shape)
    # both responses are seen, in several layers
    assert populated[..., low].sum() > 20
    assert populated[..., ~low].sum() > 20
    np.testing.assert_allclose(lcw.had_weight[populated], expected[populated], rtol=1e-9)


def test_hadronic_weights_are_one_in_bins_with_ten_entries_or_fewer(lcw, training):
    thin = lcw.had_entries <= 10
    assert (lcw.had_weight[thin] == 1.0).all()
    strict = dataclasses.replace(TEST_CONFIG, cell_entries_above=10**9)
    unweighted = LCWCalibration.fit(pi0=training["pi0"], pipm=training["pipm"], config=strict)
    assert (unweighted.apply(*training["pipm"])["cluster_HAD_WEIGHT"] == 1.0).all()


def test_cells_below_two_sigma_keep_weight_one(lcw, testing):
    clusters, cells = testing["pipm"]
    assert (lcw.apply(clusters, cells)["cluster_HAD_WEIGHT"] > 1.05).mean() > 0.5
    quiet = cells.assign(noise_sigma=cells["energy"].abs() / 1.99 + 1e-9)
    assert (lcw.apply(clusters, quiet)["cluster_HAD_WEIGHT"] == 1.0).all()
    loud = cells.assign(noise_sigma=cells["energy"].abs() / 2.01 + 1e-12)
    assert (lcw.apply(clusters, loud)["cluster_HAD_WEIGHT"] > 1.05).mean() > 0.5


def test_em_probability_separates_pi0_from_charged_pions(lcw, testing):
    p_pi0 = lcw.apply(*testing["pi0"])["cluster_EM_PROBABILITY"].to_numpy()
    p_pipm = lcw.apply(*testing["pipm"])["cluster_EM_PROBABILITY"].to_numpy()
    assert ((p_pi0 >= 0) & (p_pi0 <= 1)).all()
    assert ((p_pipm >= 0) & (p_pipm <= 1)).all()
    assert np.median(p_pi0) > np.median(p_pipm)
    # the ATLAS convention: π± is the positive class, the score is 1 − EM_PROBABILITY
    assert auc(1 - p_pipm, 1 - p_pi0) > 0.85


def test_isospin_prior_divides_the_em_odds(lcw, training):
    """p_EM = w_π0 / (w_π0 + prior · w_π±): doubling the prior halves the odds p/(1 − p)."""
    even = LCWCalibration.fit(
        pi0=training["pi0"],
        pipm=training["pipm"],
        config=dataclasses.replace(TEST_CONFIG, isospin_prior=1.0),
    )
    p_two, p_one = lcw.em_probability, even.em_probability
    mixed = (p_one > 0) & (p_one < 1)
    assert mixed.sum() > 10
    odds_one = p_one[mixed] / (1 - p_one[mixed])
    odds_two = p_two[mixed] / (1 - p_two[mixed])
    np.testing.assert_allclose(odds_two, odds_one / 2, rtol=1e-9)


def test_calibration_brings_the_charged_pion_response_towards_one(lcw, testing):
    clusters, cells = testing["pipm"]
    result = lcw.apply(clusters, cells)
    calib_tot = clusters["cluster_ENG_CALIB_TOT"]
    em_scale = np.median(clusters["cluster_E"] / calib_tot)
    hadronic = np.median(clusters["cluster_E"] * result["cluster_HAD_WEIGHT"] / calib_tot)
    lcw_response = np.median(result["cluster_E_LCCalib"] / calib_tot)
    assert em_scale < 0.9  # the synthetic π± are under-measured at EM scale
    assert abs(hadronic - 1) < 0.05
    assert abs(lcw_response - 1) < abs(em_scale - 1)
    # with the out-of-cluster and dead-material truth, the full LCW energy closes
    truth = calib_tot + clusters["cluster_ENG_CALIB_OUT_T"] + clusters["cluster_ENG_CALIB_DEAD_TOT"]
    assert abs(np.median(result["cluster_E_LCCalib"] / truth) - 1) < 0.05


def test_pi0_clusters_stay_close_to_em_scale(lcw, testing):
    clusters, cells = testing["pi0"]
    result = lcw.apply(clusters, cells)
    assert abs(np.median(result["cluster_HAD_WEIGHT"]) - 1) < 0.05


def test_out_of_cluster_tables_recover_the_generated_fractions(lcw):
    # empty bins (below and above the training energies) take the nearest energy bin
    energy = 10 ** (0.5 * (lcw.ooc_edges[1][1:] + lcw.ooc_edges[1][:-1]))[None, :, None]
    for kind, table in (("pi0", lcw.ooc_pi0), ("pipm", lcw.ooc_pipm)):
        expected = np.broadcast_to(_by_energy(OOC_FRACTION[kind], energy), table.shape)
        np.testing.assert_allclose(table, expected, rtol=1e-9)


def test_dead_material_fit_recovers_the_generated_coefficients(lcw):
    energy = 10 ** (0.5 * (lcw.dm_edges[1:] + lcw.dm_edges[:-1]))
    for kind, fitted in (("pi0", lcw.dm_pi0), ("pipm", lcw.dm_pipm)):
        np.testing.assert_allclose(fitted[:, 0], _by_energy(DM_ALPHA[kind], energy), atol=1e-6)
        np.testing.assert_allclose(fitted[:, 1], DM_BETA[kind], atol=1e-6)


def test_output_is_aligned_with_the_clusters_table(lcw, testing):
    clusters, cells = testing["pipm"]
    shuffled_index = clusters.set_axis(np.arange(len(clusters))[::-1] + 1000)
    result = lcw.apply(shuffled_index, cells)
    assert list(result.columns) == list(OUTPUT_COLUMNS)
    assert result.index.equals(shuffled_index.index)
    product = (
        clusters["cluster_E"].to_numpy()
        * result["cluster_HAD_WEIGHT"]
        * result["cluster_OOC_WEIGHT"]
        * result["cluster_DM_WEIGHT"]
    )
    np.testing.assert_allclose(result["cluster_E_LCCalib"], product, rtol=1e-12)


def test_layer_energy_columns_match_those_computed_from_cells(lcw, testing):
    clusters, cells = testing["pipm"]
    e_w = cells["weight"] * cells["energy"]
    with_columns = clusters.copy()
    for name, column in LAYER_ENERGY_COLUMNS.items():
        in_layer = e_w.where(cells["sampling"] == geometry.layer(name).sampling, 0.0)
        with_columns[column] = (
            in_layer.groupby(cells["cluster"]).sum().reindex(range(len(clusters)), fill_value=0.0)
        )
    pd.testing.assert_frame_equal(lcw.apply(with_columns, cells), lcw.apply(clusters, cells))


def test_save_and_load_give_identical_results(lcw, testing, tmp_path):
    path = lcw.save(tmp_path / "lcw.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lcw.npz"]  # no temporary left
    loaded = LCWCalibration.load(path)
    assert loaded.config == lcw.config
    for kind in ("pi0", "pipm"):
        pd.testing.assert_frame_equal(loaded.apply(*testing[kind]), lcw.apply(*testing[kind]))


def test_loading_a_truncated_file_names_the_file(lcw, tmp_path):
    path = lcw.save(tmp_path / "lcw.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CalibrationFileError, match="lcw.npz"):
        LCWCalibration.load(path)


@pytest.mark.parametrize(
    "content", [b"", b"this is not a calibration", b"PK\x03\x04 broken zip"], ids=str
)
def test_loading_garbage_raises_a_clear_error(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(CalibrationFileError, match="garbage.npz"):
        LCWCalibration.load(path)


def test_loading_an_npz_that_is_not_a_calibration_raises(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3))
    with pytest.raises(CalibrationFileError, match=r"other\.npz.*metadata"):
        LCWCalibration.load(path)


def test_loading_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        LCWCalibration.load(tmp_path / "nowhere.npz")


def test_fit_on_an_empty_sample_raises(training):
    clusters, cells = training["pipm"]
    with pytest.raises(CalibrationInputError, match="π± .*no clusters"):
        LCWCalibration.fit(pi0=training["pi0"], pipm=(clusters.iloc[:0], cells.iloc[:0]))


def test_fit_without_truth_columns_names_the_missing_column(training):
    clusters, cells = training["pi0"]
    with pytest.raises(CalibrationInputError, match="cluster_ENG_CALIB_OUT_T"):
        LCWCalibration.fit(
            pi0=(clusters.drop(columns="cluster_ENG_CALIB_OUT_T"), cells), pipm=training["pipm"]
        )


def test_cells_pointing_outside_the_clusters_table_are_rejected(lcw, testing):
    clusters, cells = testing["pi0"]
    with pytest.raises(CalibrationInputError, match="row positions"):
        lcw.apply(clusters.iloc[:10], cells)


def test_interface_names_are_the_ntuple_branches():
    from calotools.ntuple import SCALAR_BRANCHES

    for name in (*CLUSTER_COLUMNS, *CLUSTER_TRUTH_COLUMNS, *OUTPUT_COLUMNS):
        assert name in SCALAR_BRANCHES
    assert set(CELL_COLUMNS) == {
        "cluster",
        "sampling",
        "energy",
        "weight",
        "volume_mm3",
        "noise_sigma",
    }
