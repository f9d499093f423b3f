"""calotools' fused batch normalisation does what Keras' own does, and saves and loads safely."""

from __future__ import annotations

import os

import numpy as np
import pytest

from calotools import layers, models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def tf(keras):
    return pytest.importorskip("tensorflow")


@pytest.fixture
def pair(keras):
    """Keras' and calotools' batch normalisation, with the same random scale and shift."""
    rng = np.random.default_rng(4)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.normal(0, 1, 3)
    mine = layers.fused_batch_normalization(momentum=0.9)
    theirs = keras.layers.BatchNormalization(momentum=0.9)
    images = rng.normal(2.0, 3.0, (5, 6, 4, 3)).astype("float32")
    for layer in (mine, theirs):
        layer.build(images.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return mine, theirs, images


def test_training_normalises_and_moves_the_averages_as_keras_does(pair, tf):
    mine, theirs, images = pair
    x = tf.constant(images)
    outputs = {}
    grads = {}
    weights = tf.constant(np.random.default_rng(5).normal(size=images.shape).astype("float32"))
    for layer in (mine, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        outputs[layer] = y.numpy()
        grads[layer] = [g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])]
    np.testing.assert_allclose(outputs[mine], outputs[theirs], rtol=1e-4, atol=1e-5)
    # Normalised per channel: mean beta, spread gamma.
    np.testing.assert_allclose(outputs[mine].mean(axis=(0, 1, 2)), mine.beta.numpy(), atol=1e-4)
    for g_mine, g_theirs in zip(grads[mine], grads[theirs], strict=True):
        np.testing.assert_allclose(g_mine, g_theirs, rtol=1e-3, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            getattr(mine, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5
        )
    # One step of momentum 0.9 from (0, 1) towards the batch statistics.
    batch_variance = images.reshape(-1, 3).var(axis=0)
    np.testing.assert_allclose(mine.moving_variance.numpy(), 0.9 + 0.1 * batch_variance, rtol=1e-5)


def test_inference_uses_the_averages(pair):
    mine, theirs, images = pair
    for layer in (mine, theirs):
        layer.moving_mean.assign([1.0, -1.0, 0.5])
        layer.moving_variance.assign([4.0, 0.25, 1.0])
    np.testing.assert_allclose(
        np.asarray(mine(images, training=False)),
        np.asarray(theirs(images, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    expected = (images[..., 0] - 1.0) / np.sqrt(4.0 + 1e-3) * mine.gamma.numpy()[0]
    np.testing.assert_allclose(
        np.asarray(mine(images))[..., 0], expected + mine.beta.numpy()[0], rtol=1e-5
    )


def test_a_network_with_it_saves_and_loads_in_safe_mode(keras, tmp_path):
    network = models.build("densenet", "classify", growth_rate=2, layers_per_block=1, units=(4,))
    images = {
        tensor.name: np.random.default_rng(6).random((4, *tensor.shape[1:])).astype("float32")
        for tensor in network.inputs
    }
    path = models.save_network(network, tmp_path / "net.keras")
    restored = models.load_network(path, compile=False)
    kinds = {type(layer).__name__ for layer in restored.layers}
    assert "FusedBatchNormalization" in kinds
    assert "BatchNormalization" not in kinds
    np.testing.assert_allclose(
        restored.predict(images, verbose=0), network.predict(images, verbose=0)
    )


def test_it_refuses_what_is_not_an_image(keras):
    layer = layers.fused_batch_normalization(name="bn_of_a_vector")
    with pytest.raises(ValueError, match="bn_of_a_vector.*images.*\\(2, 3\\)"):
        layer(np.zeros((2, 3), "float32"))


def test_the_densenet_folds_the_strips_and_keeps_the_original_as_an_option(keras):
    fast = models.build("densenet", "classify")
    original = models.build("densenet", "classify", strip_stride=1, fused_batch_norm=False)
    # EMB1 (128 × 4) enters the first dense block as 32 × 4; the other branches as they were.
    assert tuple(fast.get_layer("EMB1_stem").output.shape[1:3]) == (32, 4)
    assert tuple(original.get_layer("EMB1_stem").output.shape[1:3]) == (128, 4)
    for branch in ("EMB23", "Tile"):
        assert fast.get_layer(f"{branch}_stem").output.shape == (
            original.get_layer(f"{branch}_stem").output.shape
        )
    assert original.count_params() == 48482  # the DenseNet before the fast options
    assert {type(layer).__name__ for layer in original.layers} >= {"BatchNormalization"}
    # The 4 × 3 stem sees 12 cells and makes 16 maps: room for all of them.
    assert fast.get_layer("EMB1_stem").kernel.shape == (4, 3, 1, 16)
