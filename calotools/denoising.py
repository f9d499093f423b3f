"""PAED: a pile-up auto-encoder that denoises the EM-layer images of a cluster before a classifier.

The "Pile-up Auto-Encoder Denoising" idea of the LAPP talk [LAPP2021]
(``docs/references.md``): pile-up is noise on the calorimeter images, so an
auto-encoder trained on pairs (the same hard-scatter event simulated with and
without pile-up) maps the images of a cluster with pile-up to those of the same
cluster without it, one auto-encoder per EM layer or one for all of them.
Chained before any calotools classifier, ``classifier.predict(paed.denoise(clusters))``,
it takes the pile-up dependence out of the classification; its latent vector
(`Paed.latent`) is there for other uses (isolation, energy).

- Pixels (`to_pixels`): the cell energy in GeV (image × ``cluster_E``, as the
  ntuples store fractions of it), compressed as t = ln(1 + E / `PIXEL_SCALE_GEV`).
- Architecture (`build_paed`): per layer a convolutional encoder, a dense
  latent vector (one per layer, or one joint vector of all layers), a dense
  layer and a convolutional decoder. The decoder predicts what to *subtract*:
  output = max(t_noisy − softplus(d), 0). In-time pile-up (as
  `calotools.sim.pileup` models it) only adds energy to a cell, so the network
  only ever removes some; softplus keeps the subtraction non-negative and the
  final bias of −4 makes it 0.018 in t at the start (``softplus(−4)``), so that
  an untrained PAED is within 2 % of the identity and training starts from
  "leave the image alone", not from a random image. What a subtraction cannot
  undo: with pile-up the topo-clustering cuts on a larger noise σ and shares
  cells with pile-up clusters, so a cluster's image can also lose cells (at
  ⟨μ⟩ = 80, π0: about 45 % of the identity's pixel error is in pixels with
  less energy than without pile-up).
- Loss: the mean squared error of the pixels t, summed over the layers, every
  layer weighted equally (not every pixel: EMB1 has four times the pixels of
  EMB3). On ln-compressed pixels a 5 MeV cell and a 50 GeV one both count, as
  the relative error of the large ones and the absolute error of the small
  ones. `pixel_error` is the same figure averaged over the layers, the figure
  of merit: compare ``pixel_error(paed.denoise(noisy), clean)`` with the
  identity's ``pixel_error(noisy, clean)``.

Examples
--------
>>> from calotools.testing import random_clusters
>>> clusters = random_clusters(4, seed=1)
>>> pixels = to_pixels(clusters, ["EMB2"])
>>> energy = from_pixels(pixels)["EMB2"]  # GeV
>>> stored = clusters.images["EMB2"] * clusters.scalars["cluster_E"].to_numpy()[:, None, None]
>>> bool(np.allclose(energy, stored, rtol=1e-5))
True
>>> PaedConfig().latent_size, PaedConfig(joint=True).latent_size
(96, 32)
>>> PaedConfig(latent=0)
Traceback (most recent call last):
...
calotools.errors.InvalidValueError: PaedConfig.latent must be an integer of at least 1, got 0
>>> paed = train_paed(noisy, clean, PaedConfig(epochs=10))  # doctest: +SKIP
>>> p_pipm = classifier.predict(paed.denoise(clusters))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calotools import artifacts, atomic, backend, models
from calotools.errors import (
    ArtifactError,
    DataError,
    InvalidValueError,
    OutputPathError,
    PreprocessingError,
)
from calotools.models import EM_LAYERS
from calotools.ntuple import IMAGE_BRANCHES, Clusters

if TYPE_CHECKING:
    import keras

__all__ = [
    "EM_LAYERS",
    "KIND",
    "PIXEL_SCALE_GEV",
    "SUBTRACTION_BIAS",
    "SUBTRACTION_KERNEL_STDDEV",
    "Paed",
    "PaedConfig",
    "build_paed",
    "from_pixels",
    "pixel_error",
    "to_pixels",
    "train_paed",
]

#: E0 of the pixels t = ln(1 + E / E0), in GeV (5 MeV). The logarithm
#: compresses the cell energies, 5 MeV to 1 TeV (over five decades), into t ≈ 0.7–12, and
#: E0 is MLTree's image threshold (`calotools.sim.images.MIN_CELL_ENERGY`): the
#: smallest cell an image holds gets t = ln 2, so small cells, where pile-up
#: shows, stay visible next to the core of a shower instead of vanishing under it.
PIXEL_SCALE_GEV = 0.005
#: Initial bias of the decoder's last layer: it subtracts softplus(−4) ≈ 0.018
#: in t at the start (≈ 2 % of a cell's energy), close to the identity.
SUBTRACTION_BIAS = -4.0
#: Spread of the initial weights of the decoder's last layer. Zero weights would
#: give exactly the identity less softplus(−4), but no gradient to the rest of
#: the decoder at the first step, and brief trainings stalled on a plateau
#: (320 π0 pairs, 6 epochs: held-out pixel error 0.018 with zero weights, 0.009
#: with 0.01, the identity's 0.020). With 0.01 an untrained PAED stays within
#: 0.001 in t of that shifted identity.
SUBTRACTION_KERNEL_STDDEV = 0.01
#: Kind of model in the manifest of a PAED folder (`calotools.artifacts`).
KIND = "paed"

_NETWORK_FILE = "network.keras"
_CONFIG_FILE = "config.json"
_HISTORY_FILE = "history.csv"
_KERNEL = 3


# ---------------------------------------------------------------------------- pixels


def _layer_list(layers: Sequence[str] | str) -> list[str]:
    return [layers] if isinstance(layers, str) else list(layers)


def _cluster_energy(clusters: Clusters, what: str) -> np.ndarray:
    if "cluster_E" not in clusters.scalars.columns:
        msg = (
            f"{what} have no branch 'cluster_E', which turns their images (fractions of it) "
            "into GeV; read it with the images"
        )
        raise PreprocessingError(msg)
    return clusters.scalars["cluster_E"].to_numpy(dtype=np.float64)


def _check_layers(clusters: Clusters, layers: Sequence[str], what: str) -> None:
    missing = [layer for layer in layers if layer not in clusters.images]
    if missing:
        have = ", ".join(clusters.images) or "no images"
        msg = f"{what} have no image branch {', '.join(map(repr, missing))}; they have: {have}"
        raise PreprocessingError(msg)


def _energies(
    clusters: Clusters, layers: Sequence[str], what: str = "the clusters"
) -> dict[str, np.ndarray]:
    """Cell energies in GeV (float64), negative ones at 0, per layer."""
    layers = _layer_list(layers)
    _check_layers(clusters, layers, what)
    energy = _cluster_energy(clusters, what)
    result = {}
    for layer in layers:
        # Negative cells (electronic noise) clipped: ln(1 + E/E0) needs E > −E0,
        # and no energy below 0 is pile-up to remove. A cluster with E ≤ 0 has
        # empty images in MLTree; it gets zeros here whatever it holds.
        cells = np.clip(clusters.images[layer] * energy[:, None, None], 0.0, None)
        if not np.isfinite(cells).all():
            n_bad = int((~np.isfinite(cells)).reshape(len(cells), -1).any(axis=1).sum())
            msg = f"{what}: {n_bad} cluster(s) have non-finite {layer} pixels or cluster_E"
            raise PreprocessingError(msg)
        result[layer] = cells
    return result


def to_pixels(clusters: Clusters, layers: Sequence[str] = EM_LAYERS) -> dict[str, np.ndarray]:
    """The PAED's pixels t = ln(1 + E / `PIXEL_SCALE_GEV`) of ``layers``, float32 (n, n_η, n_φ).

    E is the cell energy in GeV, the stored image (a fraction of ``cluster_E``)
    times ``cluster_E``; negative cells count as 0.

    Raises
    ------
    PreprocessingError
        If a layer or ``cluster_E`` is missing (naming them), or a pixel is not finite.
    """
    return {
        layer: np.log1p(cells / PIXEL_SCALE_GEV).astype(np.float32)
        for layer, cells in _energies(clusters, layers).items()
    }


def from_pixels(
    pixels: Mapping[str, np.ndarray], layers: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Cell energies in GeV, float32, from pixels t: the inverse of `to_pixels`."""
    names = list(pixels) if layers is None else _layer_list(layers)
    missing = [layer for layer in names if layer not in pixels]
    if missing:
        msg = f"no pixels of {', '.join(map(repr, missing))}; there are: {', '.join(pixels)}"
        raise PreprocessingError(msg)
    return {
        layer: (PIXEL_SCALE_GEV * np.expm1(np.asarray(pixels[layer], dtype=np.float64))).astype(
            np.float32
        )
        for layer in names
    }


def pixel_error(a: Clusters, b: Clusters, layers: Sequence[str] = EM_LAYERS) -> float:
    """Mean squared difference of the pixels t of ``a`` and ``b``, averaged over ``layers``.

    Each layer's mean over its pixels and clusters, then the mean over the
    layers: the PAED's loss divided by the number of layers. ``a`` and ``b``
    are partners row by row (e.g. denoised clusters and the same clusters
    without pile-up).
    """
    layers = _layer_list(layers)
    if len(a) != len(b):
        msg = f"pixel_error needs partners row by row; got {len(a)} and {len(b)} clusters"
        raise DataError(msg)
    if not layers:
        raise InvalidValueError("pixel_error needs at least one layer")
    if len(a) == 0:
        raise DataError("pixel_error of no clusters")
    ta, tb = to_pixels(a, layers), to_pixels(b, layers)
    errors = [np.mean((ta[layer].astype(np.float64) - tb[layer]) ** 2) for layer in layers]
    return float(np.mean(errors))


# ---------------------------------------------------------------------------- configuration


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


#: The registry's entry (`calotools.models`, name ``paed``): its layers and default sizes.
_SPEC = models.spec(KIND)


@dataclass(frozen=True)
class PaedConfig:
    """How a PAED is built and trained; saved with it as ``config.json``.

    Attributes
    ----------
    layers
        Image layers it denoises (default: the EM layers EMB1–3).
    joint
        False: one auto-encoder per layer, each with its own latent vector;
        True: one latent vector of all layers' encoders together.
    filters
        Filters of the convolutions, one entry per level of the encoder (the
        decoder mirrors them).
    latent
        Size of the latent vector: per layer, or in all when ``joint``.
    epochs, batch_size, learning_rate
        Training: passes over the pairs, clusters per step, Adam's rate.
    seed
        Seeds Keras (weights, shuffling) at the start of `train_paed`.
    """

    layers: tuple[str, ...] = _SPEC.layers
    joint: bool = _SPEC.sizes["joint"]
    filters: tuple[int, ...] = _SPEC.sizes["filters"]
    latent: int = _SPEC.sizes["latent"]
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            msg = f"PaedConfig.{name} must be {expected}, got {getattr(self, name)!r}"
            raise InvalidValueError(msg)

        if isinstance(self.layers, str) or not isinstance(self.layers, Sequence):
            fail("layers", "a sequence of image layer names")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers or len(set(self.layers)) != len(self.layers):
            fail("layers", "one or more distinct image layer names")
        unknown = [layer for layer in self.layers if layer not in IMAGE_BRANCHES]
        if unknown:
            msg = (
                f"PaedConfig.layers: unknown layer(s) {', '.join(map(repr, unknown))}; "
                f"the image layers are: {', '.join(IMAGE_BRANCHES)}"
            )
            raise InvalidValueError(msg)
        if not isinstance(self.joint, bool | np.bool_):
            fail("joint", "True or False")
        object.__setattr__(self, "joint", bool(self.joint))
        if isinstance(self.filters, str) or not isinstance(self.filters, Sequence):
            fail("filters", "a sequence of positive integers")
        object.__setattr__(self, "filters", tuple(self.filters))
        if not self.filters or not all(_is_int(n) and n >= 1 for n in self.filters):
            fail("filters", "one or more positive integers")
        object.__setattr__(self, "filters", tuple(int(n) for n in self.filters))
        for name in ("latent", "epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                fail(name, "an integer of at least 1")
            object.__setattr__(self, name, int(value))
        rate = self.learning_rate
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float | np.floating)
            or not (math.isfinite(rate) and rate > 0)
        ):
            fail("learning_rate", "a finite number above 0")
        object.__setattr__(self, "learning_rate", float(rate))
        if not _is_int(self.seed) or self.seed < 0:
            fail("seed", "an integer of at least 0")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def latent_size(self) -> int:
        """Length of the latent vector of a cluster (`Paed.latent`)."""
        return self.latent if self.joint else self.latent * len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PaedConfig:
        """The configuration `to_dict` gave; unknown keys are refused by name."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"PaedConfig has no field(s) {unknown}; it has: {', '.join(sorted(known))}"
            raise InvalidValueError(msg)
        return cls(**dict(values))


# ---------------------------------------------------------------------------- the network


def _pool_size(n_eta: int, n_phi: int) -> tuple[int, int]:
    """Pooling of one encoder level: towards square, coarse cells, and always exactly invertible.

    EMB1's strips are eight times finer in η than EMB2's cells and four φ cells
    wide: it is pooled four-fold in η (while it stays eight times longer than
    wide), and φ only while at least four pixels remain; other grids two-fold
    along each axis at least four pixels long. An axis is pooled only by a
    divisor of its length, so that the decoder's upsampling restores the shape.
    """
    eta = 4 if n_eta >= 8 * n_phi and n_eta % 4 == 0 else 2 if n_eta >= 4 and n_eta % 2 == 0 else 1
    phi = 2 if n_phi >= 4 and n_phi % 2 == 0 else 1
    return eta, phi


def _encoder(
    keras: Any, image: Any, layer: str, filters: Sequence[int]
) -> tuple[Any, tuple[int, int, int], list[tuple[int, int]]]:
    """Conv → pool per level, flattened; also the bottleneck's shape and the pool sizes."""
    n_eta, n_phi = IMAGE_BRANCHES[layer]
    x = keras.layers.Reshape((n_eta, n_phi, 1), name=f"{layer}_channel")(image)
    pools = []
    for level, n_filters in enumerate(filters):
        x = keras.layers.Conv2D(
            n_filters, _KERNEL, padding="same", activation="relu", name=f"{layer}_conv_{level}"
        )(x)
        pool = _pool_size(n_eta, n_phi)
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool, name=f"{layer}_pool_{level}")(x)
        n_eta, n_phi = n_eta // pool[0], n_phi // pool[1]
        pools.append(pool)
    flat = keras.layers.Flatten(name=f"{layer}_flatten")(x)
    return flat, (n_eta, n_phi, filters[-1]), pools


def _decoder(
    keras: Any,
    code: Any,
    image: Any,
    layer: str,
    filters: Sequence[int],
    bottleneck: tuple[int, int, int],
    pools: Sequence[tuple[int, int]],
) -> Any:
    """Dense → reshape → (upsample → conv) per level → the subtraction → max(t − it, 0)."""
    x = keras.layers.Dense(math.prod(bottleneck), activation="relu", name=f"{layer}_expand")(code)
    x = keras.layers.Reshape(bottleneck, name=f"{layer}_unflatten")(x)
    for level in reversed(range(len(filters))):
        if pools[level] != (1, 1):
            x = keras.layers.UpSampling2D(pools[level], name=f"{layer}_upsample_{level}")(x)
        x = keras.layers.Conv2D(
            filters[level],
            _KERNEL,
            padding="same",
            activation="relu",
            name=f"{layer}_deconv_{level}",
        )(x)
    # A bias of −4 and small weights: the untrained network subtracts about
    # softplus(−4) everywhere, close to the identity (see the module docstring).
    d = keras.layers.Conv2D(
        1,
        _KERNEL,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(stddev=SUBTRACTION_KERNEL_STDDEV),
        bias_initializer=keras.initializers.Constant(SUBTRACTION_BIAS),
        name=f"{layer}_subtraction",
    )(x)
    subtraction = keras.layers.Activation("softplus", name=f"{layer}_softplus")(d)
    subtraction = keras.layers.Reshape(IMAGE_BRANCHES[layer], name=f"{layer}_removed")(subtraction)
    left = keras.layers.Subtract(name=f"{layer}_subtracted")([image, subtraction])
    # Built-in layers only (no Lambda), so that the model loads in safe mode.
    return keras.layers.ReLU(name=f"denoised_{layer}")(left)


def _latent_name(config: PaedConfig, layer: str) -> str:
    return "latent" if config.joint else f"latent_{layer}"


def build_paed(config: PaedConfig | None = None) -> keras.Model:
    """The PAED network of ``config``, uncompiled.

    Inputs and outputs are dicts keyed by layer name of pixels t shaped
    (n_η, n_φ); the latent layers are named ``latent_<layer>`` (or ``latent``
    when joint). Weights follow Keras' global seed (`train_paed` sets it).
    """
    config = config or PaedConfig()
    keras = backend.keras()
    inputs = {
        layer: keras.Input(IMAGE_BRANCHES[layer], name=layer, dtype="float32")
        for layer in config.layers
    }
    encoded = {
        layer: _encoder(keras, inputs[layer], layer, config.filters) for layer in config.layers
    }
    if config.joint:
        flats = [encoded[layer][0] for layer in config.layers]
        joined = flats[0] if len(flats) == 1 else keras.layers.Concatenate(name="encoded")(flats)
        joint_code = keras.layers.Dense(config.latent, name="latent")(joined)
        codes = dict.fromkeys(config.layers, joint_code)
    else:
        codes = {
            layer: keras.layers.Dense(config.latent, name=_latent_name(config, layer))(flat)
            for layer, (flat, _, _) in encoded.items()
        }
    outputs = {
        layer: _decoder(
            keras, codes[layer], inputs[layer], layer, config.filters, *encoded[layer][1:]
        )
        for layer in config.layers
    }
    return keras.Model(inputs=inputs, outputs=outputs, name="paed")


def _compile(network: keras.Model, config: PaedConfig) -> keras.Model:
    keras = backend.keras()
    network.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=dict.fromkeys(config.layers, "mean_squared_error"),
    )
    return network


# ---------------------------------------------------------------------------- training


def _check_pairs(noisy: Clusters, clean: Clusters, layers: Sequence[str], what: str) -> None:
    if len(noisy) != len(clean):
        msg = (
            f"{what}: {len(noisy)} noisy and {len(clean)} clean clusters; rows must be partners "
            "(the same cluster with and without pile-up, in the same order)"
        )
        raise DataError(msg)
    if len(noisy) == 0:
        raise DataError(f"{what}: no clusters to train on")
    for clusters, name in (
        (noisy, f"{what}: the noisy clusters"),
        (clean, f"{what}: the clean clusters"),
    ):
        _check_layers(clusters, layers, name)
    columns = noisy.scalars.columns.intersection(clean.scalars.columns)
    if "eventNumber" in columns:
        differ = np.flatnonzero(
            noisy.scalars["eventNumber"].to_numpy() != clean.scalars["eventNumber"].to_numpy()
        )
        if len(differ):
            row = int(differ[0])
            msg = (
                f"{what}: {len(differ)} row(s) pair different events, first row {row}: "
                f"eventNumber {noisy.scalars['eventNumber'].iloc[row]} (noisy) vs "
                f"{clean.scalars['eventNumber'].iloc[row]} (clean); rows must be partners"
            )
            raise DataError(msg)


def train_paed(
    noisy: Clusters,
    clean: Clusters,
    config: PaedConfig | None = None,
    *,
    validation: tuple[Clusters, Clusters] | None = None,
) -> Paed:
    """Train a PAED to map the images of ``noisy`` to those of ``clean``.

    Parameters
    ----------
    noisy, clean
        Partners row by row: each cluster with pile-up and the same cluster
        without (the same hard-scatter event simulated both ways). Where both
        have ``eventNumber`` it must agree row by row.
    config
        Architecture and training settings (default `PaedConfig`).
    validation
        (noisy, clean) pairs whose loss is recorded every epoch (``val_loss``).

    Raises
    ------
    DataError
        For unpaired inputs: different lengths or event numbers.
    PreprocessingError
        For clusters without a layer of ``config.layers`` or ``cluster_E``.
    """
    config = config or PaedConfig()
    _check_pairs(noisy, clean, config.layers, "training pairs")
    if validation is not None:
        _check_pairs(*validation, config.layers, "validation pairs")
    keras = backend.keras()
    keras.utils.set_random_seed(config.seed)
    x, y = to_pixels(noisy, config.layers), to_pixels(clean, config.layers)
    validation_data = None
    if validation is not None:
        validation_data = (
            to_pixels(validation[0], config.layers),
            to_pixels(validation[1], config.layers),
        )
    network = _compile(build_paed(config), config)
    fit = network.fit(
        x,
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        validation_data=validation_data,
        verbose=0,
    )
    history = pd.DataFrame({"epoch": np.arange(1, config.epochs + 1), **fit.history})
    return Paed(network, config, history=history)


# ---------------------------------------------------------------------------- the trained model


class Paed:
    """A trained PAED: denoises clusters, gives their latent vectors, saves to a folder.

    Parameters
    ----------
    network
        The Keras model of `build_paed`.
    config
        The configuration it was built and trained with.
    history
        Loss per epoch (``epoch``, ``loss``, ``<layer>_loss``, ``val_…``).
    folder
        Where it was loaded from, if anywhere.
    """

    #: Packages whose versions can change the outputs (`calotools.artifacts.check_versions`).
    result_packages: tuple[str, ...] = ("calotools", "numpy", "keras", "tensorflow")

    def __init__(
        self,
        network: keras.Model,
        config: PaedConfig,
        *,
        history: pd.DataFrame | None = None,
        folder: str | os.PathLike | None = None,
    ) -> None:
        self.network = network
        self.config = config
        self.history = pd.DataFrame() if history is None else history
        self.folder = None if folder is None else Path(folder)
        self._encoder: keras.Model | None = None

    def __repr__(self) -> str:
        where = f", folder={str(self.folder)!r}" if self.folder else ""
        return (
            f"Paed(layers={list(self.config.layers)}, joint={self.config.joint}, "
            f"latent_size={self.config.latent_size}{where})"
        )

    def pixels(self, clusters: Clusters, *, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Denoised pixels t of the PAED's layers, float32 (n, n_η, n_φ)."""
        out = self._outputs(self.network, to_pixels(clusters, self.config.layers), batch_size)
        return {layer: out[layer].astype(np.float32, copy=False) for layer in self.config.layers}

    def denoise(self, clusters: Clusters, *, batch_size: int = 1024) -> Clusters:
        """``clusters`` with the PAED's layers denoised: what a classifier takes.

        The scalars (``cluster_E`` too) and the other layers are kept as they
        are; the denoised images are stored as the ntuples store images, as
        fractions of that ``cluster_E`` (so they sum to less than the input's by
        the pile-up removed), float32, and never negative.
        """
        energy = _cluster_energy(clusters, "the clusters")
        cells = from_pixels(self.pixels(clusters, batch_size=batch_size))
        safe = np.where(energy > 0, energy, 1.0)[:, None, None]
        images = dict(clusters.images)
        for layer, gev in cells.items():
            fraction = np.where(energy[:, None, None] > 0, gev / safe, 0.0)
            images[layer] = np.maximum(fraction, 0.0).astype(np.float32)
        return Clusters(clusters.scalars.copy(), images)

    @property
    def encoder(self) -> keras.Model:
        """The network from the pixels t to the latent layers (shares the PAED's weights)."""
        if self._encoder is None:
            keras = backend.keras()
            outputs = {name: self.network.get_layer(name).output for name in self._latent_names()}
            self._encoder = keras.Model(self.network.input, outputs, name="paed_encoder")
        return self._encoder

    def latent(self, clusters: Clusters, *, batch_size: int = 1024) -> np.ndarray:
        """Latent vectors, (n, `PaedConfig.latent_size`) float32: the layers' in order, or the joint one."""
        out = self._outputs(self.encoder, to_pixels(clusters, self.config.layers), batch_size)
        parts = [out[name] for name in self._latent_names()]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def _latent_names(self) -> list[str]:
        return list(dict.fromkeys(_latent_name(self.config, layer) for layer in self.config.layers))

    @staticmethod
    def _outputs(
        network: keras.Model, inputs: dict[str, np.ndarray], batch_size: int
    ) -> dict[str, np.ndarray]:
        if batch_size < 1:
            raise InvalidValueError(f"batch_size must be at least 1, got {batch_size}")
        return backend.predict_outputs(network, inputs, batch_size=batch_size)

    # ------------------------------------------------------------------------ the folder

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the PAED folder: manifest, ``config.json``, the Keras network, history, versions.

        The folder appears whole or not at all (`calotools.atomic.atomic_folder`);
        an older PAED folder there is replaced, any other folder is refused.
        """
        folder = Path(folder)
        if folder.exists():
            try:
                kind = artifacts.read_manifest(folder)["kind"]
            except ArtifactError:
                kind = None
            if kind != KIND:
                msg = f"{folder} exists and is not a PAED folder; not replacing it"
                raise OutputPathError(msg)
        with atomic.atomic_folder(folder) as partial:
            models.save_network(self.network, partial / _NETWORK_FILE)
            artifacts.write_json(partial / _CONFIG_FILE, self.config.to_dict())
            atomic.write_text(partial / _HISTORY_FILE, self.history.to_csv(index=False))
            artifacts.write_json(partial / artifacts.VERSIONS, artifacts.software_versions())
            artifacts.write_manifest(
                partial,
                KIND,
                network=_NETWORK_FILE,
                config=_CONFIG_FILE,
                history=_HISTORY_FILE,
                versions=artifacts.VERSIONS,
            )
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, *, check_versions: bool = True) -> Paed:
        """Restore a PAED saved by `save`: no pickle, the network in Keras' safe mode.

        Raises
        ------
        ArtifactError
            If ``folder`` is no PAED folder (missing, another kind of model,
            a damaged or foreign file), naming it and what is wrong.
        """
        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        if manifest["kind"] != KIND:
            msg = f"{folder}: a {manifest['kind']!r} model folder, not a PAED ({KIND!r})"
            raise ArtifactError(msg)
        config_path = artifacts.member_path(folder, manifest.get("config"), key="config")
        if not config_path.is_file():
            raise ArtifactError(f"{config_path}: missing (the PAED's configuration)")
        values = artifacts.read_json(config_path)
        if not isinstance(values, dict):
            raise ArtifactError(f"{config_path}: expected a JSON object, got {values!r:.60}")
        try:
            config = PaedConfig.from_dict(values)
        except (InvalidValueError, TypeError) as err:
            raise ArtifactError(f"{config_path}: {err}") from None
        network_path = artifacts.member_path(folder, manifest.get("network"), key="network")
        network = models.load_network(network_path, compile=False)
        expected = {layer: (None, *IMAGE_BRANCHES[layer]) for layer in config.layers}
        found = {tensor.name: tuple(tensor.shape) for tensor in network.inputs}
        if found != expected:
            msg = f"{network_path}: inputs {found} do not match {config_path} (expected {expected})"
            raise ArtifactError(msg)
        history = None
        history_name = manifest.get("history")
        if history_name is not None:
            history_path = artifacts.member_path(folder, history_name, key="history")
            if history_path.is_file():
                try:
                    history = pd.read_csv(io.StringIO(history_path.read_text(encoding="utf-8")))
                except (ValueError, UnicodeDecodeError) as err:
                    raise ArtifactError(f"{history_path}: not a history table ({err})") from None
        if check_versions:
            artifacts.check_versions({folder: cls.result_packages})
        return cls(network, config, history=history, folder=folder)
