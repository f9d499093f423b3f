"""Preprocessing: layouts, scales, standardisation and targets, saved as JSON."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calotools import geometry
from calotools.preprocessing import (
    DENSENET_GROUPS,
    Preprocessing,
    PreprocessingError,
    upsample,
)
from calotools.testing import random_clusters


@pytest.fixture(scope="module")
def train():
    return random_clusters(400, seed=3)


@pytest.fixture(scope="module")
def other():
    return random_clusters(300, seed=4)


def test_densenet_layout_has_the_three_llnl_inputs_with_geometry_shapes(train):
    """EMB1 1×(128×4), EMB2+EMB3 2×(16×16), TileBar0–2 3×(4×4), from calotools.geometry."""
    prep = Preprocessing(layout="densenet", scalars=())
    inputs = prep.transform(train)
    assert list(inputs) == ["EMB1", "EMB23", "Tile"]
    for name, group in DENSENET_GROUPS.items():
        expected = (*geometry.layer(group[0]).image_shape, len(group))
        assert inputs[name].shape == (len(train), *expected)
        assert prep.input_shapes[name] == expected
        assert inputs[name].dtype == np.float32
        assert inputs[name].flags["C_CONTIGUOUS"]
    # Channels that need no upsampling are the stored images.
    np.testing.assert_array_equal(inputs["EMB23"][..., 0], train.images["EMB2"])
    np.testing.assert_array_equal(inputs["Tile"][..., 1], train.images["TileBar1"])


def test_upsampling_splits_each_coarse_pixel_evenly_and_conserves_energy(train):
    """An EMB3 pixel (Δη 0.05) becomes two EMB2 pixels (Δη 0.025) of half its value."""
    emb3 = train.images["EMB3"]
    fine = upsample(emb3, "EMB3", "EMB2")
    assert fine.shape[1:] == geometry.layer("EMB2").image_shape
    np.testing.assert_allclose(fine[:, 0::2], emb3 / 2, rtol=1e-6)
    np.testing.assert_allclose(fine[:, 1::2], emb3 / 2, rtol=1e-6)
    np.testing.assert_allclose(fine.sum(axis=(1, 2)), emb3.sum(axis=(1, 2)), rtol=1e-5)
    tile2 = upsample(train.images["TileBar2"], "TileBar2", "TileBar0")
    assert tile2.shape[1:] == geometry.layer("TileBar0").image_shape
    np.testing.assert_allclose(
        tile2.sum(axis=(1, 2)), train.images["TileBar2"].sum(axis=(1, 2)), rtol=1e-5
    )


def test_upsampling_refuses_grids_that_do_not_tile():
    """EMB2 pixels do not tile EMB1 pixels in φ: an error, not a silent resize."""
    with pytest.raises(PreprocessingError, match="do not tile"):
        upsample(np.zeros((1, 16, 16), np.float32), "EMB2", "EMB1")


def test_layers_layout_gives_one_named_input_per_layer(train):
    prep = Preprocessing(layers=("EMB2", "TileBar0"), scalars=())
    inputs = prep.transform(train)
    assert list(inputs) == ["EMB2", "TileBar0"]
    assert inputs["EMB2"].shape == (len(train), 16, 16, 1)
    np.testing.assert_array_equal(inputs["TileBar0"][..., 0], train.images["TileBar0"])


def test_flat_layout_concatenates_the_chosen_layers_in_order(train):
    prep = Preprocessing(layout="flat", layers=("EMB3", "TileBar2"), scalars=())
    flat = prep.transform(train)["flat"]
    n_emb3 = math.prod(geometry.layer("EMB3").image_shape)
    assert flat.shape == (len(train), prep.input_shapes["flat"][0])
    np.testing.assert_array_equal(flat[:, :n_emb3], train.images["EMB3"].reshape(len(train), -1))
    np.testing.assert_array_equal(
        flat[:, n_emb3:], train.images["TileBar2"].reshape(len(train), -1)
    )


def test_unit_sum_scale_makes_every_cluster_sum_to_one(train):
    """Over all the layers used; an empty cluster stays empty instead of NaN."""
    clusters = train[:50]
    for image in clusters.images.values():
        image[0] = 0.0
    prep = Preprocessing(layout="densenet", scale="unit_sum", scalars=())
    inputs = prep.transform(clusters)
    totals = sum(values.reshape(len(clusters), -1).sum(axis=1) for values in inputs.values())
    np.testing.assert_allclose(totals[1:], 1.0, rtol=1e-5)
    assert totals[0] == 0.0


def test_log_scale_keeps_zero_and_order(train):
    prep = Preprocessing(layers=("EMB2",), scale="log", scalars=(), log_floor=1e-3)
    stored = train.images["EMB2"]
    scaled = prep.transform(train)["EMB2"][..., 0]
    assert np.all(scaled[stored == 0] == 0)
    np.testing.assert_allclose(scaled, np.log10(1 + stored / 1e-3), rtol=1e-5)


def test_scalars_are_standardised_with_the_training_statistics_only(train, other):
    """fit(train) sets mean/std; transform(other) uses them, it does not refit."""
    prep = Preprocessing(scalars=("log10(cluster_E)", "abs(cluster_Eta)", "cluster_LATERAL"))
    scaled = prep.fit(train).transform(train)["scalars"]
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-4)
    raw = np.log10(other.scalars["cluster_E"].to_numpy(np.float64))
    expected = (raw - prep.scalar_mean[0]) / prep.scalar_std[0]
    np.testing.assert_allclose(prep.transform(other)["scalars"][:, 0], expected, rtol=1e-5)


def test_fit_on_chunks_gives_the_statistics_of_the_whole(train):
    whole = Preprocessing(target="log_energy").fit(train)
    chunked = Preprocessing(target="log_energy").fit(train[i : i + 64] for i in range(0, 400, 64))
    np.testing.assert_allclose(chunked.scalar_mean, whole.scalar_mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.scalar_std, whole.scalar_std, rtol=1e-12)
    assert chunked.target_mean == pytest.approx(whole.target_mean, rel=1e-12)
    assert chunked.target_std == pytest.approx(whole.target_std, rel=1e-12)


def test_log_energy_target_is_standardised_and_inverts_exactly(train, other):
    prep = Preprocessing(target="log_energy").fit(train)
    targets = prep.targets(train)
    assert targets.dtype == np.float32
    assert abs(targets.mean()) < 1e-5
    assert targets.std() == pytest.approx(1.0, rel=1e-4)
    truth = other.scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    np.testing.assert_allclose(prep.inverse_target(prep.targets(other)), truth, rtol=1e-6)


def test_log_ratio_target_is_the_correction_to_the_em_scale(train, other):
    """ln(ENG_CALIB_TOT / cluster_E), unstandardised and needing no fit: 0 is the EM scale."""
    prep = Preprocessing(target="log_ratio", scalars=())
    assert prep.is_fitted
    truth = other.scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    cluster_e = other.scalars["cluster_E"].to_numpy()
    targets = prep.targets(other)
    np.testing.assert_allclose(targets, np.log(truth / cluster_e), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prep.inverse_target(targets, other), truth, rtol=1e-6)
    np.testing.assert_allclose(prep.inverse_target(np.zeros(len(other)), other), cluster_e)
    with pytest.raises(PreprocessingError, match="needs cluster_E"):
        prep.inverse_target(targets)


def test_energy_ratio_target_inverts_with_cluster_energy(other):
    prep = Preprocessing(target="energy_ratio", scalars=())
    ratio = prep.targets(other)
    truth = other.scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    np.testing.assert_allclose(ratio, truth / other.scalars["cluster_E"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(prep.inverse_target(ratio, other), truth, rtol=1e-6)
    np.testing.assert_allclose(
        prep.inverse_target(ratio[:, None], other.scalars["cluster_E"].to_numpy()),
        truth,
        rtol=1e-6,
    )
    with pytest.raises(PreprocessingError, match="needs cluster_E"):
        prep.inverse_target(ratio)


def test_label_target_comes_from_the_labels(other):
    prep = Preprocessing(scalars=())
    labels = np.arange(len(other)) % 2
    np.testing.assert_array_equal(prep.targets(other, labels), labels.astype(np.float32))
    with pytest.raises(PreprocessingError, match="needs the labels"):
        prep.targets(other)


def test_json_round_trip_keeps_recipe_and_statistics(train, other, tmp_path):
    prep = Preprocessing(
        layout="densenet", scale="log", scalars=("log10(cluster_E)",), target="log_energy"
    ).fit(train)
    back = Preprocessing.from_json(prep.to_json())
    assert back == prep
    loaded = Preprocessing.load(prep.save(tmp_path / "preprocessing.json"))
    assert loaded == prep
    for name, values in prep.transform(other).items():
        np.testing.assert_array_equal(loaded.transform(other)[name], values)
    np.testing.assert_array_equal(loaded.targets(other), prep.targets(other))


def test_json_with_unknown_fields_is_refused():
    text = Preprocessing().to_json().replace('"layout"', '"layuot"')
    with pytest.raises(PreprocessingError, match="layuot"):
        Preprocessing.from_json(text)


def test_transform_before_fit_says_to_fit_on_the_training_split(train):
    with pytest.raises(PreprocessingError, match=r"call fit\(train_clusters\) first"):
        Preprocessing().transform(train)


def test_bad_recipes_are_refused_with_the_choices():
    with pytest.raises(PreprocessingError, match="EMB2"):
        Preprocessing(layers=("EMB4",))
    with pytest.raises(PreprocessingError, match="'layers', 'densenet', 'flat'"):
        Preprocessing(layout="images")
    with pytest.raises(PreprocessingError, match="log10"):
        Preprocessing(scalars=("cluster_E ** 2",))


def test_nan_in_an_image_names_the_branch_the_count_and_the_entries(train):
    clusters = train[:20]
    clusters.images["EMB3"][[3, 7], 2, 5] = np.nan
    prep = Preprocessing(layout="densenet", scalars=())
    with pytest.raises(PreprocessingError) as error:
        prep.transform(clusters, where="pi0.root entries 100–119", entries=np.arange(100, 120))
    message = str(error.value)
    assert "pi0.root entries 100–119" in message
    assert "'EMB3'" in message
    assert "2 non-finite" in message
    assert "entries 103, 107" in message


def test_infinite_log_target_is_an_error_not_a_silent_inf(train):
    clusters = train[:10]
    clusters.scalars.loc[4, "cluster_ENG_CALIB_TOT"] = 0.0
    prep = Preprocessing(target="log_energy", scalars=()).fit(train[10:])
    with pytest.raises(PreprocessingError, match="log_energy target has 1 non-finite"):
        prep.targets(clusters)


def test_missing_branch_is_named(train):
    clusters = train[:5]
    del clusters.images["TileBar2"]
    with pytest.raises(PreprocessingError, match="'TileBar2'"):
        Preprocessing(layout="densenet", scalars=()).transform(clusters)
