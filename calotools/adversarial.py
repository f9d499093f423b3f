"""Adversarial decorrelation: a classifier whose output does not depend on a nuisance Z.

"Learning to pivot" (Louppe, Kagan, Cranmer, arXiv:1611.01046) trains a
classifier f(x) against an adversary r that tries to predict a nuisance Z, the
pile-up condition or the cluster energy, from f's output. The classifier
minimises

    L = L_clf − λ · L_adv,

that is, it *maximises* the loss of the adversary (the paper's value function
L_f − λ L_r), while the adversary minimises L_adv; the two are updated in turn
(the paper's Algorithm 1). At the optimum f's output carries no information
about Z, at some cost in accuracy that λ sets. The ATLAS ML talk "Reducing pileup dependence" does the
same for a pile-up-flat efficiency; as there, the adversary here sees the true
class beside the score by default (``condition_on_class``), so that the score
is made independent of Z *within* each class, which is what a cut on it
needs for an efficiency flat in Z, rather than independent overall. It reads
the score as its logit ln(p / (1 − p)): the same information, but not squashed
where the sigmoid saturates, so the adversary learns what Z does there much
faster (on toys like those of the tests, a Gaussian adversary on p gained a
quarter to a third of the likelihood that one on the logit gained in five epochs).

Two adversaries (`PivotConfig.adversary`):

- ``"binary"``: Z is a class, 0 or 1 (low or high pile-up); one sigmoid unit,
  L_adv the binary cross-entropy;
- ``"gaussian"``: Z is continuous; a mixture-density network of
  ``n_components`` Gaussians (as in the paper's toy example), L_adv the negative
  log-likelihood of Z.

`z_dependence` measures what the adversary fights: the Jensen–Shannon
divergence between the score distributions of the Z groups; `lambda_scan`
trains one classifier per λ and tabulates AUC against it.

Examples
--------
>>> pivot_loss(2.0, 0.5, 3.0)  # L_clf − λ · L_adv
0.5
>>> score = np.array([0.1, 0.3, 0.6, 0.9, 0.1, 0.3, 0.6, 0.9])
>>> z_dependence(score, [0, 0, 0, 0, 1, 1, 1, 1], bins=4)  # same distribution
0.0
>>> z_dependence(score, [0, 0, 1, 1, 0, 0, 1, 1], bins=2)  # no overlap: 1 bit
1.0
>>> result = train_pivot(classifier, x, y, z, PivotConfig(lam=3.0))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from calotools import backend, extras, metrics
from calotools.errors import InvalidValueError

if TYPE_CHECKING:
    import keras

__all__ = [
    "PivotConfig",
    "PivotResult",
    "build_adversary",
    "evaluate_losses",
    "lambda_scan",
    "pivot_loss",
    "train_pivot",
    "z_dependence",
]

logger = logging.getLogger(__name__)

Inputs: TypeAlias = "np.ndarray | Mapping[str, np.ndarray]"
ArrayLike: TypeAlias = "Sequence[float] | np.ndarray"

#: Names of the outputs of a gaussian adversary (a dict of three (n, K) tensors).
MIXTURE_OUTPUTS: tuple[str, str, str] = ("weights", "means", "log_sigmas")

# Samples per forward pass when evaluating, whatever the batch size of training.
_EVALUATION_CHUNK = 8192


# ---------------------------------------------------------------------------- configuration


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        msg = f"PivotConfig.{name} must be {kind}, got {value!r}"
        raise InvalidValueError(msg)


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not math.isfinite(float(value))
        or float(value) <= 0.0
    ):
        msg = f"PivotConfig.{name} must be a finite number > 0, got {value!r}"
        raise InvalidValueError(msg)


@dataclass(frozen=True)
class PivotConfig:
    """How a classifier is trained against an adversary.

    Attributes
    ----------
    lam
        λ, the weight of the adversary's loss in the classifier's: L_clf − λ · L_adv.
        0 is plain training.
    adversary
        ``"binary"`` (Z is 0 or 1; sigmoid, cross-entropy) or ``"gaussian"``
        (Z continuous; mixture density network, negative log-likelihood).
    n_components
        Gaussians of the mixture (``"gaussian"`` only).
    adversary_units
        Hidden ReLU layers of the adversary.
    condition_on_class
        The adversary sees the true class beside the score, so that the
        score is decorrelated from Z within each class.
    pretrain_epochs
        Epochs of the classifier alone (binary cross-entropy) first.
    adversary_pretrain_epochs
        Epochs of the adversary alone on the frozen pretrained classifier next.
    epochs
        Rounds of alternating training over the data then.
    adversary_steps
        Adversary batches per classifier batch in those rounds.
    batch_size, learning_rate, adversary_learning_rate
        Batch size of both; learning rates of the classifier and the adversary.
    optimizer
        ``"adam"``, or ``"sgd"`` (plain gradient descent, whose step is linear
        in the gradient: for tests and studies of the update).
    seed
        Seeds Keras (the adversary's initial weights) and the batch orders.
    """

    lam: float = 1.0
    adversary: Literal["binary", "gaussian"] = "binary"
    n_components: int = 5
    adversary_units: tuple[int, ...] = (32, 32)
    condition_on_class: bool = True
    pretrain_epochs: int = 2
    adversary_pretrain_epochs: int = 2
    epochs: int = 10
    adversary_steps: int = 1
    batch_size: int = 256
    learning_rate: float = 1e-3
    adversary_learning_rate: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        lam = self.lam
        if (
            isinstance(lam, bool)
            or not isinstance(lam, (int, float, np.number))
            or not math.isfinite(float(lam))
            or float(lam) < 0.0
        ):
            msg = f"PivotConfig.lam (λ) must be a finite number ≥ 0, got {lam!r}"
            raise InvalidValueError(msg)
        if self.adversary not in ("binary", "gaussian"):
            msg = f"PivotConfig.adversary must be 'binary' or 'gaussian', got {self.adversary!r}"
            raise InvalidValueError(msg)
        if self.optimizer not in ("adam", "sgd"):
            msg = f"PivotConfig.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}"
            raise InvalidValueError(msg)
        if not isinstance(self.condition_on_class, (bool, np.bool_)):
            msg = f"PivotConfig.condition_on_class must be True or False, got {self.condition_on_class!r}"
            raise InvalidValueError(msg)
        units = self.adversary_units
        if isinstance(units, (str, bytes)) or not isinstance(units, Sequence):
            msg = f"PivotConfig.adversary_units must be a tuple of positive integers, got {units!r}"
            raise InvalidValueError(msg)
        for unit in units:
            if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or unit < 1:
                msg = (
                    "PivotConfig.adversary_units must be a tuple of positive integers, "
                    f"got {units!r}"
                )
                raise InvalidValueError(msg)
        object.__setattr__(self, "adversary_units", tuple(int(unit) for unit in units))
        for name in ("n_components", "adversary_steps", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("pretrain_epochs", "adversary_pretrain_epochs", "epochs", "seed"):
            _check_int(name, getattr(self, name), 0)
        for name in ("learning_rate", "adversary_learning_rate"):
            _check_positive(name, getattr(self, name))


@dataclass
class PivotResult:
    """A classifier trained against an adversary, the adversary, and how training went.

    Attributes
    ----------
    classifier, adversary
        The trained Keras models (the classifier is the one passed, trained in place).
    history
        Lists of batch-averaged losses: ``pretrain_clf_loss`` (one per
        classifier pretraining epoch), ``pretrain_adv_loss`` (one per adversary
        pretraining epoch), and one per alternating round: ``clf_loss``,
        ``adv_loss``, ``total_loss`` (L_clf − λ · L_adv), with
        ``val_clf_loss``, ``val_adv_loss``, ``val_total_loss`` on the
        validation data (after each round) when it was given.
    config
        The `PivotConfig` of the run.
    """

    classifier: Any
    adversary: Any
    history: dict[str, list[float]] = field(default_factory=dict)
    config: PivotConfig = field(default_factory=PivotConfig)


# ---------------------------------------------------------------------------- losses


def pivot_loss(clf_loss: Any, adv_loss: Any, lam: float) -> Any:
    """The classifier's loss L_clf − λ · L_adv, for floats or tensors alike.

    The minus sign is the point: minimising this, the classifier *maximises*
    the adversary's loss, so it learns to hide Z from the adversary; the
    adversary itself minimises ``adv_loss``.

    Examples
    --------
    >>> pivot_loss(2.0, 0.5, 3.0)
    0.5
    """
    return clf_loss - lam * adv_loss


def _adversary_loss(config: PivotConfig) -> Callable[[Any, Any, Any], Any]:
    """L_adv(z, adversary output, sample weights), a weighted mean over the batch.

    The mean is Keras's: Σ w · loss / batch size, as for the classifier's loss.
    """
    keras = backend.keras()
    ops = keras.ops
    if config.adversary == "binary":
        cross_entropy = keras.losses.BinaryCrossentropy()
        return lambda z, output, weight: cross_entropy(z, output, sample_weight=weight)

    log_floor = math.log(keras.config.epsilon())
    half_log_two_pi = 0.5 * math.log(2.0 * math.pi)

    def negative_log_likelihood(z: Any, output: Any, weight: Any) -> Any:
        weights, means, log_sigmas = (output[name] for name in MIXTURE_OUTPUTS)
        # A floor keeps a component whose weight underflowed from giving log 0.
        log_weights = ops.maximum(ops.log(weights), log_floor)
        pulls = (ops.reshape(z, (-1, 1)) - means) * ops.exp(-log_sigmas)
        log_densities = -0.5 * ops.square(pulls) - log_sigmas - half_log_two_pi
        nll = -ops.logsumexp(log_weights + log_densities, axis=-1)
        return ops.sum(nll * ops.reshape(weight, (-1,))) / ops.cast(ops.shape(nll)[0], nll.dtype)

    return negative_log_likelihood


# ---------------------------------------------------------------------------- the adversary


def build_adversary(
    config: PivotConfig, *, n_inputs: int, z_center: float = 0.0, z_scale: float = 1.0
) -> keras.Model:
    """The adversary r: from (score logit[, class label]) to its prediction of Z, uncompiled.

    Parameters
    ----------
    config
        Its kind (``adversary``), ``adversary_units`` and ``n_components``.
    n_inputs
        Columns of its one input: 1 (the logit ln(p / (1 − p)) of the
        classifier's score p) or 2 (the logit and the true class label,
        ``condition_on_class``), as `train_pivot` feeds it.
    z_center, z_scale
        Where and how wide Z lies (``"gaussian"`` only): the network predicts
        the standardised (Z − center) / scale and its outputs are scaled back,
        so that they are in Z's units; `train_pivot` passes Z's mean and
        standard deviation.

    Returns
    -------
    keras.Model
        Input ``"adversary_input"`` of shape (n, ``n_inputs``). ``"binary"``:
        one sigmoid unit, P(Z = 1). ``"gaussian"``: a dict of three (n, K)
        tensors, ``"weights"`` (softmax, summing to 1), ``"means"`` and
        ``"log_sigmas"`` (natural logarithm of the widths) of the K Gaussians.
    """
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
        msg = (
            f"n_inputs must be a positive integer (1: score, 2: score and class), got {n_inputs!r}"
        )
        raise InvalidValueError(msg)
    if not (math.isfinite(z_center) and math.isfinite(z_scale) and z_scale > 0):
        msg = f"z_scale must be finite and > 0 and z_center finite, got {z_center!r}, {z_scale!r}"
        raise InvalidValueError(msg)
    keras = backend.keras()
    layers = keras.layers

    inputs = keras.Input((int(n_inputs),), name="adversary_input")
    hidden = inputs
    for i, units in enumerate(config.adversary_units):
        hidden = layers.Dense(units, activation="relu", name=f"adversary_hidden_{i}")(hidden)
    if config.adversary == "binary":
        output = layers.Dense(1, activation="sigmoid", name="p_z")(hidden)
        return keras.Model(inputs, output, name="binary_adversary")

    k = config.n_components
    weights = layers.Dense(k, activation="softmax", name="weights")(hidden)
    means = layers.Dense(k, name="standardised_means")(hidden)
    means = layers.Rescaling(z_scale, offset=z_center, name="means")(means)
    log_sigmas = layers.Dense(k, name="standardised_log_sigmas")(hidden)
    log_sigmas = layers.Rescaling(1.0, offset=math.log(z_scale), name="log_sigmas")(log_sigmas)
    outputs = {"weights": weights, "means": means, "log_sigmas": log_sigmas}
    return keras.Model(inputs, outputs, name="gaussian_adversary")


# ---------------------------------------------------------------------------- inputs


def _n_samples(x: Inputs) -> int:
    if isinstance(x, Mapping):
        if not x:
            msg = "x is an empty dict: the classifier needs at least one input"
            raise InvalidValueError(msg)
        lengths = {name: len(array) for name, array in x.items()}
        if len(set(lengths.values())) > 1:
            msg = f"the inputs in x have different numbers of samples: {lengths}"
            raise InvalidValueError(msg)
        return next(iter(lengths.values()))
    return len(x)


def _as_inputs(x: Inputs) -> Inputs:
    """Floating inputs as Keras's float type; others as they are."""

    def convert(array: Any) -> np.ndarray:
        array = np.asarray(array)
        return array.astype(np.float32) if array.dtype.kind == "f" else array

    if isinstance(x, Mapping):
        return {name: convert(array) for name, array in x.items()}
    return convert(x)


def _take(x: Inputs, index: np.ndarray | slice) -> Inputs:
    if isinstance(x, Mapping):
        return {name: array[index] for name, array in x.items()}
    return x[index]


def _column(name: str, values: Any, n: int, n_name: str = "x") -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f"{name} must be numbers, one per sample: {err}"
        raise InvalidValueError(msg) from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        msg = f"{name} must hold one value per sample (1-D), got shape {array.shape}"
        raise InvalidValueError(msg)
    if len(array) != n:
        msg = f"{n_name} has {n} samples but {name} has {len(array)}"
        raise InvalidValueError(msg)
    if not np.isfinite(array).all():
        msg = f"{name} has {int((~np.isfinite(array)).sum())} non-finite value(s)"
        raise InvalidValueError(msg)
    return array


def _binary(name: str, values: np.ndarray) -> None:
    unexpected = np.unique(values[(values != 0) & (values != 1)])
    if unexpected.size:
        msg = f"{name} must hold 0 and 1 only; found {unexpected[:5].tolist()}"
        raise InvalidValueError(msg)


@dataclass(frozen=True)
class _Data:
    x: Inputs
    y: np.ndarray  # (n, 1) float32
    z: np.ndarray  # (n, 1) float32
    weight: np.ndarray  # (n,) float32

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: np.ndarray) -> tuple[Inputs, np.ndarray, np.ndarray, np.ndarray]:
        return _take(self.x, index), self.y[index], self.z[index], self.weight[index]


def _data(
    x: Inputs,
    y: ArrayLike,
    z: ArrayLike,
    config: PivotConfig,
    sample_weight: ArrayLike | None = None,
    *,
    what: str = "",
) -> _Data:
    """Checked inputs: same lengths, labels 0/1, Z 0/1 for a binary adversary."""
    n = _n_samples(x)
    if n == 0:
        msg = f"x{what} has no samples"
        raise InvalidValueError(msg)
    labels = _column(f"y{what}", y, n, f"x{what}")
    _binary(f"y{what} (the class labels)", labels)
    nuisance = _column(f"z{what}", z, n, f"x{what}")
    if config.adversary == "binary":
        _binary(
            f"z{what} (a binary adversary's Z; use adversary='gaussian' for a continuous Z)",
            nuisance,
        )
    if sample_weight is None:
        weight = np.ones(n)
    else:
        weight = _column(f"sample_weight{what}", sample_weight, n, f"x{what}")
        if (weight < 0).any():
            msg = (
                f"sample_weight{what} must be ≥ 0; {int((weight < 0).sum())} value(s) are negative"
            )
            raise InvalidValueError(msg)
    return _Data(
        _as_inputs(x),
        labels.astype(np.float32)[:, None],
        nuisance.astype(np.float32)[:, None],
        weight.astype(np.float32),
    )


def _check_classifier(classifier: Any, data: _Data) -> None:
    """The classifier takes x and gives one probability per sample."""
    try:
        probe = np.asarray(classifier(_take(data.x, slice(0, 1)), training=False))
    except (KeyError, TypeError, ValueError) as err:
        msg = f"the classifier cannot take x: {type(err).__name__}: {err}"
        raise InvalidValueError(msg) from err
    if probe.shape not in ((1, 1), (1,)):
        msg = (
            "the classifier must have one sigmoid output, P(class 1), of shape (n, 1); "
            f"it gives shape {probe.shape[1:]} per sample"
        )
        raise InvalidValueError(msg)
    if not ((probe >= 0) & (probe <= 1)).all():
        msg = (
            f"the classifier must end in a sigmoid (P(class 1) in [0, 1]); it gave {probe.ravel()}"
        )
        raise InvalidValueError(msg)


def _signature(tf: Any, data: _Data) -> list[Any]:
    """tf.function input signature of one batch, any batch size: traced once."""

    def spec(array: np.ndarray) -> Any:
        return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))

    x = {k: spec(v) for k, v in data.x.items()} if isinstance(data.x, Mapping) else spec(data.x)
    return [x, spec(data.y), spec(data.z), spec(data.weight)]


# ---------------------------------------------------------------------------- batches


def _epoch_batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of ``order``, the last one shorter (as ``model.fit`` does)."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class _AdversaryBatches:
    """Endless batches of one size for the adversary, walking through reshuffled epochs."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator) -> None:
        self.n, self.size, self.rng = n, min(batch_size, n), rng
        self.order, self.position = rng.permutation(n), 0

    def next(self) -> np.ndarray:
        parts, needed = [], self.size
        while needed:
            if self.position == self.n:
                self.order, self.position = self.rng.permutation(self.n), 0
            part = self.order[self.position : self.position + needed]
            self.position += len(part)
            needed -= len(part)
            parts.append(part)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def per_epoch(self) -> int:
        return math.ceil(self.n / self.size)


class _Mean:
    """A running mean of batch losses, weighted by batch size."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: Any, count: int) -> None:
        self.total += float(value) * count
        self.count += count

    def value(self) -> float:
        return self.total / self.count if self.count else math.nan


# ---------------------------------------------------------------------------- training


def _optimizer(keras: Any, config: PivotConfig, learning_rate: float) -> Any:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate)
    return keras.optimizers.Adam(learning_rate)


class _Steps:
    """The three training steps, each one traced tf.function."""

    def __init__(self, classifier: Any, adversary: Any, config: PivotConfig, data: _Data) -> None:
        keras = backend.keras()
        tf = extras.tensorflow()
        ops = keras.ops
        self.classifier, self.adversary = classifier, adversary
        clf_optimizer = _optimizer(keras, config, config.learning_rate)
        adv_optimizer = _optimizer(keras, config, config.adversary_learning_rate)
        # Built here, eagerly: an optimiser cannot make its variables inside a tf.function.
        clf_optimizer.build(classifier.trainable_variables)
        adv_optimizer.build(adversary.trainable_variables)
        cross_entropy = keras.losses.BinaryCrossentropy()
        adversary_loss = _adversary_loss(config)
        lam = float(config.lam)
        conditioned = config.condition_on_class

        def adversary_inputs(score: Any, y: Any) -> Any:
            return _adversary_inputs(keras, score, y, conditioned=conditioned)

        def classifier_loss(x: Any, y: Any, weight: Any) -> tuple[Any, Any]:
            score = classifier(x, training=True)
            # As Model.fit: the cross-entropy plus the model's own (regularisation) losses.
            loss = cross_entropy(y, score, sample_weight=weight)
            if classifier.losses:
                loss = loss + ops.sum(classifier.losses)
            return score, loss

        def update(optimizer: Any, tape: Any, loss: Any, variables: list[Any]) -> None:
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables, strict=True))

        def classifier_alone(x: Any, y: Any, z: Any, weight: Any) -> Any:
            with tf.GradientTape() as tape:
                _, loss = classifier_loss(x, y, weight)
                scaled = clf_optimizer.scale_loss(loss)
            update(clf_optimizer, tape, scaled, classifier.trainable_variables)
            return loss

        def adversary_step(x: Any, y: Any, z: Any, weight: Any) -> Any:
            score = classifier(x, training=False)  # the classifier is fixed here
            with tf.GradientTape() as tape:
                loss = adversary_loss(
                    z, adversary(adversary_inputs(score, y), training=True), weight
                )
                scaled = adv_optimizer.scale_loss(loss)
            update(adv_optimizer, tape, scaled, adversary.trainable_variables)
            return loss

        def classifier_step(x: Any, y: Any, z: Any, weight: Any) -> tuple[Any, Any, Any]:
            with tf.GradientTape() as tape:
                score, clf_loss = classifier_loss(x, y, weight)
                adv_output = adversary(adversary_inputs(score, y), training=False)
                adv_loss = adversary_loss(z, adv_output, weight)
                total = pivot_loss(clf_loss, adv_loss, lam)
                scaled = clf_optimizer.scale_loss(total)
            # Only the classifier's variables: the adversary is held fixed.
            update(clf_optimizer, tape, scaled, classifier.trainable_variables)
            return clf_loss, adv_loss, total

        signature = _signature(tf, data)
        self.classifier_alone = tf.function(classifier_alone, input_signature=signature)
        self.adversary_step = tf.function(adversary_step, input_signature=signature)
        self.classifier_step = tf.function(classifier_step, input_signature=signature)


def _score_logit(keras: Any, score: Any) -> Any:
    """ln(p / (1 − p)) of the scores p, clipped to [ε, 1 − ε] first (ε = Keras's epsilon).

    What the adversary reads. A one-to-one function of the score, so a logit
    independent of Z is a score independent of Z; but where a sigmoid
    saturates, p = 0.999 and 0.99999 are far apart in the logit, and an
    adversary fed p itself learns much more slowly what Z does there.
    """
    ops, epsilon = keras.ops, keras.config.epsilon()
    p = ops.clip(ops.reshape(score, (-1, 1)), epsilon, 1.0 - epsilon)
    return ops.log(p) - ops.log1p(-p)


def _adversary_inputs(keras: Any, score: Any, y: Any, *, conditioned: bool) -> Any:
    """The adversary's input: the score's logit, and the class label beside it when conditioned."""
    logit = _score_logit(keras, score)
    if not conditioned:
        return logit
    return keras.ops.concatenate([logit, keras.ops.cast(y, logit.dtype)], axis=-1)


def _forward(classifier: Any, adversary: Any, config: PivotConfig, data: _Data) -> tuple[Any, Any]:
    """(scores (n, 1), adversary outputs) of the whole data, in chunks."""
    keras = backend.keras()
    ops = keras.ops
    n = len(data)
    scores = []
    for start in range(0, n, _EVALUATION_CHUNK):
        chunk = _take(data.x, slice(start, start + _EVALUATION_CHUNK))
        scores.append(ops.reshape(classifier(chunk, training=False), (-1, 1)))
    score = ops.concatenate(scores, axis=0) if len(scores) > 1 else scores[0]
    inputs = _adversary_inputs(keras, score, data.y, conditioned=config.condition_on_class)
    return score, adversary(inputs, training=False)


def _losses(classifier: Any, adversary: Any, config: PivotConfig, data: _Data) -> dict[str, float]:
    keras = backend.keras()
    score, output = _forward(classifier, adversary, config, data)
    clf_loss = float(keras.losses.BinaryCrossentropy()(data.y, score, sample_weight=data.weight))
    adv_loss = float(_adversary_loss(config)(data.z, output, data.weight))
    return {
        "clf_loss": clf_loss,
        "adv_loss": adv_loss,
        "total": float(pivot_loss(clf_loss, adv_loss, config.lam)),
    }


def train_pivot(
    classifier: keras.Model,
    x: Inputs,
    y: ArrayLike,
    z: ArrayLike,
    config: PivotConfig,
    *,
    sample_weight: ArrayLike | None = None,
    validation: tuple[Inputs, ArrayLike, ArrayLike] | None = None,
) -> PivotResult:
    """Train ``classifier`` against an adversary that predicts ``z`` from its output.

    Algorithm 1 of Louppe et al.: the classifier alone for
    ``config.pretrain_epochs`` (binary cross-entropy); the adversary alone on
    the frozen classifier for ``config.adversary_pretrain_epochs``; then
    ``config.epochs`` rounds in which every classifier batch is preceded by
    ``config.adversary_steps`` adversary batches (minimising L_adv) and the
    classifier takes one step on L_clf − λ · L_adv with the adversary fixed.
    The classifier keeps one optimiser throughout.

    Parameters
    ----------
    classifier
        A built Keras model with one sigmoid output, P(class 1), of shape
        (n, 1); compiled or not (its own optimiser and loss are not used).
        Trained in place.
    x
        Its inputs: an array or a dict of arrays, one row per sample.
    y
        Class labels, 0 or 1.
    z
        The nuisance: 0 or 1 for ``adversary="binary"``, any number for
        ``"gaussian"``.
    config
        λ, the adversary, epochs, batch size, learning rates and seed.
    sample_weight
        Weights of the samples in both losses (Keras's weighted mean:
        Σ w · loss / batch size).
    validation
        ``(x, y, z)`` evaluated after every round (``val_*`` in the history).

    Returns
    -------
    PivotResult

    Notes
    -----
    Deterministic for a seed: Keras is seeded with ``config.seed`` (the
    adversary's initial weights), and the classifier's epochs, pretraining
    ones first, see the samples in the orders of successive
    ``numpy.random.default_rng(config.seed).permutation(n)`` calls, in
    consecutive batches of ``batch_size`` (the last one shorter), as
    ``model.fit(..., shuffle=False)`` would on data so permuted. The
    adversary draws its batches from a generator of its own, so with λ = 0
    the classifier's training is exactly plain training, whatever the
    adversary does.
    """
    keras = backend.keras()
    if not isinstance(config, PivotConfig):
        msg = f"config must be a PivotConfig, got {type(config).__name__}"
        raise InvalidValueError(msg)
    data = _data(x, y, z, config, sample_weight)
    _check_classifier(classifier, data)
    val_data = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 3:
            msg = "validation must be a tuple (x, y, z)"
            raise InvalidValueError(msg)
        val_data = _data(*validation, config, what=" of the validation data")

    keras.utils.set_random_seed(config.seed)
    z_values = data.z[:, 0].astype(np.float64)
    z_scale = float(z_values.std()) or 1.0
    adversary = build_adversary(
        config,
        n_inputs=2 if config.condition_on_class else 1,
        z_center=float(z_values.mean()),
        z_scale=z_scale,
    )
    steps = _Steps(classifier, adversary, config, data)
    clf_rng = np.random.default_rng(config.seed)
    adversary_batches = _AdversaryBatches(
        len(data), config.batch_size, np.random.default_rng((config.seed, 1))
    )
    history: dict[str, list[float]] = {"pretrain_clf_loss": [], "pretrain_adv_loss": []}
    for name in ("clf_loss", "adv_loss", "total_loss"):
        history[name] = []
        if val_data is not None:
            history[f"val_{name}"] = []

    for epoch in range(config.pretrain_epochs):
        mean = _Mean()
        for index in _epoch_batches(clf_rng.permutation(len(data)), config.batch_size):
            mean.add(steps.classifier_alone(*data.batch(index)), len(index))
        history["pretrain_clf_loss"].append(mean.value())
        logger.info("classifier pretraining epoch %d: L_clf %.4f", epoch + 1, mean.value())

    for epoch in range(config.adversary_pretrain_epochs):
        mean = _Mean()
        for _ in range(adversary_batches.per_epoch()):
            index = adversary_batches.next()
            mean.add(steps.adversary_step(*data.batch(index)), len(index))
        history["pretrain_adv_loss"].append(mean.value())
        logger.info("adversary pretraining epoch %d: L_adv %.4f", epoch + 1, mean.value())

    for round_number in range(config.epochs):
        means = {name: _Mean() for name in ("clf_loss", "adv_loss", "total_loss")}
        for index in _epoch_batches(clf_rng.permutation(len(data)), config.batch_size):
            for _ in range(config.adversary_steps):
                steps.adversary_step(*data.batch(adversary_batches.next()))
            losses = steps.classifier_step(*data.batch(index))
            for mean, value in zip(means.values(), losses, strict=True):
                mean.add(value, len(index))
        for name, mean in means.items():
            history[name].append(mean.value())
        if val_data is not None:
            val = _losses(classifier, adversary, config, val_data)
            history["val_clf_loss"].append(val["clf_loss"])
            history["val_adv_loss"].append(val["adv_loss"])
            history["val_total_loss"].append(val["total"])
        logger.info(
            "round %d: L_clf %.4f, L_adv %.4f, L_clf − λ·L_adv %.4f",
            round_number + 1,
            *(history[name][-1] for name in ("clf_loss", "adv_loss", "total_loss")),
        )
    return PivotResult(classifier, adversary, history, config)


def evaluate_losses(result: PivotResult, x: Inputs, y: ArrayLike, z: ArrayLike) -> dict[str, float]:
    """The losses of a trained pair on ``(x, y, z)``.

    Returns
    -------
    dict
        ``clf_loss`` (binary cross-entropy), ``adv_loss`` (the adversary's
        cross-entropy or negative log-likelihood) and ``total``
        (L_clf − λ · L_adv with the run's λ).
    """
    data = _data(x, y, z, result.config)
    return _losses(result.classifier, result.adversary, result.config, data)


# ---------------------------------------------------------------------------- Z dependence


def _js_divergence_bits(counts_p: np.ndarray, counts_q: np.ndarray) -> float:
    """Jensen–Shannon divergence of two histograms, in bits (0 to 1)."""
    p = counts_p / counts_p.sum()
    q = counts_q / counts_q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def _mean_divergence(score: np.ndarray, groups: np.ndarray, edges: np.ndarray, where: str) -> float:
    present = np.unique(groups)
    if len(present) < 2:
        msg = (
            f"z_groups must hold at least 2 groups{where} to compare; "
            f"found {len(present)} ({present.tolist()})"
        )
        raise InvalidValueError(msg)
    histograms = [np.histogram(score[groups == g], bins=edges)[0] for g in present]
    reference = histograms[0]  # the lowest Z group
    return float(np.mean([_js_divergence_bits(h, reference) for h in histograms[1:]]))


def z_dependence(
    score: ArrayLike,
    z_groups: ArrayLike,
    *,
    y: ArrayLike | None = None,
    bins: int | ArrayLike = 20,
) -> float:
    """How much the score distribution depends on Z: 0 when not at all, 1 at most.

    The Jensen–Shannon divergence, in bits, between the score histogram of
    each Z group and that of the lowest one, averaged over the other groups.
    With ``y`` this is done within each class and averaged over the classes,
    the dependence a cut on the score would show as an efficiency varying
    with Z. Finite samples give a small positive value even when the score
    does not depend on Z (the histograms fluctuate); compare values for
    samples of the same size.

    Parameters
    ----------
    score
        The classifier output, one value per sample.
    z_groups
        The Z group of each sample (e.g. 0/1 for low/high pile-up, or the bin
        index of a continuous Z); groups are ordered by value.
    y
        Class labels; when given, the divergence is computed per class.
    bins
        Number of equal-width bins over the range of all scores, or the edges.

    Examples
    --------
    >>> z_dependence([0.1, 0.9, 0.1, 0.9], [0, 0, 1, 1])
    0.0
    """
    s = _column("score", score, len(np.asarray(score)), "score")
    groups = np.asarray(z_groups)
    if groups.ndim != 1:
        msg = f"z_groups must hold one group per sample (1-D), got shape {groups.shape}"
        raise InvalidValueError(msg)
    if len(groups) != len(s):
        msg = f"score has {len(s)} samples but z_groups has {len(groups)}"
        raise InvalidValueError(msg)
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            msg = f"bins must be a positive number of bins or the bin edges, got {bins!r}"
            raise InvalidValueError(msg)
        edges = np.histogram_bin_edges(s, bins=int(bins))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or (np.diff(edges) <= 0).any():
            msg = "bins given as edges must be at least 2 increasing numbers"
            raise InvalidValueError(msg)
    if y is None:
        return _mean_divergence(s, groups, edges, "")
    labels = _column("y", y, len(s), "score")
    classes = np.unique(labels)
    return float(
        np.mean(
            [
                _mean_divergence(s[labels == c], groups[labels == c], edges, f" in class {c:g}")
                for c in classes
            ]
        )
    )


# ---------------------------------------------------------------------------- λ scan


def _default_groups(z: np.ndarray, config: PivotConfig) -> np.ndarray:
    """Z itself for a binary adversary; its quintiles for a gaussian one."""
    if config.adversary == "binary":
        return z.astype(np.int64)
    return np.searchsorted(np.quantile(z, [0.2, 0.4, 0.6, 0.8]), z, side="right")


def lambda_scan(
    build_classifier: Callable[[], keras.Model],
    x: Inputs,
    y: ArrayLike,
    z: ArrayLike,
    lams: Sequence[float],
    config: PivotConfig,
    *,
    x_test: Inputs,
    y_test: ArrayLike,
    z_test: ArrayLike,
    z_groups_test: ArrayLike | None = None,
) -> pd.DataFrame:
    """Train a fresh classifier for each λ and measure accuracy against Z dependence.

    Keras is seeded with ``config.seed`` before every ``build_classifier()``,
    so every λ starts from the same weights; the rest of ``config`` is kept.

    Parameters
    ----------
    build_classifier
        No arguments → a new (uncompiled) classifier, as `train_pivot` takes.
    x, y, z
        Training data.
    lams
        The λ values.
    config
        Everything but λ.
    x_test, y_test, z_test
        Data the rows are measured on.
    z_groups_test
        Groups for `z_dependence`; by default ``z_test`` itself for a binary
        adversary and its quintiles for a gaussian one.

    Returns
    -------
    pandas.DataFrame
        One row per λ: ``lam``, ``auc`` (`calotools.metrics.auc` on the test
        data), ``z_dependence`` (within each class when
        ``config.condition_on_class``), ``clf_loss`` and ``adv_loss`` (test data).
    """
    keras = backend.keras()
    n_test = _n_samples(x_test)
    z_column = _column("z_test", z_test, n_test, "x_test")
    groups = (
        _default_groups(z_column, config) if z_groups_test is None else np.asarray(z_groups_test)
    )
    test = _data(x_test, y_test, z_test, config, what="_test")
    rows = []
    for lam in lams:
        run_config = dataclasses.replace(config, lam=lam)
        keras.utils.set_random_seed(config.seed)
        result = train_pivot(build_classifier(), x, y, z, run_config)
        score = np.asarray(_forward(result.classifier, result.adversary, run_config, test)[0])[:, 0]
        labels = test.y[:, 0]
        losses = _losses(result.classifier, result.adversary, run_config, test)
        rows.append(
            {
                "lam": float(lam),
                "auc": metrics.auc(labels, score),
                "z_dependence": z_dependence(
                    score, groups, y=labels if config.condition_on_class else None
                ),
                "clf_loss": losses["clf_loss"],
                "adv_loss": losses["adv_loss"],
            }
        )
    return pd.DataFrame(rows, columns=["lam", "auc", "z_dependence", "clf_loss", "adv_loss"])
