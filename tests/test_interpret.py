"""What the network learns: activation maps, pixel correlations and filter responses.

The central model is a tiny real Keras network trained on images where one
EMB2 pixel alone decides the label; the interpretation must point at it.
"""

from __future__ import annotations

import subprocess
import sys

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from network_factory import DECISIVE_PIXEL, limit_threads, trained_one_pixel_model

from calotools import geometry, interpret, plotting

pytestmark = pytest.mark.usefixtures("render_and_close_figures")


@pytest.fixture(scope="module")
def one_pixel():
    """(model, images, inputs, labels): a network trained where EMB2 pixel (5, 9) decides."""
    return trained_one_pixel_model()


@pytest.fixture(scope="module")
def keras():
    limit_threads()
    import keras

    return keras


def _conv_model(keras, input_shape, kernel, bias, *, dilation=1):
    """One Conv2D layer ("conv") with the given weights, 'same' padding."""
    inputs = keras.Input(input_shape, name="EMB2")
    conv = keras.layers.Conv2D(
        kernel.shape[-1], kernel.shape[:2], padding="same", dilation_rate=dilation, name="conv"
    )
    model = keras.Model({"EMB2": inputs}, conv(inputs))
    conv.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


# ---------------------------------------------------------------------------- correlations


def test_the_deciding_pixel_has_the_highest_correlation(one_pixel):
    """Of all 936 pixels of the six layers, the one that decides the label correlates most."""
    model, images, inputs, _ = one_pixel
    maps = interpret.correlation_maps(images, model.predict(inputs, verbose=0))
    assert {name: m.shape for name, m in maps.items()} == {
        lay.name: lay.image_shape for lay in geometry.IMAGE_LAYERS
    }
    strongest = max(maps, key=lambda name: np.abs(maps[name]).max())
    assert strongest == "EMB2"
    assert np.unravel_index(np.abs(maps["EMB2"]).argmax(), (16, 16)) == DECISIVE_PIXEL
    assert maps["EMB2"][DECISIVE_PIXEL] > 0.8
    others = [np.abs(m).max() for name, m in maps.items() if name != "EMB2"]
    assert max(others) < 0.3


def test_correlation_maps_agree_with_np_corrcoef_pixel_by_pixel():
    rng = np.random.default_rng(4)
    images = {
        "EMB3": rng.random((60, 8, 16)).astype(np.float32),
        "TileBar2": rng.random((60, 2, 4)).astype(np.float32),
    }
    images["EMB3"][:, 0, 0] = 0.0  # never hit: zero variance
    images["TileBar2"][:, 1, 3] = 0.37  # constant but not zero
    output = images["EMB3"][:, 3, 5] + rng.normal(0.0, 0.2, 60)
    maps = interpret.correlation_maps(images, output[:, None])
    for name, image in images.items():
        for eta, phi in np.ndindex(image.shape[1:]):
            pixel = image[:, eta, phi]
            expected = np.corrcoef(pixel, output)[0, 1] if np.ptp(pixel) > 0 else 0.0
            assert maps[name][eta, phi] == pytest.approx(expected, abs=1e-12)
    assert maps["EMB3"][0, 0] == 0.0
    assert maps["TileBar2"][1, 3] == 0.0


def test_correlation_maps_say_what_is_wrong_with_the_inputs():
    images = {"EMB2": np.random.default_rng(1).random((5, 16, 16))}
    with pytest.raises(ValueError, match="same for every cluster"):
        interpret.correlation_maps(images, np.ones(5))
    with pytest.raises(ValueError, match="has 5 clusters but the network saw 4"):
        interpret.correlation_maps(images, np.arange(4.0))
    with pytest.raises(ValueError, match="pick one output column"):
        interpret.correlation_maps(images, np.ones((5, 2)))


# ---------------------------------------------------------------------------- activation maps


def test_activation_maps_hold_one_mean_image_per_node_and_layer(one_pixel):
    """Dense layer: one map per unit; conv layer: one per filter (positions averaged)."""
    model, images, inputs, _ = one_pixel
    assert interpret.hidden_layer_names(model) == ["conv", "hidden"]
    for layer_name, n_nodes in (("hidden", 8), ("conv", 4)):
        maps = interpret.activation_maps(model, inputs, images, layer_name, top_n=50)
        assert list(maps) == list(images)
        for lay in geometry.IMAGE_LAYERS:
            assert maps[lay.name].shape == (n_nodes, *lay.image_shape)
    conv_activations = interpret.layer_activations(model, inputs, "conv")
    assert conv_activations.shape == (len(images["EMB2"]), 4)


def test_the_node_most_tied_to_the_deciding_pixel_sees_it_bright(one_pixel):
    model, images, inputs, _ = one_pixel
    activations = interpret.layer_activations(model, inputs, "hidden")
    pixel = images["EMB2"][(slice(None), *DECISIVE_PIXEL)]
    ties = [
        np.corrcoef(a, pixel)[0, 1] if np.ptp(a) > 0 else 0.0 for a in activations.T
    ]  # dead ReLU nodes have no correlation
    node = int(np.argmax(ties))
    assert ties[node] > 0.8
    maps = interpret.top_activation_means(activations, images, top_n=50)
    mean_image = maps["EMB2"][node]
    assert np.unravel_index(mean_image.argmax(), mean_image.shape) == DECISIVE_PIXEL
    # The 50 most activating clusters are (nearly) all bright there: 0.6–1.
    assert mean_image[DECISIVE_PIXEL] > 0.6
    assert mean_image[DECISIVE_PIXEL] > 2 * pixel.mean()


def test_top_activation_means_by_hand():
    activations = np.array([[5.0, 0.0], [1.0, 2.0], [3.0, 9.0], [4.0, 1.0]])
    images = {"TileBar2": np.arange(4.0 * 8).reshape(4, 2, 4)}
    maps = interpret.top_activation_means(activations, images, top_n=2)
    # Node 0: clusters 0 and 3; node 1: clusters 2 and 1.
    np.testing.assert_array_equal(maps["TileBar2"][0], (images["TileBar2"][[0, 3]]).mean(axis=0))
    np.testing.assert_array_equal(maps["TileBar2"][1], (images["TileBar2"][[1, 2]]).mean(axis=0))
    everything = interpret.top_activation_means(activations, images, top_n=100)
    np.testing.assert_array_equal(everything["TileBar2"][1], images["TileBar2"].mean(axis=0))
    with pytest.raises(ValueError, match="has 4 clusters but the network saw 3"):
        interpret.top_activation_means(activations[:3], images)


def test_an_unknown_layer_is_named_with_the_layers_there_are(one_pixel):
    model, images, inputs, _ = one_pixel
    with pytest.raises(ValueError, match=r"no layer 'dense'.*'hidden'"):
        interpret.activation_maps(model, inputs, images, "dense")


# ---------------------------------------------------------------------------- filters


def test_filter_differences_by_hand_on_a_3x3_image(keras):
    """One 3 × 3 filter on a 3 × 3 difference image; zero padding; the bias cancels."""
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    model = _conv_model(keras, (3, 3, 1), kernel[:, :, None, None], np.array([5.0]))
    pipm = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    pi0 = np.full((3, 3), 0.5)
    difference = pipm - pi0
    expected = np.zeros((3, 3))
    padded = np.pad(difference, 1)
    for i, j in np.ndindex(3, 3):
        expected[i, j] = (padded[i : i + 3, j : j + 3] * kernel).sum()
    # Spelled out for the centre and a corner: Keras cross-correlates.
    assert expected[1, 1] == pytest.approx(
        1 * 0.5 - 1 * 2.5 + 2 * 3.5 - 2 * 5.5 + 1 * 6.5 - 1 * 8.5
    )
    assert expected[0, 0] == pytest.approx(-2 * 1.5 - 1 * 4.5)
    result = interpret.filter_differences(model, pipm, pi0)
    assert result.shape == (1, 3, 3)
    np.testing.assert_allclose(result[0], expected)


@pytest.mark.parametrize(
    ("kernel_size", "dilation"), [((3, 3), 1), ((2, 3), 1), ((2, 2), 1), ((3, 3), 2)]
)
def test_filter_differences_compute_what_the_keras_layer_computes(keras, kernel_size, dilation):
    """Multi-channel images, several filters, even kernels, dilation: the layer minus its bias."""
    rng = np.random.default_rng(3)
    n_eta, n_phi = geometry.layer("EMB3").image_shape
    kernel = rng.normal(size=(*kernel_size, 2, 3))
    bias = rng.normal(size=3)
    model = _conv_model(keras, (n_eta, n_phi, 2), kernel, bias, dilation=dilation)
    pipm, pi0 = rng.random((n_eta, n_phi, 2)), rng.random((n_eta, n_phi, 2))
    result = interpret.filter_differences(model, pipm, pi0, layer_name="conv")
    assert result.shape == (3, n_eta, n_phi)
    layer_output = keras.ops.convert_to_numpy(
        model.get_layer("conv")((pipm - pi0)[None].astype(np.float32))
    )[0]
    np.testing.assert_allclose(result, np.moveaxis(layer_output - bias, -1, 0), atol=1e-5)


def test_filter_differences_say_what_is_wrong(keras, one_pixel):
    model = one_pixel[0]
    with pytest.raises(ValueError, match="is a Dense, not a Conv2D"):
        interpret.filter_differences(model, np.zeros((16, 16)), np.zeros((16, 16)), "hidden")
    with pytest.raises(ValueError, match="takes 1 channel"):
        interpret.filter_differences(model, np.zeros((16, 16, 2)), np.zeros((16, 16, 2)))
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    with pytest.raises(ValueError, match="no Conv2D layer"):
        interpret.filter_differences(dense_only, np.zeros((4, 4)), np.zeros((4, 4)))


# ---------------------------------------------------------------------------- plots


def _mesh(ax) -> QuadMesh:
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return mesh


def test_correlation_plot_is_diverging_centred_on_zero_in_true_eta_phi():
    rng = np.random.default_rng(5)
    maps = {lay.name: rng.uniform(-0.3, 0.6, lay.image_shape) for lay in geometry.IMAGE_LAYERS}
    grid = plotting.correlation_maps(maps)
    assert grid.shape == (1, 6)
    for ax, lay in zip(grid[0], geometry.IMAGE_LAYERS, strict=True):
        mesh = _mesh(ax)
        assert mesh.norm.vmin == -mesh.norm.vmax == pytest.approx(-0.6, abs=0.01)
        assert mesh.get_cmap().name == "RdBu_r"
        coordinates = mesh.get_coordinates()
        np.testing.assert_allclose(coordinates[0, :, 0], lay.eta_edges)
        np.testing.assert_allclose(coordinates[:, 0, 1], lay.phi_edges)
        assert ax.get_title() == lay.name
    assert grid[0, 0].figure.axes[-1].get_ylabel() == plotting.CORRELATION_LABEL


def test_activation_plot_draws_chosen_nodes_on_given_axes():
    rng = np.random.default_rng(6)
    maps = {"EMB1": rng.random((5, 128, 4)), "EMB2": rng.random((5, 16, 16))}
    _, axes = plt.subplots(2, 2)
    grid = plotting.activation_maps(maps, nodes=[4, 1], axes=axes, log=True)
    assert grid.shape == (2, 2)
    np.testing.assert_allclose(_mesh(grid[1, 1]).get_array().reshape(16, 16), maps["EMB2"][1].T)
    assert "Node 4" in grid[0, 0].get_ylabel()
    with pytest.raises(IndexError, match="node 5 is out of range"):
        plotting.activation_maps(maps, nodes=[5])


def test_filter_difference_plot_has_one_symmetric_panel_per_filter():
    differences = np.random.default_rng(7).normal(size=(6, 16, 16))
    grid = plotting.filter_differences(differences, "EMB2")
    assert grid.shape == (2, 4)
    drawn = [ax for ax in grid.ravel() if ax.axison]
    assert len(drawn) == 6
    norm = _mesh(drawn[0]).norm
    assert norm.vmin == -norm.vmax == pytest.approx(-np.abs(differences).max())
    with pytest.raises(ValueError, match="for EMB3"):
        plotting.filter_differences(differences, "EMB3")


def test_importing_interpret_and_widgets_does_not_import_tensorflow():
    """Keras loads only when a function needs a model."""
    code = (
        "import calotools.interpret, calotools.widgets, sys; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
