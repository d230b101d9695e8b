"""The course models after the lecture, written once against a module called ``keras``.

``keras`` is either cnnlab itself (the default: cnnlab has Keras's top-level names) or real
Keras 3, so the same definition trains in both, and a benchmark compares them with nothing but
the import changed. This module imports nothing from cnnlab at load time, so a Keras-only
environment can load it by its path.

- :func:`simple_mnist_convnet`: keras.io "Simple MNIST convnet" (F. Chollet) verbatim;
  pixels / 255 outside the model (34,826 parameters).
- :func:`from_scratch_sequential`: a Sequential network in the style of keras.io "Image
  classification from scratch" for 28 x 28 x 1: augmentation, Rescaling, BatchNormalization,
  SeparableConv2D, global average pooling, Dropout; raw 0..255 pixels in (13,802 parameters,
  448 of them BatchNormalization's non-trainable moving statistics).
"""

from __future__ import annotations

from typing import Any

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


def _module(keras: Any) -> Any:
    if keras is None:
        import cnnlab as keras

    return keras


def simple_mnist_convnet(keras: Any = None) -> Any:
    """keras.io "Simple MNIST convnet", character for character. x: (N, 28, 28, 1) -> (N, 10)."""
    keras = _module(keras)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )


def from_scratch_sequential(keras: Any = None) -> Any:
    """keras.io "Image classification from scratch", as a small Sequential for 28 x 28 x 1.

    x: (N, 28, 28, 1) raw 0..255 pixels -> (N, 10) probabilities.
    """
    keras = _module(keras)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.05),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 3, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.SeparableConv2D(64, 3, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(3, strides=2, padding="same"),
            layers.SeparableConv2D(128, 3, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.25),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )


#: name: (builder, epochs of the keras.io recipe, pixels scaled by 1/255 before the model?)
RECIPES = {
    "simple": (simple_mnist_convnet, 15, True),
    "scratch": (from_scratch_sequential, 10, False),
}
