"""Every plot draws on an Agg canvas, without warnings, and returns its axes."""

from __future__ import annotations

import subprocess
import sys

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib import colors
from matplotlib.collections import PolyCollection, QuadMesh

from calotools import geometry, metrics, plotting
from calotools.testing import random_clusters

pytestmark = pytest.mark.usefixtures("render_and_close_figures")


@pytest.fixture(scope="module")
def images():
    """Clusters with the six layer images (random pixels: only shapes matter here)."""
    return random_clusters(12, seed=3)


@pytest.fixture(scope="module")
def classified():
    """Labels and P(π±) of a decent and of a useless classifier."""
    rng = np.random.default_rng(9)
    y_true = rng.integers(0, 2, 2_000)
    good = np.clip(rng.normal(0.35 + 0.3 * y_true, 0.15), 0, 1)
    useless = rng.random(y_true.size)
    return y_true, good, useless


@pytest.fixture(scope="module")
def energies():
    rng = np.random.default_rng(10)
    e_true = 10 ** rng.uniform(-1, 3, 20_000)
    return e_true, e_true * np.exp(rng.normal(0.0, 0.2, e_true.size))


def _meshes(ax) -> list[QuadMesh]:
    return [c for c in ax.collections if isinstance(c, QuadMesh)]


def test_cluster_images_draws_each_layer_with_its_own_pixel_edges(images):
    """Six panels; EMB1 is a 128 × 4 mesh spanning the 0.4 × 0.39 window; log colours."""
    with plotting.style():
        grid = plotting.cluster_images(images, 2)
    assert grid.shape == (2, 3)
    for ax, lay in zip(grid.ravel(), geometry.IMAGE_LAYERS, strict=True):
        (mesh,) = _meshes(ax)
        n_eta, n_phi = lay.image_shape
        coordinates = mesh.get_coordinates()
        assert coordinates.shape == (n_phi + 1, n_eta + 1, 2)
        np.testing.assert_allclose(coordinates[0, :, 0], lay.eta_edges)
        np.testing.assert_allclose(coordinates[:, 0, 1], lay.phi_edges)
        assert isinstance(mesh.norm, colors.LogNorm)
        assert ax.get_title() == lay.name
    # One shared colour bar: a seventh axes, labelled.
    figure = grid[0, 0].figure
    assert len(figure.axes) == 7
    assert "energy" in figure.axes[-1].get_ylabel()
    assert grid[1, 0].get_ylabel() == plotting.DPHI_LABEL
    assert "[rad]" in plotting.DPHI_LABEL


def test_cluster_images_on_given_axes_with_a_linear_scale(images):
    _, axes = plt.subplots(1, 6)
    grid = plotting.cluster_images(images.images, -1, axes=axes, log=False)
    assert list(grid.ravel()) == list(axes)
    assert not isinstance(_meshes(axes[0])[0].norm, colors.LogNorm)
    with pytest.raises(IndexError, match="out of range for 12 clusters"):
        plotting.cluster_images(images, 12)
    with pytest.raises(ValueError, match="needs 6 axes"):
        plotting.cluster_images(images, 0, axes=axes[:3])


def test_cluster_images_names_missing_layers(images):
    partial = {name: images.images[name] for name in ("EMB1", "EMB2")}
    with pytest.raises(ValueError, match=r"lacks the layer\(s\) \['EMB3'"):
        plotting.cluster_images(partial, 0)


def test_mean_images_shows_each_class_and_a_difference_centred_on_zero(images):
    pipm = {name: image[::-1] * 0.5 for name, image in images.images.items()}
    grid = plotting.mean_images({"π0": images, "π±": pipm})
    assert grid.shape == (3, 6)
    class_norm = _meshes(grid[0, 1])[0].norm
    assert class_norm is _meshes(grid[1, 1])[0].norm  # one colour scale for both classes
    assert isinstance(class_norm, colors.LogNorm)
    difference = _meshes(grid[2, 1])[0]
    assert difference.norm.vmin == pytest.approx(-difference.norm.vmax)
    assert difference.cmap.name == "RdBu_r"
    assert "π0 − π±" in grid[2, 0].get_ylabel()
    # A single class: its mean only.
    assert plotting.mean_images({"π0": images}).shape == (1, 6)


def test_roc_draws_one_curve_per_method_and_the_diagonal(classified):
    y_true, good, useless = classified
    _, ax = plt.subplots()
    perfect = y_true.astype(float)
    returned = plotting.roc(
        {"DNN": (y_true, good), "Coin": (y_true, useless), "Truth": (y_true, perfect)}, ax=ax
    )
    assert returned is ax
    assert len(ax.lines) == 4
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[0] == f"DNN (AUC = {metrics.auc(y_true, good):.3f})"
    assert legend[2] == "Truth (AUC = 1.000)"
    assert "efficiency" in ax.get_ylabel()
    assert "false-positive rate" in ax.get_xlabel()


def test_rejection_is_on_a_log_scale(classified):
    y_true, good, useless = classified
    _, ax = plt.subplots()
    assert plotting.rejection({"DNN": (y_true, good), "Coin": (y_true, useless)}, ax=ax) is ax
    assert ax.get_yscale() == "log"
    assert len(ax.lines) == 2
    assert np.all(ax.lines[0].get_ydata() >= 1.0)
    assert "rejection" in ax.get_ylabel()


def test_cutoff_scan_plot_marks_the_chosen_cutoff(classified):
    y_true, good, _ = classified
    scan = metrics.cutoff_scan(y_true, 1 - good)
    _, ax = plt.subplots()
    assert plotting.cutoff_scan(scan, ax=ax) is ax
    assert len(ax.lines) == 3
    _, marked = plt.subplots()
    plotting.cutoff_scan(scan, ax=marked, mark=0.3)
    assert len(marked.lines) == 3 + 1 + 3  # curves, the vertical line, a dot on each curve
    assert marked.lines[3].get_xdata()[0] == pytest.approx(0.3)
    balanced = metrics.best_cutoff(scan, "balanced")
    _, best = plt.subplots()
    plotting.cutoff_scan(scan, ax=best, mark="balanced")
    assert f"{balanced:.2f}" in best.get_legend().get_texts()[3].get_text()
    assert "Cutoff $p$" in ax.get_xlabel()


def test_confusion_matrix_plot_writes_every_cell(classified):
    y_true, good, _ = classified
    table = metrics.confusion_matrix(y_true, 1 - good, cutoff=0.5)
    _, ax = plt.subplots()
    assert plotting.confusion_matrix(table, ax=ax) is ax
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(table.to_numpy().ravel())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["π0", "π±"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted class", "True class")
    _, normalised = plt.subplots()
    plotting.confusion_matrix(
        metrics.confusion_matrix(y_true, 1 - good, normalize="true"), ax=normalised
    )
    assert all("." in t.get_text() for t in normalised.texts)


def test_response_draws_medians_bands_and_sparse_bins(energies):
    e_true, e_pred = energies
    full = metrics.binned_response(e_true, e_pred)
    sparse = metrics.binned_response(e_true[:1_000], e_pred[:1_000] * 1.1)
    assert sparse["too_few"].any()
    _, ax = plt.subplots()
    assert plotting.response({"DNN": full, "LCW": sparse}, ax=ax) is ax
    assert ax.get_xscale() == "log"
    # DNN line, LCW line, LCW's open markers for sparse bins, the line at 1.
    assert len(ax.lines) == 4
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert "[GeV]" in ax.get_xlabel()
    assert "E^{\\mathrm{pred}}" in ax.get_ylabel()
    _, no_band = plt.subplots()
    plotting.response({"DNN": full}, ax=no_band, band=False)
    assert not no_band.collections


def test_response_rejects_tables_of_the_wrong_kind():
    with pytest.raises(ValueError, match="binned_response"):
        plotting.response({"x": pd.DataFrame({"median": [1.0]})})


def test_resolution_has_error_bars_on_a_log_axis(energies):
    e_true, e_pred = energies
    _, ax = plt.subplots()
    assert plotting.resolution({"DNN": metrics.binned_response(e_true, e_pred)}, ax=ax) is ax
    assert ax.get_xscale() == "log"
    assert len(ax.containers) == 1
    assert "[GeV]" in ax.get_xlabel()
    assert "Resolution" in ax.get_ylabel()


def test_response_2d_is_a_histogram_with_the_median_on_top(energies):
    e_true, e_pred = energies
    _, ax = plt.subplots()
    assert plotting.response_2d(e_true, e_pred, ax=ax) is ax
    (mesh,) = _meshes(ax)
    assert isinstance(mesh.norm, colors.LogNorm)
    assert mesh.get_array().sum() == pytest.approx(np.count_nonzero(e_pred / e_true < 2.5))
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 1  # the median
    assert "[GeV]" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("Response")
    assert len(ax.figure.axes) == 2  # and a colour bar


def test_history_has_a_panel_per_quantity_with_training_and_validation():
    keras_like = {
        "loss": [0.9, 0.5, 0.4],
        "val_loss": [1.0, 0.6, 0.5],
        "accuracy": [0.6, 0.8, 0.85],
        "val_accuracy": [0.55, 0.75, 0.8],
        "learning_rate": [1e-3, 1e-3, 5e-4],
    }
    grid = plotting.history(keras_like)
    assert len(grid) == 2
    assert [ax.get_ylabel() for ax in grid] == ["Loss", "Accuracy"]
    for ax in grid:
        assert len(ax.lines) == 2
        assert ax.get_xlabel() == "Epoch"
        assert ax.lines[0].get_xdata().tolist() == [1, 2, 3]
    frame = pd.DataFrame({"epoch": [0, 1], "mae": [2.0, 1.0], "loss": [4.0, 2.0]})
    _, axes = plt.subplots(1, 2)
    grid = plotting.history(frame, axes=axes)
    assert [ax.get_ylabel() for ax in grid] == ["Loss", "Mean absolute error"]
    assert len(grid[0].lines) == 1  # no validation


def test_style_is_scoped_and_the_label_says_atlas():
    before = mpl.rcParams["font.sans-serif"]
    with plotting.style():
        inside = mpl.rcParams["font.sans-serif"]
        _, ax = plt.subplots()
        assert plotting.atlas_label(ax, rlabel="single pions") is ax
    assert mpl.rcParams["font.sans-serif"] == before != inside
    texts = [t.get_text() for t in ax.texts]
    assert texts[:2] == ["ATLAS", "Simulation Internal"]
    assert "single pions" in texts
    ax.figure.canvas.draw()


def test_importing_plotting_changes_no_global_setting():
    code = (
        "import matplotlib as mpl; before = dict(mpl.rcParams); "
        "import calotools.plotting; print(dict(mpl.rcParams) == before)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_distributions_draws_one_histogram_per_sample(tmp_path):
    """One step line per sample, log x when asked, non-finite values counted in the legend."""
    rng = np.random.default_rng(2)
    values = {"π0": rng.lognormal(1, 1, 500), "π±": np.r_[rng.lognormal(2, 1, 500), np.nan]}
    ax = plotting.distributions(values, log_x=True, xlabel="Cluster energy [GeV]")
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Cluster energy [GeV]"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["π0", "π± (1 not shown)"]
    path = plotting.save(ax.figure, "distributions", tmp_path)
    assert path.stat().st_size > 1000


def test_response_histograms_label_each_method_with_its_median(render_and_close_figures):
    ax = plotting.response_histograms(
        {"LCW": [0.9, 1.0, 1.3], "none": []}, bins=np.linspace(0, 2, 21)
    )
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["LCW (median 1.000)", "none (median –)"]
    assert ax.get_xlim() == (0.0, 2.0)


def test_one_layer_image_is_drawn_on_its_own_cell_edges(render_and_close_figures):
    image = np.zeros((16, 16))
    image[8, 8] = 0.7
    ax = plotting.layer_image(image, "EMB2")
    mesh = ax.collections[0]
    assert mesh.get_array().max() == pytest.approx(0.7)
    assert ax.get_xlim() == pytest.approx((-0.2, 0.2))
    with pytest.raises(ValueError, match=r"a EMB1 image is shaped \(128, 4\)"):
        plotting.layer_image(image, "EMB1")
