"""Shared activation handling for layers with an ``activation=`` argument (Conv2D, Dense).

The layer computes ``z`` (its affine part), then ``y = activation(z)``. During
training it keeps ``y`` for the activation's gradient and, for softmax/sigmoid,
``z`` too: a model whose loss is cross-entropy then takes loss and gradient from
these logits, as Keras's TensorFlow backend does.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops import activations as act_ops

LOGIT_ACTIVATIONS = ("softmax", "sigmoid")


class ActivationMixin:
    activation: str
    last_logits: np.ndarray | None = None
    _activated_output: np.ndarray | None = None
    _activation_input: np.ndarray | None = None

    def activate(self, z: np.ndarray, training: bool) -> np.ndarray:
        if self.activation == "relu":
            y = np.maximum(z, 0, out=z)  # z is our own temporary; no need to keep it
        else:
            y = act_ops.ACTIVATIONS[self.activation][0](z)
        if training:
            self._activated_output = y
            # elu, gelu, silu, ... need their input for the gradient (z is not overwritten for them)
            self._activation_input = z if self.activation in act_ops.NEEDS_INPUT else None
            self.last_logits = z if self.activation in LOGIT_ACTIVATIONS else None
        return y

    def activation_backward(self, dy: np.ndarray, from_logits: bool) -> np.ndarray:
        """Gradient with respect to ``z``; ``from_logits`` means ``dy`` already is."""
        if from_logits or self.activation == "linear":
            return dy
        return act_ops.ACTIVATIONS[self.activation][1](self._activation_input, self._activated_output, dy)

    def release_activation(self) -> None:
        self._activated_output = None
        self._activation_input = None
        self.last_logits = None
