"""Layers with Keras's names, arguments and weight layouts (channels_last)."""

from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer
from cnnlab.layers.normalization import BatchNormalization
from cnnlab.layers.pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

Convolution2D = Conv2D

__all__ = [
    "Layer",
    "Conv2D",
    "Convolution2D",
    "Dense",
    "Flatten",
    "Activation",
    "Dropout",
    "Input",
    "InputLayer",
    "MaxPooling2D",
    "MaxPool2D",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
]
