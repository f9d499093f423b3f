"""Keras layers of calotools' own: batch normalisation in one fused kernel.

Keras 3 normalises a batch in many small operations (the mean, the squared
deviations, their mean, then scale and shift, and as many again for the
gradient), each a full pass over the feature maps. On the small images of the
pion networks those passes, not the convolutions, were the DenseNet's largest
cost on a CPU: without batch normalisation it trained 1.8 times faster
(``docs/performance.md``). `FusedBatchNormalization` does the same arithmetic
with TensorFlow's fused kernel (one pass forward, one backward; oneDNN on a
CPU, cuDNN on a GPU), so a network that uses it runs unchanged on both.

The layer is registered with Keras as ``calotools>FusedBatchNormalization``,
so saved models load in Keras' safe mode once `register` has run
(`calotools.models.load_network` calls it). Keras is imported on first use,
like everywhere in calotools.

Examples
--------
>>> from calotools import layers
>>> bn = layers.fused_batch_normalization(momentum=0.9, name="bn")  # doctest: +SKIP
>>> bn.get_config()["momentum"]  # doctest: +SKIP
0.9
"""

from __future__ import annotations

import functools
from typing import Any

from calotools import backend, extras

__all__ = ["fused_batch_normalization", "register"]


@functools.cache
def register() -> type:
    """Define and register the layer class with Keras (once); return it."""
    keras = backend.keras()
    tf = extras.tensorflow()
    # Any: backend.keras() is a plain ModuleType to mypy, so Layer is no valid base for it.
    base: Any = keras.layers.Layer

    @keras.saving.register_keras_serializable(package="calotools")
    class FusedBatchNormalization(base):
        """Batch normalisation over the last axis of NHWC images, in TensorFlow's fused kernel.

        Training normalises with the batch's mean and (biased) variance and
        moves the averages by ``momentum``, as ``keras.layers.BatchNormalization``
        does; inference uses the averages.
        """

        def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.momentum = float(momentum)
            self.epsilon = float(epsilon)

        def build(self, input_shape: Any) -> None:
            if len(input_shape) != 4:
                msg = (
                    f"{self.name}: FusedBatchNormalization takes images (batch, η, φ, "
                    f"channels), got the shape {tuple(input_shape)}"
                )
                raise ValueError(msg)
            channels = (int(input_shape[-1]),)
            self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")
            self.moving_mean = self.add_weight(
                shape=channels, initializer="zeros", name="moving_mean", trainable=False
            )
            self.moving_variance = self.add_weight(
                shape=channels, initializer="ones", name="moving_variance", trainable=False
            )

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            inputs = tf.cast(inputs, "float32")  # statistics in float32, as Keras does
            if training and self.trainable:
                outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                    inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
                )
                # The kernel returns the unbiased variance; Keras averages the biased one.
                n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
                variance = variance * (n - 1.0) / n
                keep = self.momentum
                self.moving_mean.assign(self.moving_mean * keep + mean * (1.0 - keep))
                self.moving_variance.assign(self.moving_variance * keep + variance * (1.0 - keep))
            else:
                outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                    inputs,
                    self.gamma,
                    self.beta,
                    mean=self.moving_mean,
                    variance=self.moving_variance,
                    epsilon=self.epsilon,
                    is_training=False,
                )
            return tf.cast(outputs, self.compute_dtype)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}

    return FusedBatchNormalization


def fused_batch_normalization(
    *, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None
) -> Any:
    """A new `FusedBatchNormalization` layer (see the module docstring)."""
    return register()(momentum=momentum, epsilon=epsilon, name=name)
