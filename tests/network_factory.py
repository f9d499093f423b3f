"""Tiny real Keras models and images for the interpretation and widget tests.

The models take a dict of named inputs like calotools' networks: EMB2 through
a small convolution, EMB1 flattened, and a few scalars. Not physics.
"""

from __future__ import annotations

import numpy as np

from calotools import geometry
from calotools.testing import random_clusters

#: The one EMB2 pixel (η index, φ index) that decides the label in `one_pixel_sample`.
DECISIVE_PIXEL = (5, 9)
N_SCALARS = 2


def limit_threads() -> None:
    """One TensorFlow thread per pool: the test machines have two cores.

    Only possible before TensorFlow runs its first operation; later (another
    test module got there first) the pools are already as they will stay.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def image_model(*, n_filters: int = 4, n_hidden: int = 8):
    """Conv2D("conv") on EMB2 + flattened EMB1 + scalars → Dense("hidden", ReLU) → sigmoid "score"."""
    import keras

    emb2_shape = geometry.layer("EMB2").image_shape
    emb1_shape = geometry.layer("EMB1").image_shape
    emb2 = keras.Input((*emb2_shape, 1), name="EMB2")
    emb1 = keras.Input((*emb1_shape, 1), name="EMB1")
    scalars = keras.Input((N_SCALARS,), name="scalars")
    conv = keras.layers.Conv2D(n_filters, 3, padding="same", activation="relu", name="conv")(emb2)
    joined = keras.layers.Concatenate()(
        [keras.layers.Flatten()(conv), keras.layers.Flatten()(emb1), scalars]
    )
    hidden = keras.layers.Dense(n_hidden, activation="relu", name="hidden")(joined)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    return keras.Model({"EMB2": emb2, "EMB1": emb1, "scalars": scalars}, score)


def model_inputs(images: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """The model's inputs for these layer images (channel axis added; random scalars)."""
    rng = np.random.default_rng(seed)
    n = len(images["EMB2"])
    return {
        "EMB2": images["EMB2"][..., None],
        "EMB1": images["EMB1"][..., None],
        "scalars": rng.normal(size=(n, N_SCALARS)).astype(np.float32),
    }


def one_pixel_sample(n: int, *, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sparse noise images where the label is decided by `DECISIVE_PIXEL` of EMB2 alone.

    Label 1: that pixel is bright (0.6–1); label 0: it is empty. Every other
    pixel is noise below 0.3, the same for both labels.
    """
    rng = np.random.default_rng(seed)
    images = {
        name: 0.3 * image
        for name, image in random_clusters(n, seed=seed, occupancy=0.1).images.items()
    }
    labels = rng.integers(0, 2, n)
    images["EMB2"][(slice(None), *DECISIVE_PIXEL)] = labels * rng.uniform(0.6, 1.0, n)
    return images, labels


def trained_one_pixel_model(n: int = 400, *, epochs: int = 8, seed: int = 0):
    """`image_model` trained on `one_pixel_sample`: (model, images, inputs, labels)."""
    import keras

    limit_threads()
    keras.utils.set_random_seed(seed)
    images, labels = one_pixel_sample(n, seed=seed)
    inputs = model_inputs(images, seed=seed)
    model = image_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(inputs, labels.astype(np.float32), epochs=epochs, batch_size=32, verbose=0)
    return model, images, inputs, labels
