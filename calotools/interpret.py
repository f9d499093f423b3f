"""What a trained network has learned: activation maps, pixel correlations, filter responses.

The three views of "Understanding what the network is learning" in the ATLAS
machine-learning overview [THAIS2017], applied to calorimeter images:

- `activation_maps`: for every node of a hidden layer, the mean of the
  ``top_n`` cluster images (500 in the talk) that activate it most;
- `correlation_maps`: the Pearson correlation of every pixel with the
  network output, over a sample of clusters;
- `filter_differences`: each filter of a convolutional layer applied to the
  mean π± image minus the mean π0 image, which shows where a filter responds
  differently to the two classes.

The models are Keras 3 functional models whose inputs are a dict of named
arrays, e.g. ``{"EMB2": (N, 16, 16, 1), "EMB1": (N, 128, 4, 1), "scalars":
(N, k)}``; the images averaged are the per-layer ones of
`calotools.ntuple.Clusters` (layer → (N, n_η, n_φ)). Keras is imported inside
the functions that need it, so importing this module is cheap. The figures of
these maps are `calotools.plotting.activation_maps`, `correlation_maps` and
`filter_differences`.

Examples
--------
>>> from calotools import interpret, plotting
>>> maps = interpret.correlation_maps(clusters.images, model.predict(inputs))  # doctest: +SKIP
>>> plotting.correlation_maps(maps)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from calotools import _deprecated, backend
from calotools.errors import InvalidValueError

__all__ = [
    "activation_maps",
    "correlation_maps",
    "filter_differences",
    "hidden_layer_names",
    "layer_activations",
    "top_activation_means",
]

LayerImages = Mapping[str, np.ndarray]

#: Batch size of the forward passes: large enough that Keras' per-batch
#: overhead does not dominate, small enough that a conv layer's output fits.
DEFAULT_BATCH_SIZE = 1024

# Float64 elements per block when images are processed in row blocks: 2 MB,
# so that a block stays in cache through the several passes made over it
# (measured ~5× faster than 64 MB blocks), and no float64 copy of all the
# images is ever made.
_BLOCK_ELEMENTS = 1 << 18

# Colour-bar labels, short enough for one row of panels.


# ---------------------------------------------------------------------------- validation


def _layer_images(images: LayerImages | Any, n: int | None = None) -> dict[str, np.ndarray]:
    """Layer name → (N, n_η, n_φ) arrays, from a mapping or a `Clusters`.

    A trailing channel axis of size 1 (the model-input form) is dropped.
    """
    layer_images = getattr(images, "images", images)
    if not isinstance(layer_images, Mapping) or not layer_images:
        msg = "images must be a non-empty mapping layer name → (N, n_η, n_φ) array, or Clusters"
        raise InvalidValueError(msg)
    checked = {}
    for name, image in layer_images.items():
        array = np.asarray(image)
        if array.ndim == 4 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 3:
            msg = f"images[{name!r}] must be shaped (clusters, n_η, n_φ), got {array.shape}"
            raise InvalidValueError(msg)
        if n is not None and len(array) != n:
            msg = f"images[{name!r}] has {len(array)} clusters but the network saw {n}"
            raise InvalidValueError(msg)
        n = len(array)
        checked[name] = array
    return checked


def _get_layer(model: Any, layer_name: str) -> Any:
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        msg = f"the model has no layer {layer_name!r}; its layers are: {names}"
        raise InvalidValueError(msg)
    return model.get_layer(layer_name)


# ---------------------------------------------------------------------------- activation maps


def hidden_layer_names(model: Any) -> list[str]:
    """Names of the layers with nodes worth mapping: Dense and convolutional ones, not the output.

    These are the layers that hold a ``kernel``; the layers that produce a
    model output are left out (their one node is the score itself, better
    seen with `correlation_maps`).
    """
    outputs = {id(tensor) for tensor in model.outputs}

    def makes_output(layer: Any) -> bool:
        try:
            return id(layer.output) in outputs
        except (AttributeError, ValueError):  # a layer called more than once has no one output
            return False

    return [
        layer.name for layer in model.layers if hasattr(layer, "kernel") and not makes_output(layer)
    ]


def layer_activations(
    model: Any,
    inputs: Any,
    layer_name: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Activation of every node of ``layer_name`` for every cluster: (N, n_nodes).

    One forward pass through a sub-model that ends at the layer. The last
    axis counts the nodes (the filters of a ``channels_last`` conv layer);
    any axes in between (a conv layer's positions) are averaged inside the
    sub-model, so a conv layer's full output is never held in memory.

    Parameters
    ----------
    model
        A Keras 3 functional model.
    inputs
        What ``model.predict`` takes, e.g. a dict input name → array.
    layer_name
        A layer of ``model`` (see `hidden_layer_names`).
    """
    keras = backend.keras()

    layer = _get_layer(model, layer_name)
    output = layer.output
    if not hasattr(output, "shape") or len(output.shape) < 2:
        msg = f"layer {layer_name!r} must have one output shaped (batch, …, nodes)"
        raise InvalidValueError(msg)
    if len(output.shape) > 2:
        output = keras.ops.mean(output, axis=tuple(range(1, len(output.shape) - 1)))
    # model.input keeps the structure the model was built with (a dict of
    # named inputs), so the sub-model takes the same `inputs` as the model.
    sub_model = keras.Model(model.input, output)
    return np.asarray(backend.predict(sub_model, inputs, batch_size=batch_size))


def top_activation_means(
    activations: np.ndarray, images: LayerImages | Any, *, top_n: int = 500
) -> dict[str, np.ndarray]:
    """Per node, the mean of the ``top_n`` images with the largest activation.

    Parameters
    ----------
    activations
        (N, n_nodes), e.g. from `layer_activations`.
    images
        Layer name → (N, n_η, n_φ), or a `Clusters`, in the same cluster order.
    top_n
        Images averaged per node; all N when there are fewer. Ties at the
        threshold (e.g. the many zeros of a ReLU node that rarely fires) are
        broken arbitrarily.

    Returns
    -------
    dict
        Layer name → (n_nodes, n_η, n_φ) float64 mean images.

    Examples
    --------
    >>> activations = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0]])
    >>> images = {"EMB2": np.arange(3.0).reshape(3, 1, 1)}
    >>> top_activation_means(activations, images, top_n=2)["EMB2"].ravel().tolist()
    [1.5, 0.5]
    """
    activations = np.asarray(activations)
    if activations.ndim != 2:
        msg = f"activations must be shaped (clusters, nodes), got {activations.shape}"
        raise InvalidValueError(msg)
    n_clusters, n_nodes = activations.shape
    if top_n < 1:
        msg = f"top_n must be at least 1, got {top_n}"
        raise InvalidValueError(msg)
    if n_clusters == 0:
        msg = "there are no clusters to average"
        raise InvalidValueError(msg)
    layer_images = _layer_images(images, n_clusters)
    top = min(top_n, n_clusters)
    # A partial sort per node, on contiguous rows (nodes × clusters): the
    # last `top` indices of each row are its largest activations.
    by_node = np.ascontiguousarray(activations.T)
    top_rows = np.argpartition(by_node, n_clusters - top, axis=1)[:, n_clusters - top :]
    means = {}
    for name, image in layer_images.items():
        flat = image.reshape(n_clusters, -1)
        n_pixels = flat.shape[1]
        mean = np.empty((n_nodes, n_pixels))
        # Gather (nodes, top, pixels) in node blocks to bound the memory.
        step = max(1, _BLOCK_ELEMENTS // (top * n_pixels))
        for start in range(0, n_nodes, step):
            block = top_rows[start : start + step]
            mean[start : start + step] = flat[block].mean(axis=1, dtype=np.float64)
        means[name] = mean.reshape(n_nodes, *image.shape[1:])
    return means


def activation_maps(
    model: Any,
    inputs: Any,
    images: LayerImages | Any,
    layer_name: str,
    *,
    top_n: int = 500,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Mean of the ``top_n`` most activating images of every node of a hidden layer.

    For a Dense layer a node is a unit; for a convolutional layer a node is a
    filter, whose activation is averaged over positions. The talk's choice is
    ``top_n = 500``.

    Parameters
    ----------
    model, inputs, layer_name
        As in `layer_activations`.
    images
        Layer name → (N, n_η, n_φ), or a `Clusters`: the images to average,
        cluster by cluster the ones behind ``inputs``.

    Returns
    -------
    dict
        Layer name → (n_nodes, n_η, n_φ) mean images.
    """
    activations = layer_activations(model, inputs, layer_name, batch_size=batch_size)
    return top_activation_means(activations, images, top_n=top_n)


# ---------------------------------------------------------------------------- correlations


def correlation_maps(images: LayerImages | Any, output: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson correlation of every pixel with the network output, per layer.

    Pixels that never vary (typically always empty) get 0, not NaN.

    Parameters
    ----------
    images
        Layer name → (N, n_η, n_φ), or a `Clusters`.
    output
        The network output, (N,) or (N, 1), e.g. P(π±).

    Returns
    -------
    dict
        Layer name → (n_η, n_φ) correlations in [−1, 1].

    Examples
    --------
    >>> images = {"TileBar2": np.array([[[1.0, 0.0]], [[2.0, 0.0]], [[4.0, 0.0]]])}
    >>> correlation_maps(images, [1.0, 2.0, 4.0])["TileBar2"].round(6).tolist()
    [[1.0, 0.0]]
    """
    score = np.asarray(output, dtype=np.float64)
    if score.ndim == 2 and score.shape[1] == 1:
        score = score[:, 0]
    if score.ndim != 1:
        msg = (
            f"output must hold one value per cluster, shaped (N,) or (N, 1); got {score.shape}: "
            "pick one output column"
        )
        raise InvalidValueError(msg)
    if not np.isfinite(score).all():
        msg = "output has NaN or infinite values"
        raise InvalidValueError(msg)
    n_clusters = len(score)
    layer_images = _layer_images(images, n_clusters)
    score_deviation = score - score.mean()
    score_norm = math.sqrt(score_deviation @ score_deviation)
    if score_norm == 0.0:
        msg = "output is the same for every cluster: its correlation with the pixels is undefined"
        raise InvalidValueError(msg)

    maps = {}
    for name, image in layer_images.items():
        flat = image.reshape(n_clusters, -1)
        n_pixels = flat.shape[1]
        # One pass over the pixels, shifted by the first cluster's values (the
        # "shifted data" variance algorithm): a pixel that never varies then
        # has deviations of exactly 0, so it cannot pose as a (fully
        # correlated) signal through rounding, and there is no separate pass
        # for the mean.
        shift = flat[0].astype(np.float64)
        sums = np.zeros(n_pixels)
        sum_squares = np.zeros(n_pixels)
        covariance = np.zeros(n_pixels)
        step = max(1, _BLOCK_ELEMENTS // n_pixels)
        for start in range(0, n_clusters, step):
            deviation = flat[start : start + step].astype(np.float64)
            deviation -= shift
            sums += deviation.sum(axis=0)
            sum_squares += np.einsum("ij,ij->j", deviation, deviation)
            # Σ (x − s)(y − ȳ) = Σ (x − x̄)(y − ȳ), as Σ (y − ȳ) = 0.
            covariance += score_deviation[start : start + step] @ deviation
        variance = sum_squares - sums * sums / n_clusters  # times n_clusters
        correlation = np.zeros(n_pixels)
        varies = (sum_squares > 0.0) & (variance > 0.0)
        np.divide(
            covariance,
            np.sqrt(variance, where=varies, out=np.ones(n_pixels)) * score_norm,
            out=correlation,
            where=varies,
        )
        maps[name] = np.clip(correlation, -1.0, 1.0).reshape(image.shape[1:])
    return maps


# ---------------------------------------------------------------------------- filters


def _conv_layer(model: Any, layer_name: str | None) -> Any:
    keras = backend.keras()

    if layer_name is not None:
        layer = _get_layer(model, layer_name)
        if not isinstance(layer, keras.layers.Conv2D):
            msg = f"layer {layer_name!r} is a {type(layer).__name__}, not a Conv2D layer"
            raise InvalidValueError(msg)
        return layer
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    names = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers]
    msg = f"the model has no Conv2D layer; its layers are: {names}"
    raise InvalidValueError(msg)


def _correlate_same(
    image: np.ndarray, kernel: np.ndarray, dilation: tuple[int, int] = (1, 1)
) -> np.ndarray:
    """Keras' Conv2D without bias, stride 1, 'same' padding: (n_η, n_φ, c) → (filters, n_η, n_φ).

    Keras (like TensorFlow) cross-correlates, and pads ``k − 1`` zeros in
    total with the smaller half before: for even kernels this differs from
    ``scipy.signal.correlate(mode="same")``, which puts the larger half first.
    """
    if dilation != (1, 1):
        # A dilated kernel is the kernel with zeros between its taps.
        height, width = kernel.shape[:2]
        dilated = np.zeros(
            ((height - 1) * dilation[0] + 1, (width - 1) * dilation[1] + 1, *kernel.shape[2:])
        )
        dilated[:: dilation[0], :: dilation[1]] = kernel
        kernel = dilated
    height, width = kernel.shape[:2]
    pad_eta, pad_phi = height - 1, width - 1
    padded = np.pad(
        image,
        ((pad_eta // 2, pad_eta - pad_eta // 2), (pad_phi // 2, pad_phi - pad_phi // 2), (0, 0)),
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(0, 1))
    # windows: (n_η, n_φ, channels, height, width); kernel: (height, width, channels, filters).
    return np.einsum("ijcab,abcf->fij", windows, kernel)


def filter_differences(
    model: Any,
    mean_pipm_image: np.ndarray,
    mean_pi0_image: np.ndarray,
    layer_name: str | None = None,
) -> np.ndarray:
    """Each filter of a Conv2D layer applied to the mean π± image minus the mean π0 image.

    The convolution is linear, so this is also the difference of the filter's
    responses to the two mean images, the bias cancelling; the activation
    function is not applied. It is computed as Keras computes the layer
    (cross-correlation, 'same' padding, the layer's dilation) at every pixel
    (stride 1), so each map has the image's shape.

    Parameters
    ----------
    model
        A Keras 3 model.
    mean_pipm_image, mean_pi0_image
        Mean images of the input the layer sees, (n_η, n_φ) or
        (n_η, n_φ, channels), e.g. from ``images["EMB2"].mean(axis=0)``.
    layer_name
        The Conv2D layer; default the first one of the model (name it when
        several inputs have their own convolutions).

    Returns
    -------
    numpy.ndarray
        (n_filters, n_η, n_φ) float64.
    """
    layer = _conv_layer(model, layer_name)
    pipm = np.asarray(mean_pipm_image, dtype=np.float64)
    pi0 = np.asarray(mean_pi0_image, dtype=np.float64)
    if pipm.shape != pi0.shape:
        msg = f"the mean images differ in shape: π± {pipm.shape}, π0 {pi0.shape}"
        raise InvalidValueError(msg)
    difference = pipm - pi0
    if difference.ndim == 2:
        difference = difference[..., None]
    if difference.ndim != 3:
        msg = f"mean images must be shaped (n_η, n_φ) or (n_η, n_φ, channels), got {pipm.shape}"
        raise InvalidValueError(msg)
    if getattr(layer, "groups", 1) != 1:
        msg = f"layer {layer.name!r} is a grouped convolution, which is not supported"
        raise InvalidValueError(msg)
    kernel = np.asarray(layer.get_weights()[0], dtype=np.float64)
    if kernel.shape[2] != difference.shape[2]:
        msg = (
            f"layer {layer.name!r} takes {kernel.shape[2]} channel(s) but the mean images "
            f"have {difference.shape[2]}"
        )
        raise InvalidValueError(msg)
    dilation = tuple(int(d) for d in layer.dilation_rate)
    return _correlate_same(difference, kernel, dilation)  # type: ignore[arg-type]


# calotools 0.1 drew the maps here; the figures are in calotools.plotting now.
__getattr__ = _deprecated.forward(
    __name__,
    {
        "plot_activation_maps": "calotools.plotting:activation_maps",
        "plot_correlation_maps": "calotools.plotting:correlation_maps",
        "plot_filter_differences": "calotools.plotting:filter_differences",
    },
)
