"""The notebook explorers, driven headlessly by setting their controls' values."""

from __future__ import annotations

import matplotlib as mpl

mpl.use("Agg")

import ipywidgets
import numpy as np
import pandas as pd
import pytest
from matplotlib import colors
from matplotlib.collections import QuadMesh
from network_factory import image_model, limit_threads, model_inputs

from calotools import geometry, interpret, metrics, widgets
from calotools.testing import random_clusters

PNG_MAGIC = b"\x89PNG"


def _meshes(figure) -> list[QuadMesh]:
    """The image meshes of the titled panels (colour bars, untitled, are meshes too)."""
    return [
        c for ax in figure.axes if ax.get_title() for c in ax.collections if isinstance(c, QuadMesh)
    ]


def _is_png(image: ipywidgets.Image) -> bool:
    return bytes(image.value[:4]) == PNG_MAGIC


@pytest.fixture(scope="module")
def samples():
    return {"π0": random_clusters(30, seed=1), "π±": random_clusters(12, seed=2)}


@pytest.fixture(scope="module")
def classified():
    rng = np.random.default_rng(8)
    y_true = rng.integers(0, 2, 1_000)
    p_pi0 = np.clip(rng.normal(0.65 - 0.3 * y_true, 0.2), 0.0, 1.0)
    return y_true, p_pi0


@pytest.fixture(scope="module")
def energies():
    rng = np.random.default_rng(9)
    e_true = 10 ** rng.uniform(-1, 3, 4_000)
    table = pd.DataFrame(
        {
            "cluster_ENG_CALIB_TOT": e_true,
            "LCW": e_true * rng.normal(0.8, 0.1, e_true.size),
            "DNN": e_true * rng.normal(1.0, 0.05, e_true.size),
        }
    )
    return {"π±": table, "π0": table.iloc[::2]}


# ---------------------------------------------------------------------------- pure helpers


def test_cutoff_summary_is_the_scan_row_and_the_confusion_matrix(classified):
    y_true, p_pi0 = classified
    summary = widgets.cutoff_summary(y_true, p_pi0, 0.3, normalize="true")
    row = metrics.cutoff_scan(y_true, p_pi0, cutoffs=[0.3]).iloc[0]
    for column in ("accuracy", "pi0_efficiency", "pipm_efficiency", "pi0_purity", "pipm_purity"):
        assert summary[column] == row[column]
    matrix = summary["confusion_matrix"]
    assert matrix.loc["π0", "π0"] == pytest.approx(summary["pi0_efficiency"])
    assert matrix.loc["π±", "π±"] == pytest.approx(summary["pipm_efficiency"])


def test_response_in_bin_holds_the_clusters_that_binned_response_summarises(energies):
    table = energies["π±"]
    e_true, e_pred = table["cluster_ENG_CALIB_TOT"], table["LCW"]
    binned = metrics.binned_response(e_true, e_pred)
    for index in (0, 17, 39):
        response = widgets.response_in_bin(e_true, e_pred, metrics.DEFAULT_RESPONSE_EDGES, index)
        assert len(response) == binned["count"][index]
        assert np.median(response) == pytest.approx(binned["median"][index])
    with pytest.raises(IndexError, match="bin index 40 is out of range for 40 bins"):
        widgets.response_in_bin(e_true, e_pred, metrics.DEFAULT_RESPONSE_EDGES, 40)


# ---------------------------------------------------------------------------- explorers


def test_cluster_browser_follows_sample_index_layer_and_scale(samples):
    browser = widgets.ClusterBrowser(samples)
    assert isinstance(browser.widget, ipywidgets.Box)
    assert set(browser.controls) == {"sample", "index", "layer", "scale"}
    # A slider that redraws on release (tests/test_browser.py moves it in a real browser).
    assert isinstance(browser.controls["index"], ipywidgets.IntSlider)
    assert not browser.controls["index"].continuous_update
    assert list(browser.result) == list(geometry.IMAGE_LAYER_NAMES)
    assert _is_png(browser.image)

    browser.controls["index"].value = 17
    np.testing.assert_array_equal(browser.result["EMB2"], samples["π0"].images["EMB2"][17])
    assert "cluster_E = " in browser.text.value

    browser.controls["layer"].value = "EMB1"
    assert list(browser.result) == ["EMB1"]
    (mesh,) = _meshes(browser.figure)
    assert mesh.get_coordinates().shape == (4 + 1, 128 + 1, 2)
    assert isinstance(mesh.norm, colors.LogNorm)

    browser.controls["scale"].value = "linear"
    (mesh,) = _meshes(browser.figure)
    assert not isinstance(mesh.norm, colors.LogNorm)

    # The π± sample has 12 clusters: the index range follows, and the index with it.
    browser.controls["sample"].value = "π±"
    assert browser.controls["index"].max == 11
    np.testing.assert_array_equal(browser.result["EMB1"], samples["π±"].images["EMB1"][11])


def test_cutoff_explorer_moves_the_efficiencies_matrix_and_marker(classified):
    y_true, p_pi0 = classified
    explorer = widgets.CutoffExplorer(y_true, p_pi0)
    at_half = explorer.result
    assert at_half["cutoff"] == 0.5

    explorer.controls["cutoff"].value = 0.3
    summary = explorer.result
    assert summary["pi0_efficiency"] > at_half["pi0_efficiency"]
    assert summary["pipm_efficiency"] < at_half["pipm_efficiency"]
    expected = metrics.cutoff_scan(y_true, p_pi0, cutoffs=[0.3]).iloc[0]
    assert summary["accuracy"] == expected["accuracy"]
    pd.testing.assert_frame_equal(
        summary["confusion_matrix"], metrics.confusion_matrix(y_true, p_pi0, 0.3)
    )
    scan_ax = explorer.figure.axes[0]
    marker_x = {line.get_xdata()[0] for line in scan_ax.lines if line.get_marker() == "o"}
    assert marker_x == {0.3}
    assert f"accuracy {summary['accuracy']:.3f}" in explorer.text.value

    explorer.controls["normalize"].value = "true"
    assert explorer.result["confusion_matrix"].sum(axis=1).to_numpy() == pytest.approx(1.0)


def test_response_explorer_shows_the_chosen_bin_methods_and_sample(energies):
    explorer = widgets.ResponseExplorer(energies, ["LCW", "DNN"])
    edges = metrics.DEFAULT_RESPONSE_EDGES
    table = energies["π±"]
    assert set(explorer.result) == {"LCW", "DNN"}

    explorer.controls["bin"].value = 5
    assert explorer.controls["bin"].label == "0.316–0.398 GeV"
    expected = widgets.response_in_bin(table["cluster_ENG_CALIB_TOT"], table["DNN"], edges, 5)
    np.testing.assert_array_equal(explorer.result["DNN"], expected)
    assert np.median(explorer.result["LCW"]) == pytest.approx(0.8, abs=0.05)

    explorer.controls["methods"].value = ("DNN",)
    assert list(explorer.result) == ["DNN"]
    explorer.controls["sample"].value = "π0"
    assert len(explorer.result["DNN"]) == explorer.binned("π0", "DNN")["count"][5]


def test_response_explorer_names_a_missing_column(energies):
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['GNN'\]"):
        widgets.ResponseExplorer(energies, ["GNN"])


def test_activation_explorer_follows_layer_and_node():
    import keras

    limit_threads()
    keras.utils.set_random_seed(2)
    clusters = random_clusters(120, seed=5)
    model = image_model(n_filters=3, n_hidden=6)
    inputs = model_inputs(clusters.images)
    explorer = widgets.ActivationExplorer(model, inputs, clusters, top_n=20)
    assert explorer.controls["layer"].options == ("conv", "hidden")
    assert explorer.controls["node"].max == 2

    explorer.controls["layer"].value = "hidden"
    assert explorer.controls["node"].max == 5
    explorer.controls["node"].value = 4
    expected = interpret.activation_maps(model, inputs, clusters, "hidden", top_n=20)
    for name in geometry.IMAGE_LAYER_NAMES:
        np.testing.assert_allclose(explorer.result[name], expected[name][4])
    assert len(_meshes(explorer.figure)) == 6
    assert _is_png(explorer.image)
