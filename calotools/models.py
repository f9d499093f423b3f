"""The networks of the pion studies, by name, and trained models restored from their folders.

Every architecture is registered with the `Preprocessing` it needs (layout,
layers, scalar features), its source, the tasks it does and the optimiser
settings of that source. Builders make Keras 3 functional models whose inputs
are the dict of named arrays the preprocessing produces, so that
``model.predict(preprocessing.transform(clusters))`` just works.

Tasks: ``"classify"`` gives P(π±) (π0 = 0, π± = 1, ``docs/conventions.md``);
``"regress"`` gives the calibrated energy. A regression variant keeps the
classifier's trunk, adds the cluster energy and |η| as scalar inputs (where the
classifier had none) and ends in one linear unit that learns what a calibration
learns: the correction ln(E_calib / E_EM) to the EM scale (``target="log_ratio"``),
with a Huber loss (`HUBER_DELTA`) so that noise clusters, whose EM-scale energy
is near zero and ratio far from 1, do not dominate. The unit starts at zero, so
an untrained regression returns the EM-scale energy. Models saved with the
earlier target, the standardised ln E_calib (``"log_energy"``), keep it.

Pixels: the ntuples store cell energy / cluster_E, and a real cluster whose
EM-scale energy is near zero (noise) has fractions in the hundreds (pixel sums
up to ~1300, 99.9 % quantile ~150, in the quick default data set). Such
outliers unbalance training, batch normalisation above all. Classifiers
therefore see ``scale="log"`` (log10(1 + fraction / 10⁻⁴), 0 to ~7), which kept
or raised the test AUC (DenseNet 0.89–0.95 → 0.99, EMB2 CNN 0.88 → 0.96, LAPP CNN
0.97 → 0.99, dense on all layers 0.989 → 0.982; quick data set, 6–10 epochs);
regressions see ``scale="unit_sum"`` (the shape, summing to 1; the energy
comes from the scalar inputs), which gave resolutions 2–4 times better than
either other scale. The recipe is saved with every model; pass another
`Preprocessing` to `calotools.training.train` to change it.

====================  ========================================================
name                  source
====================  ========================================================
``dense_emb2``        ATLAS ML forum [FORUM2017]: EMB2 + E → Dense 128
``dense3_emb2``       ATLAS ML forum: EMB2 + E → 128-64-32
``cnn_emb2``          ATLAS ML forum: CNN on EMB2 alone
``dense3_all``        ATLAS ML forum: all layers flattened + E → 128-64-32
``dense4_all``        ATLAS ML forum: all layers flattened + E → 512-256-128-64
``per_layer_dense``   ATLAS pion-ML practice: a dense net per layer + combination
``per_layer_cnn``     ATLAS pion-ML practice: multi-input CNN, a branch per layer
``densenet``          LLNL-TR-814867 §2.3: DenseNet on EMB1, EMB2+3, Tile
``lapp_cnn``          LAPP [LAPP2021]: selu, He init, 8 % dropout, Adam 1e-4
``hybrid``            calotools: per-layer CNN + a dense branch on the moments
``bdt``               [THAIS2017]: gradient-boosted trees on the cluster moments
``paed``              LAPP [LAPP2021]: pile-up denoising autoencoder (task ``"denoise"``,
                      `calotools.denoising`)
====================  ========================================================

Default sizes are modest so that every model trains on a laptop CPU; pass
builder keywords (``units=``, ``filters=``, ``growth_rate=``, …) for more.

Examples
--------
>>> from calotools import models
>>> sorted(models.available())[:3]
['bdt', 'cnn_emb2', 'dense3_all']
>>> models.spec("densenet").preprocessing("classify").layout
'densenet'
>>> net = models.build("dense3_emb2", "classify")  # doctest: +SKIP
>>> trained = calotools.loading.load("models/densenet-classify")  # doctest: +SKIP
>>> p_pipm = trained.predict(clusters)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from calotools import _deprecated, artifacts, atomic, backend, geometry, layers
from calotools.errors import ModelError
from calotools.ntuple import Clusters
from calotools.preprocessing import FLAT_INPUT, SCALARS_INPUT, Preprocessing, Scale, Target

if TYPE_CHECKING:
    import keras

__all__ = [
    "DENOISE",
    "HUBER_DELTA",
    "MOMENT_SCALARS",
    "REGRESSION_SCALARS",
    "REGRESSION_TARGET",
    "TASKS",
    "KerasModel",
    "ModelError",
    "ModelSpec",
    "available",
    "build",
    "compile_model",
    "load_network",
    "save_network",
    "spec",
]

Task = Literal["classify", "regress"]
#: The tasks `calotools.training` trains on labelled selections.
TASKS: tuple[str, ...] = ("classify", "regress")
#: The task of the denoisers (``paed``): images with pile-up → without, trained on
#: pairs of the same clusters by `calotools.denoising.train_paed`, not by `calotools.training`.
DENOISE = "denoise"

#: Scalar inputs of every regression: the energy scale and the position of the
#: cluster, which the calibration depends on (LCW tables are binned in both).
REGRESSION_SCALARS: tuple[str, ...] = ("log10(cluster_E)", "abs(cluster_Eta)")
#: What regressions learn: ln(ENG_CALIB_TOT / cluster_E), 0 at the EM scale.
REGRESSION_TARGET: Target = "log_ratio"
#: Cluster moments a network can take beside its images (``extra_scalars`` of
#: `ModelSpec.preprocessing`, ``calotools train --moments``): what the BDT sees
#: (`calotools.baselines.BDT_FEATURES`), summarising cells outside the images
#: too (presampler, cells under the image threshold, negative cells,
#: isolation). Energy and |η| first; widths, depths and counts spanning
#: decades as log1p (zero for a few one-cell clusters); fractions as they are.
#: FIRST_ENG_DENS is left out: it spans five decades and is zero for some
#: clusters, so neither its value nor a logarithm standardises well.
MOMENT_SCALARS: tuple[str, ...] = (
    "log10(cluster_E)",
    "abs(cluster_Eta)",
    "log1p(cluster_nCells)",
    "cluster_CENTER_MAG",
    "log1p(cluster_CENTER_LAMBDA)",
    "cluster_ISOLATION",
    "log1p(cluster_SECOND_R)",
    "log1p(cluster_SECOND_LAMBDA)",
    "cluster_LATERAL",
    "cluster_LONGITUDINAL",
    "cluster_ENG_FRAC_EM",
    "log1p(cluster_SIGNIFICANCE)",
)
#: Huber loss threshold of the regressions, in ln E (residuals beyond about 20 %
#: weigh linearly, not quadratically) [A]: ≈ 1.5 × the π± EM-scale resolution of
#: the default data (docs/realism.md), so that ordinary clusters see a squared
#: error and noise-dominated ones an absolute one.
HUBER_DELTA: float = 0.2
#: Pixel scales (`Preprocessing.scale`); see the module docstring for why.
CLASSIFIER_SCALE: Scale = "log"
REGRESSION_SCALE: Scale = "unit_sum"
#: The cluster energy the ATLAS ML forum networks see next to the pixels.
ENERGY: tuple[str, ...] = ("log10(cluster_E)",)
ALL_LAYERS: tuple[str, ...] = geometry.IMAGE_LAYER_NAMES
EM_LAYERS: tuple[str, ...] = tuple(lay.name for lay in geometry.IMAGE_LAYERS if lay.is_em)

#: Names of the output layers; `calotools.interpret` and users can look them up.
SCORE_OUTPUT = "score"
ENERGY_OUTPUT = "energy"


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture and everything needed to train it like its source did.

    Attributes
    ----------
    name, description, source
        Registry name, one-line description and where the architecture comes from.
    kind
        ``"keras"`` for networks, ``"bdt"`` for the boosted decision trees.
    layout, layers, scalars
        The `Preprocessing` of the classifier.
    regression_scalars
        The scalar inputs of the regression (default `REGRESSION_SCALARS`).
    tasks
        The tasks it does.
    output
        Classifier output: ``"sigmoid"`` (one unit, P(π±)) or ``"softmax"``
        (two units, column 1 is P(π±)).
    learning_rate
        Adam's learning rate.
    class_weight
        ``"balanced"`` to weight the classes by the inverse of their frequency
        when training a classifier (for unbalanced samples), or None.
    builder
        ``builder(input_shapes, task=..., output=..., **sizes)`` → uncompiled Keras model.
    sizes
        The builder's default size keywords.
    tiny
        Size keywords for smoke tests and ``calotools train --quick``.
    """

    name: str
    description: str
    source: str
    kind: Literal["keras", "bdt", "paed"] = "keras"
    layout: Literal["layers", "densenet", "flat"] = "layers"
    layers: tuple[str, ...] = ALL_LAYERS
    scalars: tuple[str, ...] = ()
    regression_scalars: tuple[str, ...] = REGRESSION_SCALARS
    tasks: tuple[str, ...] = TASKS
    output: Literal["sigmoid", "softmax"] = "sigmoid"
    learning_rate: float = 1e-3
    class_weight: Literal["balanced"] | None = None
    builder: Callable[..., Any] | None = field(default=None, repr=False)
    sizes: Mapping[str, Any] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)

    def preprocessing(
        self, task: Task = "classify", *, extra_scalars: Sequence[str] = ()
    ) -> Preprocessing:
        """A fresh (unfitted) `Preprocessing` for ``task`` (pixel scales: module docstring).

        ``extra_scalars`` (feature expressions, `MOMENT_SCALARS` say) are
        appended to the model's scalar inputs; every builder joins the scalars
        to the image features before its dense head.
        """
        self.check_task(task)
        scalars = self.scalars if task == "classify" else self.regression_scalars
        scalars = tuple(dict.fromkeys([*scalars, *extra_scalars]))
        if task == "classify":
            return Preprocessing(
                layout=self.layout,
                layers=self.layers,
                scale=CLASSIFIER_SCALE,
                scalars=scalars,
                target="label",
            )
        return Preprocessing(
            layout=self.layout,
            layers=self.layers,
            scale=REGRESSION_SCALE,
            scalars=scalars,
            target=REGRESSION_TARGET,
        )

    def check_task(self, task: str) -> None:
        """Raise `ModelError` unless the model does ``task``."""
        if task not in (*TASKS, DENOISE):
            msg = f"task must be one of {', '.join((*TASKS, DENOISE))}; got {task!r}"
            raise ModelError(msg)
        if task not in self.tasks:
            msg = f"model {self.name!r} does {', '.join(self.tasks)} only, not {task!r}"
            raise ModelError(msg)


_REGISTRY: dict[str, ModelSpec] = {}


def _register(model_spec: ModelSpec) -> ModelSpec:
    _REGISTRY[model_spec.name] = model_spec
    return model_spec


def available(task: str | None = None) -> dict[str, str]:
    """Registered model name → one-line description; only those doing ``task`` if given.

    Examples
    --------
    >>> "paed" in available(), "paed" in available("classify")
    (True, False)
    """
    return {name: s.description for name, s in _REGISTRY.items() if task is None or task in s.tasks}


def spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"unknown model {name!r}; the models are: {', '.join(_REGISTRY)}"
        raise ModelError(msg) from None


def build(
    name: str,
    task: Task = "classify",
    preprocessing: Preprocessing | None = None,
    **sizes: Any,
) -> keras.Model:
    """The Keras model ``name`` for ``task``, uncompiled.

    Parameters
    ----------
    preprocessing
        The recipe whose inputs the model takes; default: the spec's.
    sizes
        Builder keywords overriding the spec's default sizes.
    """
    model_spec = spec(name)
    model_spec.check_task(task)
    if model_spec.kind == "paed":
        msg = (
            f"{name!r} is a denoiser: build it with calotools.denoising.build_paed "
            "and train it on pairs with calotools.denoising.train_paed"
        )
        raise ModelError(msg)
    if model_spec.kind != "keras":
        msg = f"{name!r} is not a Keras network; train it with calotools.training.train"
        raise ModelError(msg)
    prep = preprocessing or model_spec.preprocessing(task)
    unknown = sorted(set(sizes) - set(model_spec.sizes))
    if unknown:
        msg = (
            f"model {name!r} has no size keyword(s) {unknown}; "
            f"it has: {', '.join(model_spec.sizes)}"
        )
        raise ModelError(msg)
    if model_spec.builder is None:
        msg = f"model {name!r} has no builder for its Keras network"
        raise ModelError(msg)
    return model_spec.builder(
        prep.input_shapes,
        task=task,
        output=model_spec.output,
        name=name,
        **{**model_spec.sizes, **sizes},
    )


def compile_model(
    model: keras.Model, name: str, task: Task, *, learning_rate: float | None = None
) -> keras.Model:
    """Compile with the loss and optimiser of the model's source.

    Sigmoid classifiers use the binary cross-entropy; softmax classifiers the
    categorical cross-entropy, written for integer labels (the sparse form,
    identical to the one-hot form); regressions the Huber loss (`HUBER_DELTA`).
    """
    keras = backend.keras()

    model_spec = spec(name)
    if task == "regress":
        loss, metrics = keras.losses.Huber(delta=HUBER_DELTA), ["mean_absolute_error"]
    elif model_spec.output == "softmax":
        loss, metrics = "sparse_categorical_crossentropy", ["sparse_categorical_accuracy"]
    else:
        loss, metrics = "binary_crossentropy", ["binary_accuracy"]
    model.compile(
        optimizer=keras.optimizers.Adam(
            model_spec.learning_rate if learning_rate is None else learning_rate
        ),
        loss=loss,
        # Weighted: the spectrum and class weights are part of the problem, so
        # the metrics should weigh clusters as the loss does.
        weighted_metrics=metrics,
    )
    return model


# ---------------------------------------------------------------------------- building blocks


def _inputs(input_shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    keras = backend.keras()

    return {name: keras.Input(tuple(shape), name=name) for name, shape in input_shapes.items()}


def _image_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: tensor for name, tensor in inputs.items() if name != SCALARS_INPUT}


def _join(tensors: Sequence[Any], name: str | None = None) -> Any:
    keras = backend.keras()

    return tensors[0] if len(tensors) == 1 else keras.layers.Concatenate(name=name)(list(tensors))


def _with_scalars(features: Any, inputs: Mapping[str, Any]) -> Any:
    """Append the scalar features (cluster energy, |η|) to a feature vector."""
    if SCALARS_INPUT not in inputs:
        return features
    return _join([features, inputs[SCALARS_INPUT]], name="with_scalars")


def _dense_stack(
    x: Any,
    units: Sequence[int],
    *,
    activation: str = "relu",
    initializer: str = "glorot_uniform",
    dropout: float = 0.0,
    prefix: str = "dense",
) -> Any:
    keras = backend.keras()

    for i, n in enumerate(units):
        x = keras.layers.Dense(
            n, activation=activation, kernel_initializer=initializer, name=f"{prefix}_{i}"
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{i}")(x)
    return x


def _output(x: Any, task: str, output: str) -> Any:
    """The head: P(π±) (sigmoid or two-way softmax), or one linear energy unit."""
    keras = backend.keras()

    if task == "regress":
        # Zero weights: an untrained regression predicts target 0, the EM scale.
        return keras.layers.Dense(
            1, kernel_initializer="zeros", bias_initializer="zeros", name=ENERGY_OUTPUT
        )(x)
    if output == "softmax":
        return keras.layers.Dense(2, activation="softmax", name=SCORE_OUTPUT)(x)
    return keras.layers.Dense(1, activation="sigmoid", name=SCORE_OUTPUT)(x)


def _pool_size(shape: Sequence[int]) -> tuple[int, int]:
    """Pooling that shrinks a layer image towards square, coarse cells.

    EMB1 (128 × 4 strips) is pooled four-fold in η, the other grids two-fold
    along each axis still at least four pixels long.
    """
    n_eta, n_phi = int(shape[0]), int(shape[1])
    eta = 4 if n_eta >= 8 * n_phi else 2 if n_eta >= 4 else 1
    phi = 2 if n_phi >= 4 else 1
    return eta, phi


def _model(inputs: Mapping[str, Any], output: Any, name: str) -> keras.Model:
    keras = backend.keras()

    return keras.Model(inputs=dict(inputs), outputs=output, name=name)


# ---------------------------------------------------------------------------- dense networks


def _build_dense(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "dense",
    units: Sequence[int] = (128,),
) -> keras.Model:
    """Flattened pixels (+ scalars) → dense ReLU layers → output (ATLAS ML forum)."""
    inputs = _inputs(input_shapes)
    hidden = _dense_stack(_with_scalars(inputs[FLAT_INPUT], inputs), units)
    return _model(inputs, _output(hidden, task, output), name)


def _build_per_layer_dense(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "per_layer_dense",
    layer_units: Sequence[int] = (64, 32),
    combination_units: Sequence[int] = (16,),
) -> keras.Model:
    """A dense network per layer, each ending in one score, and a small net on the six scores.

    The ATLAS pion-ML practice trained the per-layer networks first and the
    combination on their frozen scores; here the whole graph trains at once,
    which gives the same architecture in one fit. The per-layer scores are
    named ``score_<layer>`` (sigmoid for classification, linear for regression).
    """
    keras = backend.keras()

    inputs = _inputs(input_shapes)
    scores = []
    for layer, image in _image_inputs(inputs).items():
        x = keras.layers.Flatten(name=f"flatten_{layer}")(image)
        x = _dense_stack(x, layer_units, prefix=f"dense_{layer}")
        activation = "sigmoid" if task == "classify" else None
        scores.append(keras.layers.Dense(1, activation=activation, name=f"score_{layer}")(x))
    combined = _with_scalars(_join(scores, name="layer_scores"), inputs)
    hidden = _dense_stack(combined, combination_units, prefix="combination")
    return _model(inputs, _output(hidden, task, output), name)


# ---------------------------------------------------------------------------- CNNs


def _conv_branch(
    image: Any,
    filters: Sequence[int],
    *,
    prefix: str,
    activation: str = "relu",
    initializer: str = "glorot_uniform",
    dropout: float = 0.0,
) -> Any:
    """Conv 3×3 → pool, once per entry of ``filters``, then flatten."""
    keras = backend.keras()

    x = image
    for i, n in enumerate(filters):
        x = keras.layers.Conv2D(
            n,
            3,
            padding="same",
            activation=activation,
            kernel_initializer=initializer,
            name=f"{prefix}_conv_{i}",
        )(x)
        pool = _pool_size(x.shape[1:3])
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool, name=f"{prefix}_pool_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{i}")(x)
    return keras.layers.Flatten(name=f"{prefix}_flatten")(x)


def _build_cnn(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "cnn",
    filters: Sequence[int] = (16, 32),
    units: Sequence[int] = (64,),
) -> keras.Model:
    """One convolutional branch per image input, joined (+ scalars) → dense → output.

    With the single input EMB2 this is the ATLAS ML forum's CNN (2-D pixels,
    no cluster energy); with all six layers, the multi-input CNN of the ATLAS
    pion-ML studies.
    """
    inputs = _inputs(input_shapes)
    branches = [
        _conv_branch(image, filters, prefix=layer) for layer, image in _image_inputs(inputs).items()
    ]
    features = _with_scalars(_join(branches, name="branches"), inputs)
    hidden = _dense_stack(features, units)
    return _model(inputs, _output(hidden, task, output), name)


def _build_hybrid(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "hybrid",
    filters: Sequence[int] = (8, 16),
    moment_units: Sequence[int] = (64, 32),
    units: Sequence[int] = (64,),
) -> keras.Model:
    """Images and moments: a CNN branch per layer, a dense branch on the scalars, joined.

    The multi-input CNN of `_build_cnn` sees what the cells look like inside
    the images; the cluster moments (`MOMENT_SCALARS`) summarise every cell of
    the cluster, including those the images leave out. A dense branch first
    turns the standardised moments into features of their own, so that they
    are not outnumbered by the hundreds of image features at the join.
    """
    inputs = _inputs(input_shapes)
    branches = [
        _conv_branch(image, filters, prefix=layer) for layer, image in _image_inputs(inputs).items()
    ]
    if SCALARS_INPUT in inputs:
        branches.append(_dense_stack(inputs[SCALARS_INPUT], moment_units, prefix="moments"))
    hidden = _dense_stack(_join(branches, name="branches"), units)
    return _model(inputs, _output(hidden, task, output), name)


def _build_lapp_cnn(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "lapp_cnn",
    filters: Sequence[int] = (16, 32),
    units: Sequence[int] = (128, 64),
    dropout: float = 0.08,
    initializer: str = "he_normal",
) -> keras.Model:
    """The LAPP photon-ID CNN [LAPP2021]: a selu CNN branch per layer, 8 % dropout, sigmoid.

    The slides give He initialisation (``"lecun_normal"`` is the one that
    keeps selu self-normalising; pass it as ``initializer``), selu everywhere
    but the sigmoid output, a drop rate of 8 %, Adam at 1e-4 and class weights
    for unbalanced data (set in the registry). LAPP's network (~1.4 M
    parameters) saw the three EM layers of photon clusters; here every layer
    of the preprocessing gets a branch, Tile included, since hadronic energy
    is what tells a π± from a π0.
    """
    inputs = _inputs(input_shapes)
    branches = [
        _conv_branch(
            image,
            filters,
            prefix=layer,
            activation="selu",
            initializer=initializer,
            dropout=dropout,
        )
        for layer, image in _image_inputs(inputs).items()
    ]
    features = _with_scalars(_join(branches, name="branches"), inputs)
    hidden = _dense_stack(
        features, units, activation="selu", initializer=initializer, dropout=dropout
    )
    return _model(inputs, _output(hidden, task, output), name)


# ---------------------------------------------------------------------------- DenseNet


#: Momentum of the DenseNet's batch-normalisation averages. Keras' 0.99 needs
#: many hundreds of steps before the inference-time statistics are right,
#: more than a CPU-sized training makes; 0.9 settles in tens of steps.
BN_MOMENTUM = 0.9


def _batch_norm(x: Any, fused: bool, name: str) -> Any:
    """Batch normalisation, in TensorFlow's fused kernel (`calotools.layers`) or Keras' own."""
    keras = backend.keras()

    if fused:
        return layers.fused_batch_normalization(momentum=BN_MOMENTUM, name=name)(x)
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)(x)


def _bn_relu_conv(x: Any, filters: int, kernel: int, name: str, fused: bool) -> Any:
    keras = backend.keras()

    x = _batch_norm(x, fused, f"{name}_bn")
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return keras.layers.Conv2D(
        filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal", name=name
    )(x)


def _dense_block(
    x: Any, n_layers: int, growth_rate: int, bottleneck: bool, name: str, fused: bool
) -> Any:
    """Huang et al. (2017): every layer sees the feature maps of all layers before it."""
    keras = backend.keras()

    for i in range(n_layers):
        y = x
        if bottleneck:  # DenseNet-B: a 1×1 convolution to 4k maps first
            y = _bn_relu_conv(y, 4 * growth_rate, 1, f"{name}_layer{i}_bottleneck", fused)
        y = _bn_relu_conv(y, growth_rate, 3, f"{name}_layer{i}_conv", fused)
        x = keras.layers.Concatenate(name=f"{name}_layer{i}_concat")([x, y])
    return x


def _transition(x: Any, compression: float, name: str, fused: bool) -> Any:
    """BN-ReLU-Conv 1×1 (keeping ``compression`` of the maps) and average pooling."""
    keras = backend.keras()

    x = _bn_relu_conv(x, max(1, int(x.shape[-1] * compression)), 1, name, fused)
    pool = _pool_size(x.shape[1:3])
    if pool != (1, 1):
        x = keras.layers.AveragePooling2D(pool, name=f"{name}_pool")(x)
    return x


def _stem(image: Any, filters: int, strip_stride: int, name: str) -> Any:
    """The first convolution of a branch: 3 × 3, or for strips a (s × 3) one of stride (s, 1).

    A strip layer (EMB1: 128 × 4, η 32 times finer than φ; `_pool_size`'s
    rule) is folded ``strip_stride`` strips at a time: each window of s × 3
    cells gives ``filters`` maps, enough to keep all 3s values when
    ``filters`` ≥ 3s, and the dense blocks run on an s times smaller grid.
    ImageNet DenseNets start the same way, with a strided 7 × 7 stem
    (Huang et al. 2017).
    """
    keras = backend.keras()

    n_eta, n_phi = int(image.shape[1]), int(image.shape[2])
    if strip_stride > 1 and n_eta >= 8 * n_phi and n_eta % strip_stride == 0:
        kernel, strides = (strip_stride, 3), (strip_stride, 1)
    else:
        kernel, strides = (3, 3), (1, 1)
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=name
    )(image)


def _build_densenet(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    task: str,
    output: str,
    name: str = "densenet",
    growth_rate: int = 8,
    blocks: int = 2,
    layers_per_block: int = 3,
    bottleneck: bool = False,
    compression: float = 0.5,
    units: Sequence[int] = (64,),
    strip_stride: int = 1,
    fused_batch_norm: bool = False,
) -> keras.Model:
    """The DenseNet of the LLNL report (§2.3, figure 1; ATL-PHYS-PUB-2020-018).

    Three image inputs (EMB1 at full resolution; EMB2 and EMB3 as two
    channels on the EMB2 grid; the three Tile layers as channels on the
    TileBar0 grid), each through its own DenseNet of ``blocks`` dense blocks
    (Huang et al. 2017: BN-ReLU-Conv layers of ``growth_rate`` maps, each fed
    the concatenation of all earlier maps) separated by transition layers,
    then global average pooling. The three feature vectors (+ scalars for the
    regression) are joined and go through a small dense head: two softmax
    units (categorical cross-entropy) to classify, one linear unit to regress,
    as in the report (trained with a Huber loss here, `compile_model`).

    Two options make it train 1.7 to 3.1 times faster on 2 CPU cores (four
    paired benchmark runs) at an AUC within its statistical error
    (``docs/performance.md``), and the registry turns both on:
    ``strip_stride`` folds EMB1's strips in the stem (`_stem`), and
    ``fused_batch_norm`` normalises in one fused kernel (`calotools.layers`).
    ``strip_stride=1, fused_batch_norm=False`` is the network as it was.
    """
    keras = backend.keras()

    inputs = _inputs(input_shapes)
    features = []
    for branch, image in _image_inputs(inputs).items():
        x = _stem(image, 2 * growth_rate, strip_stride, f"{branch}_stem")
        for block in range(blocks):
            x = _dense_block(
                x,
                layers_per_block,
                growth_rate,
                bottleneck,
                f"{branch}_block{block}",
                fused_batch_norm,
            )
            if block < blocks - 1:
                x = _transition(x, compression, f"{branch}_transition{block}", fused_batch_norm)
        x = _batch_norm(x, fused_batch_norm, f"{branch}_final_bn")
        x = keras.layers.Activation("relu", name=f"{branch}_final_relu")(x)
        features.append(keras.layers.GlobalAveragePooling2D(name=f"{branch}_gap")(x))
    joined = _with_scalars(_join(features, name="branches"), inputs)
    hidden = _dense_stack(joined, units)
    return _model(inputs, _output(hidden, task, output), name)


# ---------------------------------------------------------------------------- registrations

_FORUM = "ATLAS ML forum, Cukierman et al., 'Topo-clustering classification with DNNs' (2017)"
_PION_ML = "ATLAS pion-ML studies (ATL-PHYS-PUB-2020-018 and its code)"

_register(
    ModelSpec(
        "dense_emb2",
        "EMB2 pixels + cluster energy → Dense 128",
        _FORUM,
        layout="flat",
        layers=("EMB2",),
        scalars=ENERGY,
        builder=_build_dense,
        sizes={"units": (128,)},
        tiny={"units": (8,)},
    )
)
_register(
    ModelSpec(
        "dense3_emb2",
        "EMB2 pixels + cluster energy → Dense 128-64-32",
        _FORUM,
        layout="flat",
        layers=("EMB2",),
        scalars=ENERGY,
        builder=_build_dense,
        sizes={"units": (128, 64, 32)},
        tiny={"units": (8, 4)},
    )
)
_register(
    ModelSpec(
        "cnn_emb2",
        "CNN on the EMB2 image alone (no cluster energy)",
        _FORUM,
        layers=("EMB2",),
        builder=_build_cnn,
        sizes={"filters": (16, 32), "units": (64,)},
        tiny={"filters": (2,), "units": (4,)},
    )
)
_register(
    ModelSpec(
        "dense3_all",
        "all six layers flattened + cluster energy → Dense 128-64-32",
        _FORUM,
        layout="flat",
        scalars=ENERGY,
        builder=_build_dense,
        sizes={"units": (128, 64, 32)},
        tiny={"units": (8, 4)},
    )
)
_register(
    ModelSpec(
        "dense4_all",
        "all six layers flattened + cluster energy → Dense 512-256-128-64",
        _FORUM,
        layout="flat",
        scalars=ENERGY,
        builder=_build_dense,
        sizes={"units": (512, 256, 128, 64)},
        tiny={"units": (8, 4)},
    )
)
_register(
    ModelSpec(
        "per_layer_dense",
        "a dense network per layer, a small network combining the six layer scores",
        _PION_ML,
        builder=_build_per_layer_dense,
        sizes={"layer_units": (64, 32), "combination_units": (16,)},
        tiny={"layer_units": (4,), "combination_units": (4,)},
    )
)
_register(
    ModelSpec(
        "per_layer_cnn",
        "multi-input CNN, one convolutional branch per layer, + energy and |η|",
        _PION_ML,
        scalars=REGRESSION_SCALARS,
        builder=_build_cnn,
        sizes={"filters": (8, 16), "units": (64,)},
        tiny={"filters": (2,), "units": (4,)},
    )
)
_register(
    ModelSpec(
        "densenet",
        "DenseNet on EMB1, EMB2+EMB3 and Tile; softmax classifier, linear regression",
        "LLNL-TR-814867 section 2.3 (Heinz et al. 2020); dense blocks of Huang et al. (CVPR 2017)",
        layout="densenet",
        output="softmax",
        builder=_build_densenet,
        sizes={
            "growth_rate": 8,
            "blocks": 2,
            "layers_per_block": 3,
            "bottleneck": False,
            "compression": 0.5,
            "units": (64,),
            "strip_stride": 4,
            "fused_batch_norm": True,
        },
        tiny={"growth_rate": 2, "blocks": 2, "layers_per_block": 1, "units": (4,)},
    )
)
_register(
    ModelSpec(
        "lapp_cnn",
        "LAPP CNN: selu, He init, 8 % dropout, sigmoid, Adam 1e-4, class weights",
        "LAPP-LISTIC, Belfkir, 'Machine Learning @ ATLAS-LAPP' (2021)",
        learning_rate=1e-4,
        class_weight="balanced",
        builder=_build_lapp_cnn,
        sizes={
            "filters": (16, 32),
            "units": (128, 64),
            "dropout": 0.08,
            "initializer": "he_normal",
        },
        tiny={"filters": (2,), "units": (4,)},
    )
)
_register(
    ModelSpec(
        "hybrid",
        "images and moments: a CNN branch per layer and a dense branch on the cluster moments",
        "calotools (issue 15): the per-layer CNN of the pion-ML studies + what the BDT sees",
        scalars=MOMENT_SCALARS,
        regression_scalars=MOMENT_SCALARS,
        builder=_build_hybrid,
        sizes={"filters": (8, 16), "moment_units": (64, 32), "units": (64,)},
        tiny={"filters": (2,), "moment_units": (4,), "units": (4,)},
    )
)
_register(
    ModelSpec(
        "paed",
        "pile-up denoising autoencoder of the EM layers: images with pile-up → without",
        "LAPP [LAPP2021] (the PAED proposal); calotools.denoising, docs/pileup.md",
        kind="paed",
        layers=EM_LAYERS,
        tasks=(DENOISE,),
        # `calotools.denoising.PaedConfig` takes its defaults from here.
        sizes={"joint": False, "filters": (16, 32), "latent": 32},
        tiny={"filters": (2,), "latent": 4},
    )
)
_register(
    ModelSpec(
        "bdt",
        "gradient-boosted decision trees on the cluster moments (LightGBM)",
        "[THAIS2017] (Thais, 'Machine learning in ATLAS', 2017); calotools.baselines",
        kind="bdt",
        sizes={"n_estimators": 200, "learning_rate": 0.1, "num_leaves": 31},
        tiny={"n_estimators": 10},
    )
)


# ---------------------------------------------------------------------------- trained models


def save_network(network: keras.Model, path: str | os.PathLike) -> Path:
    """Save a Keras model (with its optimizer state) to ``path``, atomically."""
    path = Path(path)
    with atomic.atomic_write(path) as tmp, warnings.catch_warnings():
        # TensorFlow's variables lack NumPy 2's `copy` keyword in __array__,
        # which Keras' saving code triggers; harmless, and not ours to fix.
        warnings.filterwarnings(
            "ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning
        )
        network.save(tmp)
    return path


def load_network(path: str | os.PathLike, *, compile: bool = True) -> keras.Model:
    """Load a Keras model saved by `save_network` (``safe_mode``: no code from the file).

    Raises
    ------
    ArtifactError
        For a missing file or one that is not a complete ``.keras`` archive
        (truncated, or another kind of file), naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise artifacts.ArtifactError(f"{path}: no such Keras model file")
    # Keras says "File not found" for a damaged archive too; a .keras file is a zip.
    if not zipfile.is_zipfile(path):
        msg = (
            f"{path}: damaged Keras model file ({path.stat().st_size} bytes, not a complete "
            ".keras zip archive: truncated, or not a Keras file)"
        )
        raise artifacts.ArtifactError(msg)
    keras = backend.keras()
    layers.register()  # calotools' own layers, by their registered names
    return keras.models.load_model(path, compile=compile, safe_mode=True)


class KerasModel(artifacts.FolderInfo):
    """A trained network with its preprocessing: predicts from clusters directly.

    Parameters
    ----------
    network
        The Keras model.
    preprocessing
        The fitted recipe it was trained with.
    name, task
        Registry name and task.
    folder
        Where it was loaded from, if anywhere.
    """

    kind = "keras"
    #: Packages whose versions can change the predictions (`calotools.artifacts.check_versions`).
    result_packages: tuple[str, ...] = ("calotools", "numpy", "keras", "tensorflow")

    def __init__(
        self,
        network: keras.Model,
        preprocessing: Preprocessing,
        *,
        name: str,
        task: Task,
        folder: str | os.PathLike | None = None,
    ) -> None:
        self.network = network
        self.preprocessing = preprocessing
        self.name = name
        self.task = task
        self.folder = None if folder is None else Path(folder)

    def __repr__(self) -> str:
        where = f", folder={str(self.folder)!r}" if self.folder else ""
        return f"KerasModel({self.name!r}, task={self.task!r}{where})"

    @property
    def branches(self) -> list[str]:
        """Branches `predict` reads."""
        return [*self.preprocessing.input_branches, "cluster_E"]

    def predict_inputs(self, inputs: Mapping[str, np.ndarray], *, batch_size: int = 1024):
        """The network's raw output for preprocessed inputs (see `Preprocessing.transform`)."""
        expected = {tensor.name for tensor in self.network.inputs}
        missing = sorted(expected - set(inputs))
        if missing:
            msg = f"the model {self.name!r} needs the inputs {missing}; got {sorted(inputs)}"
            raise ModelError(msg)
        return backend.predict(self.network, inputs, batch_size=batch_size)

    def predict(self, clusters: Clusters, *, batch_size: int = 1024) -> np.ndarray:
        """P(π±) for a classifier, the calibrated energy in GeV for a regression.

        The saved preprocessing is applied first; ``clusters`` need its
        branches (`branches`).
        """
        if len(clusters) == 0:
            return np.zeros(0)
        raw = np.asarray(
            self.predict_inputs(self.preprocessing.transform(clusters), batch_size=batch_size)
        )
        if self.task == "classify":
            # Softmax: column 0 is P(π0), column 1 P(π±) (labels π0 = 0, π± = 1).
            return (raw[:, 1] if raw.shape[-1] == 2 else raw[:, 0]).astype(np.float64)
        return self.preprocessing.inverse_target(raw, clusters)

    @classmethod
    def load(cls, folder: str | os.PathLike, *, check_versions: bool = True) -> KerasModel:
        """Restore a model saved by `calotools.training.train`.

        The network loads in Keras' safe mode, which refuses layers that hold
        Python code (``Lambda``), and only from inside ``folder``.

        Parameters
        ----------
        check_versions
            Warn (`calotools.errors.VersionMismatchWarning`) if the folder's
            ``versions.json`` records other versions of calotools, NumPy,
            Keras or TensorFlow than are installed.

        Raises
        ------
        calotools.errors.ArtifactError
            If the manifest names a file outside the folder, or the
            preprocessing file is not a valid recipe.
        """
        folder = Path(folder)
        manifest = artifacts.read_manifest(folder)
        network_path = artifacts.member_path(folder, manifest.get("network"), key="network")
        prep_path = artifacts.member_path(
            folder, manifest.get("preprocessing"), key="preprocessing"
        )
        # Read before the network: a broken recipe is cheaper to report.
        recipe = artifacts.read_json(prep_path)
        if not isinstance(recipe, dict):
            msg = (
                f"{prep_path}: expected a JSON object (a preprocessing recipe), got {recipe!r:.60}"
            )
            raise artifacts.ArtifactError(msg)
        try:
            prep = Preprocessing.from_dict(recipe)
        except (TypeError, ValueError) as err:  # PreprocessingError is a ValueError
            raise artifacts.ArtifactError(f"{prep_path}: {err}") from None
        network = load_network(network_path, compile=False)
        if check_versions:
            artifacts.check_versions({folder: cls.result_packages})
        return cls(network, prep, name=manifest["name"], task=manifest["task"], folder=folder)


# calotools 0.1 had `load` here; it is `calotools.loading.load` now, above every kind of model.
__getattr__ = _deprecated.forward(__name__, {"load": "calotools.loading:load"})
