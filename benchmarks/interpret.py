"""Benchmark: pixel-correlation maps and activation maps of a network on many clusters.

Times `calotools.interpret.correlation_maps` (all 1,088 pixels of the six
layers) and `calotools.interpret.activation_maps` (forward pass + top-N means)
for a small untrained Keras model on EMB2 (convolution) and the other layers
(flattened), and compares them with naive loops in the same run: np.corrcoef
pixel by pixel, and a full sort plus mean per node. The naive loops run on a
subset of pixels / nodes and are extrapolated linearly to all of them (the
output says so). Images are random (`calotools.testing.random_clusters`):
only sizes matter here.

    python benchmarks/interpret.py [--n 100000] [--top-n 500] [--naive-pixels 128]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from calotools import geometry, interpret
from calotools.testing import random_clusters

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed(function, *args, repeat: int = 1, **kwargs) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def small_model(n_filters: int = 8, n_hidden: int = 32):
    """Conv2D on EMB2, the other layers flattened, Dense("hidden") → sigmoid: untrained."""
    import keras

    inputs, features = {}, []
    for lay in geometry.IMAGE_LAYERS:
        inputs[lay.name] = keras.Input((*lay.image_shape, 1), name=lay.name)
        x = inputs[lay.name]
        if lay.name == "EMB2":
            x = keras.layers.Conv2D(n_filters, 3, padding="same", activation="relu", name="conv")(x)
        features.append(keras.layers.Flatten()(x))
    hidden = keras.layers.Dense(n_hidden, activation="relu", name="hidden")(
        keras.layers.Concatenate()(features)
    )
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    return keras.Model(inputs, score)


def naive_correlations(
    images: dict[str, np.ndarray], output: np.ndarray, pixels: list[tuple[str, int]]
) -> np.ndarray:
    """np.corrcoef, one pixel at a time."""
    values = np.empty(len(pixels))
    for i, (name, flat_index) in enumerate(pixels):
        column = images[name].reshape(len(output), -1)[:, flat_index]
        values[i] = np.corrcoef(column, output)[0, 1]
    return values


def naive_top_means(
    activations: np.ndarray, images: dict[str, np.ndarray], nodes: range, top_n: int
) -> dict[str, list[np.ndarray]]:
    """A full sort per node, then the mean of its top-N images in each layer."""
    means: dict[str, list[np.ndarray]] = {name: [] for name in images}
    for node in nodes:
        top = np.argsort(activations[:, node])[-top_n:]
        for name, image in images.items():
            means[name].append(image[top].mean(axis=0, dtype=np.float64))
    return means


def largest_difference(
    activations: np.ndarray,
    means: dict[str, np.ndarray],
    naive_means: dict[str, list[np.ndarray]],
    nodes: range,
    top_n: int,
) -> float:
    """Largest |fast − naive| over the nodes whose top-N set is unambiguous.

    Where the N-th and (N+1)-th largest activations tie (e.g. ReLU zeros), the
    two methods may pick different, equally valid, images.
    """
    differences = [0.0]
    for i, node in enumerate(nodes):
        ranked = np.sort(activations[:, node])[::-1]
        if len(ranked) > top_n and ranked[top_n - 1] == ranked[top_n]:
            continue
        differences += [
            float(np.abs(means[name][node] - naive_means[name][i]).max()) for name in means
        ]
    return max(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="clusters")
    parser.add_argument("--top-n", type=int, default=500, help="images averaged per node")
    parser.add_argument("--naive-pixels", type=int, default=128, help="pixels of the naive loop")
    parser.add_argument("--naive-nodes", type=int, default=8, help="nodes of the naive loop")
    parser.add_argument("--batch-size", type=int, default=interpret.DEFAULT_BATCH_SIZE)
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(0)
    clusters = random_clusters(args.n, seed=1)
    images = clusters.images
    inputs = {name: image[..., None] for name, image in images.items()}
    model = small_model()
    model.predict({k: v[:8] for k, v in inputs.items()}, verbose=0)  # build, warm up

    t_predict, output = timed(model.predict, inputs, batch_size=args.batch_size, verbose=0)
    output = output[:, 0]
    t_corr, maps = timed(interpret.correlation_maps, images, output, repeat=3)

    all_pixels = [(name, i) for name, image in images.items() for i in range(image[0].size)]
    rng = np.random.default_rng(2)
    subset = [all_pixels[i] for i in rng.choice(len(all_pixels), args.naive_pixels, replace=False)]
    t_naive_subset, naive = timed(naive_correlations, images, output, subset)
    t_naive = t_naive_subset * len(all_pixels) / len(subset)
    fast = np.array([maps[name].ravel()[i] for name, i in subset])
    corr_agreement = float(np.abs(fast - naive).max())

    print(f"interpretation maps, {args.n} clusters, six layers ({len(all_pixels)} pixels)")
    print(f"  model forward pass (predict)        {t_predict:8.2f} s")
    print(f"  correlation_maps                    {t_corr:8.3f} s per call")
    print(
        f"  naive np.corrcoef per pixel         {t_naive:8.3f} s "
        f"(run on {len(subset)} random pixels, extrapolated to {len(all_pixels)})"
    )
    print(f"  ratio naive / correlation_maps      {t_naive / t_corr:8.1f}")
    print(f"  largest |difference|                {corr_agreement:8.1e}")

    for layer_name in ("conv", "hidden"):
        t_forward, activations = timed(
            interpret.layer_activations, model, inputs, layer_name, batch_size=args.batch_size
        )
        t_means, means = timed(
            interpret.top_activation_means, activations, images, top_n=args.top_n, repeat=3
        )
        n_nodes = activations.shape[1]
        nodes = range(min(args.naive_nodes, n_nodes))
        t_naive_subset, naive_means = timed(
            naive_top_means, activations, images, nodes, min(args.top_n, args.n)
        )
        t_naive = t_naive_subset * n_nodes / len(nodes)
        agreement = largest_difference(activations, means, naive_means, nodes, args.top_n)
        print(f"activation maps of {layer_name!r}: {n_nodes} nodes, top {args.top_n}")
        print(f"  forward pass to the layer           {t_forward:8.2f} s")
        print(f"  top_activation_means                {t_means:8.3f} s per call")
        scope = (
            f"all {n_nodes} nodes"
            if len(nodes) == n_nodes
            else f"run on {len(nodes)} nodes, extrapolated to {n_nodes}"
        )
        print(f"  naive full sort + mean per node     {t_naive:8.3f} s ({scope})")
        print(f"  ratio naive / top_activation_means  {t_naive / t_means:8.1f}")
        print(f"  activation_maps, whole call         {t_forward + t_means:8.2f} s")
        print(f"  largest |difference|                {agreement:8.1e}")


if __name__ == "__main__":
    main()
