"""Layers with Keras's names, arguments and weight layouts (channels_last)."""

from cnnlab.layers.activation_layers import LeakyReLU, ReLU, Softmax
from cnnlab.layers.augmentation import RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, SpatialDropout2D
from cnnlab.layers.depthwise import DepthwiseConv2D, SeparableConv2D
from cnnlab.layers.merging import Add, Average, Concatenate, Maximum, Merge, Multiply, Subtract
from cnnlab.layers.normalization import BatchNormalization
from cnnlab.layers.pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from cnnlab.layers.preprocessing import Rescaling
from cnnlab.layers.reshaping import Cropping2D, Permute, Reshape, UpSampling2D, ZeroPadding2D

Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D

__all__ = [
    "Layer",
    "Conv2D",
    "Convolution2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "SeparableConvolution2D",
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
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPooling2D",
    "GlobalMaxPool2D",
    "ZeroPadding2D",
    "Cropping2D",
    "UpSampling2D",
    "Reshape",
    "Permute",
    "SpatialDropout2D",
    "Rescaling",
    "RandomFlip",
    "RandomTranslation",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "Merge",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Concatenate",
]
