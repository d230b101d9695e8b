"""Reading and writing the model files real Keras writes: ``.keras`` (Keras 3) and legacy HDF5
(``.h5`` / ``.hdf5``, tf.keras 2.x and Keras 3's legacy writer). Neither TensorFlow nor Keras
is needed; the HDF5 parts are read with ``h5py``, the library Keras itself uses.

Reading is done in two separate steps, so that other model kinds can be plugged in:

* :func:`layer_from_keras` turns ONE Keras layer entry (``{"class_name", "config", ...}``) into a
  cnnlab layer, refusing anything cnnlab cannot compute exactly as Keras would (a Lambda or custom
  layer, ``data_format="channels_first"``, an argument value cnnlab would ignore ...);
* :func:`model_from_keras_config` builds the model from the model entry. ``Sequential`` configs
  (Keras 3's, tf.keras 2's, and the old bare list of layers) become a ``cl.Sequential``; functional
  configs (Keras 3's, and tf.keras 2's legacy ``inbound_nodes`` lists) a ``cl.Model`` through
  ``cl.Model.from_config(cfg, layer_from_config=...)``, nested models included.

Weights are matched the way Keras matches them:

* ``.keras``: the archive's ``model.weights.h5`` holds ``layers/<group>/vars/<i>``, where ``<group>``
  is the layer's class name in snake case numbered per class in model order (``conv2d``,
  ``conv2d_1`` ...; Keras's ``saving_lib._save_container_state``, never the layer's own name), and
  ``<i>`` are the layer's variables in order (trainable ones first), sorted as integers (``"10"``
  after ``"9"``). A functional model's groups are numbered in the order of its config's ``layers``
  (the input layers included), a nested model's under ``<group>/layers/...``. The optimizer's
  variables are under ``optimizer/vars/<i>``: the step counter, the learning rate
  (unless it is a schedule), then the slots of each trainable variable in turn
  (Adam: momentum, velocity of the first variable, then of the second ...), then extra scalars
  (Nadam's ``u_product``).
* legacy HDF5: ``model_weights`` lists ``layer_names`` and, per layer, ``weight_names``; weights go
  to the layers that have weights in the order of these lists, never by name (Keras's
  ``legacy_h5_format.load_weights_from_hdf5_group``). Attributes can be bytes or str, and long
  lists are split into ``layer_names0``, ``layer_names1`` ...

Never is code from a file executed: configs are JSON read into plain data, only the classes of the
table below are built, HDF5 external links, virtual and externally stored datasets are refused, and
pickled NumPy objects (Keras's ``.npz`` weights variant stores pickled dicts) are never unpickled.

Writing (``model.save("net.keras")`` / ``"net.h5"``) uses the conservative profile every Keras 3.x
accepts: exactly three zip members, dtype as a string, only configuration keys Keras 3.0 already
knew; the compile configuration and the optimizer's variables are written so that Keras's ``fit``
continues the same optimization. (Checked: Keras 3.15.1 on the torch and numpy backends and Keras 3.0.5
on jax load these files and predict the same numbers; tests/test_keras_interop.py.)
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import config as config_mod
from cnnlab import layers as L
from cnnlab import losses as losses_mod
from cnnlab import optimizers as optimizers_mod
from cnnlab._atomic import atomic_path
from cnnlab.errors import ArgumentTypeError, InvalidArgumentError, ModelFileError
from cnnlab.layers.base import Layer, snake_case
from cnnlab.models import Sequential
from cnnlab.models.functional import Model

#: suffixes written in Keras's formats by ``model.save``
KERAS_SUFFIX = ".keras"
H5_SUFFIXES = (".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: the Keras version whose file profile cnnlab writes (every later 3.x reads it)
WRITTEN_KERAS_VERSION = "3.0.0"
CHANNELS_LAST = (None, "channels_last")
#: largest config.json accepted (a real one is a few tens of KB)
MAX_CONFIG_BYTES = 64 * 2**20


# ====================================================================== layer table
class _Spec:
    """How one Keras layer class maps to a cnnlab class.

    ``args``: Keras arguments passed to the cnnlab class (same names); ``neutral``: arguments cnnlab
    does not have, accepted only with the listed values (those where Keras computes what cnnlab
    computes); ``ignored``: arguments that never change what a loaded model computes."""

    def __init__(
        self,
        cls: type[Layer],
        args: tuple[str, ...] = (),
        neutral: dict[str, tuple[Any, ...]] | None = None,
        ignored: tuple[str, ...] = (),
        write_extra: dict[str, Any] | None = None,
    ) -> None:
        self.cls = cls
        self.args = args
        self.neutral = neutral or {}
        self.ignored = ignored
        #: keys Keras 3.0 expects in the config that cnnlab's get_config does not hold
        self.write_extra = write_extra or {}


_RULES = ("kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint")
_INITS = ("kernel_initializer", "bias_initializer")
_BN_INITS = ("beta_initializer", "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer")
_FORMAT = {"data_format": CHANNELS_LAST}
_DEPTHWISE = ("kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate", "activation", "use_bias")
_RESAMPLING = ("fill_mode", "interpolation", "fill_value", "seed")


def _rules(*prefixes: str) -> tuple[str, ...]:
    return tuple(f"{p}_{kind}" for kind in ("regularizer", "constraint") for p in prefixes)


def _no_rules(*prefixes: str) -> dict[str, None]:
    return dict.fromkeys(_rules(*prefixes))


_POOL = _Spec(
    L.MaxPooling2D, ("pool_size", "strides", "padding"), _FORMAT, write_extra={"data_format": "channels_last"}
)

SPECS: dict[str, _Spec] = {
    "Conv2D": _Spec(
        L.Conv2D,
        (
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "dilation_rate",
            "groups",
            "activation",
            "use_bias",
            *_INITS,
            *_RULES,
        ),
        {**_FORMAT, "activity_regularizer": (None,), "lora_rank": (None,)},
        ("lora_alpha",),
        {"data_format": "channels_last", "groups": 1, "activity_regularizer": None},
    ),
    # weights in Keras's order: kernel (kh, kw, C, depth_multiplier), bias (Keras 2 names the kernel
    # depthwise_kernel; legacy files are matched by order, not name)
    "DepthwiseConv2D": _Spec(
        L.DepthwiseConv2D,
        (*_DEPTHWISE, "depthwise_initializer", "bias_initializer", *_rules("depthwise", "bias")),
        {**_FORMAT, "activity_regularizer": (None,)},
        write_extra={"data_format": "channels_last", "activity_regularizer": None, **_no_rules("depthwise", "bias")},
    ),
    # weights in Keras's order: depthwise_kernel, pointwise_kernel, bias
    "SeparableConv2D": _Spec(
        L.SeparableConv2D,
        (
            "filters",
            *_DEPTHWISE,
            "depthwise_initializer",
            "pointwise_initializer",
            "bias_initializer",
            *_rules("depthwise", "pointwise", "bias"),
        ),
        {**_FORMAT, "activity_regularizer": (None,)},
        write_extra={
            "data_format": "channels_last",
            "activity_regularizer": None,
            **_no_rules("depthwise", "pointwise", "bias"),
        },
    ),
    **{name: _Spec(getattr(L, name)) for name in ("Add", "Subtract", "Multiply", "Average", "Maximum")},
    "Concatenate": _Spec(L.Concatenate, ("axis",)),
    # augmentation: the identity at inference, so a loaded model predicts as Keras does; Keras 3 files
    # their random state under <group>/seed_generator, which cnnlab neither needs nor reads
    "RandomFlip": _Spec(L.RandomFlip, ("mode", "seed"), _FORMAT, write_extra={"data_format": "channels_last"}),
    "RandomTranslation": _Spec(
        L.RandomTranslation,
        ("height_factor", "width_factor", *_RESAMPLING),
        _FORMAT,
        write_extra={"data_format": "channels_last"},
    ),
    "RandomRotation": _Spec(
        L.RandomRotation, ("factor", *_RESAMPLING), _FORMAT, write_extra={"data_format": "channels_last"}
    ),
    "RandomZoom": _Spec(
        L.RandomZoom,
        ("height_factor", "width_factor", *_RESAMPLING),
        _FORMAT,
        write_extra={"data_format": "channels_last"},
    ),
    "RandomContrast": _Spec(
        L.RandomContrast, ("factor", "value_range", "seed"), _FORMAT, write_extra={"data_format": "channels_last"}
    ),
    "Dense": _Spec(
        L.Dense,
        ("units", "activation", "use_bias", *_INITS, *_RULES),
        {"activity_regularizer": (None,), "lora_rank": (None,), "quantization_config": (None,)},
        ("lora_alpha",),
        {"activity_regularizer": None},
    ),
    "MaxPooling2D": _POOL,
    "AveragePooling2D": _Spec(L.AveragePooling2D, _POOL.args, _POOL.neutral, write_extra=_POOL.write_extra),
    "Flatten": _Spec(L.Flatten, (), _FORMAT, write_extra={"data_format": "channels_last"}),
    "Dropout": _Spec(L.Dropout, ("rate",), {"noise_shape": (None,)}, ("seed",), {"seed": None, "noise_shape": None}),
    "SpatialDropout2D": _Spec(L.SpatialDropout2D, ("rate",), _FORMAT, ("seed",), {"data_format": "channels_last"}),
    "Activation": _Spec(L.Activation, ("activation",)),
    "BatchNormalization": _Spec(
        L.BatchNormalization,
        ("axis", "momentum", "epsilon", "center", "scale", *_BN_INITS),
        {
            "renorm": (False,),
            "virtual_batch_size": (None,),
            "adjustment": (None,),
            "beta_regularizer": (None,),
            "gamma_regularizer": (None,),
            "beta_constraint": (None,),
            "gamma_constraint": (None,),
        },
        # synchronized: across devices only; fused: a speed option; renorm_*: only used with renorm=True
        ("synchronized", "fused", "renorm_clipping", "renorm_momentum"),
        {"beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None},
    ),
    "GlobalAveragePooling2D": _Spec(
        L.GlobalAveragePooling2D, ("keepdims",), _FORMAT, write_extra={"data_format": "channels_last"}
    ),
    "GlobalMaxPooling2D": _Spec(
        L.GlobalMaxPooling2D, ("keepdims",), _FORMAT, write_extra={"data_format": "channels_last"}
    ),
    "ZeroPadding2D": _Spec(L.ZeroPadding2D, ("padding",), _FORMAT, write_extra={"data_format": "channels_last"}),
    "Cropping2D": _Spec(L.Cropping2D, ("cropping",), _FORMAT, write_extra={"data_format": "channels_last"}),
    "UpSampling2D": _Spec(
        L.UpSampling2D, ("size", "interpolation"), _FORMAT, write_extra={"data_format": "channels_last"}
    ),
    "Reshape": _Spec(L.Reshape, ("target_shape",)),
    "Permute": _Spec(L.Permute, ("dims",)),
    "Rescaling": _Spec(L.Rescaling, ("scale", "offset")),
    "ReLU": _Spec(L.ReLU, ("max_value", "negative_slope", "threshold")),
    "LeakyReLU": _Spec(L.LeakyReLU, ("negative_slope",)),
    "Softmax": _Spec(L.Softmax, ("axis",)),
}
#: other class names Keras files use for the same layers
ALIASES = {
    "MaxPool2D": "MaxPooling2D",
    "AvgPool2D": "AveragePooling2D",
    "Convolution2D": "Conv2D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "GlobalMaxPool2D": "GlobalMaxPooling2D",
}
#: arguments of every layer that do not change what it computes (dtype is checked separately)
_COMMON = ("name", "trainable", "dtype", "batch_input_shape", "batch_shape", "input_shape", "batch_size")
SUPPORTED = ", ".join(["InputLayer", "Sequential", "Functional", *SPECS])

#: Keras's initializer class names that cnnlab has (others fall back to the layer's default: a
#: loaded layer's weights come from the file, so its initializer never runs)
_INITIALIZER_NAMES = {"GlorotUniform": "glorot_uniform", "Zeros": "zeros", "Ones": "ones"}


class _Where:
    """The file and layer an error is about."""

    def __init__(self, path: Path | str, layer: str = "", cls: str = "") -> None:
        self.path, self.layer, self.cls = path, layer, cls

    def at(self, layer: str, cls: str) -> _Where:
        return _Where(self.path, layer, cls)

    def error(self, message: str) -> ModelFileError:
        where = f'layer "{self.layer}" ({self.cls}): ' if self.layer or self.cls else ""
        return ModelFileError(f"{self.path}: {where}{message}")


def _check_module(entry: dict[str, Any], where: _Where) -> None:
    """Only Keras's own classes: a ``module`` outside Keras or a registered custom name is foreign code."""
    module = entry.get("module")
    if module is not None and not (
        isinstance(module, str) and (module.split(".")[0] in ("keras", "tf_keras") or module.startswith("tensorflow"))
    ):
        raise where.error(
            f"the file names the module {module!r}, which is not part of Keras; cnnlab builds only Keras's own "
            f"layers ({SUPPORTED}) and never imports or runs code named in a model file."
        )
    registered = entry.get("registered_name")
    if registered not in (None, entry.get("class_name")) and not (
        isinstance(registered, str) and registered.startswith("keras>")
    ):
        raise where.error(
            f"a custom class registered as {registered!r}; cnnlab cannot run custom code from a model file. "
            f"Supported layers: {SUPPORTED}."
        )


def _check_dtype(value: Any, where: _Where) -> None:
    name = value
    if isinstance(value, dict):
        name = (value.get("config") or {}).get("name") if isinstance(value.get("config"), dict) else None
    if name is None and value is None:
        return
    if name != config_mod.floatx():
        raise where.error(
            f"dtype {name!r}; cnnlab computes in {config_mod.floatx()!r} (cl.config.floatx()), so this layer "
            "would compute other numbers. Only float32 models (Keras's default) are supported"
            + ("; set cl.config.set_floatx('float64') first for a float64 model." if name == "float64" else ".")
        )


def _activation(value: Any, where: _Where) -> Any:
    if isinstance(value, dict):
        # Keras 3 may serialize a built-in activation as {"module": "keras.activations", "class_name":
        # "function", "config": "relu"}; any other dict is a custom function
        _check_module(value, where)
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            value = value["config"]
        else:
            raise where.error(f"activation {value!r:.120} is not a built-in activation; cnnlab cannot run it.")
    if not isinstance(value, str) and value is not None:
        raise where.error(f"activation {value!r:.80} is not an activation name.")
    return value


def _initializer(value: Any, where: _Where) -> str | None:
    """cnnlab's name for a Keras initializer, or None (the layer's default) when cnnlab lacks it."""
    if isinstance(value, str):
        return value if value in ("glorot_uniform", "zeros", "ones") else None
    if isinstance(value, dict):
        _check_module(value, where)
        return _INITIALIZER_NAMES.get(value.get("class_name"))
    return None


def _rule(value: Any, where: _Where) -> Any:
    if isinstance(value, dict):
        _check_module(value, where)
        return {"class_name": value.get("class_name"), "config": value.get("config", {})}
    return value


def _batch_shape(cfg: dict[str, Any]) -> list[Any] | None:
    for key in ("batch_shape", "batch_input_shape"):
        if isinstance(cfg.get(key), list):
            return cfg[key]
    if isinstance(cfg.get("input_shape"), list):
        return [None, *cfg["input_shape"]]
    return None


def layer_from_keras(entry: Any, where: _Where | Path | str) -> Layer:
    """A cnnlab layer computing exactly what the Keras layer described by ``entry`` computes.

    ``entry``: one item of a Keras ``layers`` list, ``{"class_name": "Conv2D", "config": {...}}``
    (with ``module``/``registered_name`` in Keras 3). Raises :class:`ModelFileError` naming the
    file, the layer, its class and what is supported, for anything cnnlab cannot represent.
    """
    where = where if isinstance(where, _Where) else _Where(where)
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise where.error(f"a layer entry is {entry!r:.100}; expected an object with class_name and config.")
    cfg = dict(entry["config"])
    cls_name = entry.get("class_name")
    where = where.at(str(cfg.get("name", "?")), str(cls_name))
    _check_module(entry, where)
    cls_name = ALIASES.get(cls_name, cls_name)
    spec = SPECS.get(cls_name) if isinstance(cls_name, str) else None
    if spec is None:
        why = {
            "Lambda": "a Lambda layer holds Python code, which cnnlab never runs",
            "TFOpLambda": "it holds a TensorFlow operation, which cnnlab never runs",
        }.get(str(cls_name), "cnnlab has no such layer")
        raise where.error(f"unsupported layer class ({why}). Supported layers: {SUPPORTED}.")
    _check_dtype(cfg.get("dtype"), where)
    kwargs: dict[str, Any] = {"name": cfg.get("name"), "trainable": bool(cfg.get("trainable", True))}
    if cls_name == "LeakyReLU" and "alpha" in cfg:  # Keras 2's name
        cfg.setdefault("negative_slope", cfg.pop("alpha"))
    for key, value in cfg.items():
        if key in spec.args:
            if key == "activation":
                value = _activation(value, where)
            elif key.endswith("_initializer"):
                value = _initializer(value, where)
                if value is None:
                    continue
            elif key.endswith(("_regularizer", "_constraint")):
                value = _rule(value, where)
            elif key == "axis" and isinstance(value, list) and len(value) == 1:
                value = value[0]  # tf.keras 2 writes BatchNormalization's axis as a list
            kwargs[key] = value
        elif key in spec.neutral:
            if value not in spec.neutral[key]:
                allowed = " or ".join(repr(v) for v in spec.neutral[key] if v is not None) or "None"
                raise where.error(
                    f"{key}={value!r:.80} is not supported (cnnlab computes {cls_name} only with {key}={allowed})."
                )
        elif key in spec.ignored or key in _COMMON:
            continue
        elif value is not None and value is not False:
            # an argument from a Keras version cnnlab does not know, switched on: its meaning is unknown
            raise where.error(
                f"argument {key}={value!r:.80} is unknown to cnnlab, so it cannot compute this layer as Keras does."
            )
    shape = _batch_shape(cfg)
    if shape is not None:
        kwargs["input_shape"] = _sample_shape(shape, where)
    try:
        return spec.cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise where.error(f"its arguments cannot be represented in cnnlab ({exc})") from exc


def _sample_shape(batch_shape: list[Any], where: _Where) -> tuple[int, ...]:
    rest = batch_shape[1:]
    if not rest or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in rest):
        raise where.error(
            f"input shape {tuple(batch_shape)}: cnnlab needs every axis but the batch axis fixed "
            "(variable image sizes are not supported)."
        )
    return tuple(rest)


# ====================================================================== model configs
class _Node:
    """A built layer with the Keras class name its weights are filed under (and its children)."""

    def __init__(self, keras_class: str, layer: Layer, children: list[_Node] | None = None) -> None:
        self.keras_class, self.layer, self.children = keras_class, layer, children


def model_from_keras_config(entry: Any, where: _Where | Path | str) -> tuple[Sequential, list[_Node]]:
    """The model a Keras model entry describes (``{"class_name": "Sequential", "config": ...}``),
    built, and its layers as Keras files their weights.

    ``Sequential`` (Keras 3, tf.keras 2, the old bare list); a ``Functional``/``Model`` entry only
    when it is a chain of one-input layers. Raises :class:`ModelFileError` otherwise."""
    where = where if isinstance(where, _Where) else _Where(where)
    if not isinstance(entry, dict):
        raise where.error(f"the model description is {entry!r:.80}; expected an object with class_name and config.")
    cls_name = entry.get("class_name")
    _check_module(entry, where.at("", str(cls_name)))
    cfg = entry.get("config")
    if cls_name in ("Functional", "Model"):
        return _functional(entry, where)
    if cls_name != "Sequential":
        raise where.error(f"the model is a {cls_name!r}; cnnlab reads Sequential and functional models.")
    if isinstance(cfg, list):  # Keras <= 2.2: the config is the bare list of layers
        cfg = {"layers": cfg}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise where.error("the Sequential config has no list of layers.")
    _check_dtype(cfg.get("dtype"), where.at(str(cfg.get("name", "")), "Sequential"))
    return _sequential(cfg.get("name"), cfg["layers"], cfg.get("build_input_shape"), cfg, where)


def _sequential(
    name: Any, items: list[Any], build_shape: Any, cfg: dict[str, Any], where: _Where
) -> tuple[Sequential, list[_Node]]:
    model = Sequential(name=name if isinstance(name, str) and name else None, trainable=cfg.get("trainable", True))
    nodes: list[_Node] = []
    input_shape: tuple[int, ...] | None = None
    for item in items:
        if isinstance(item, dict) and item.get("class_name") == "InputLayer":
            lcfg = item.get("config") if isinstance(item.get("config"), dict) else {}
            w = where.at(str(lcfg.get("name", "?")), "InputLayer")
            _check_module(item, w)
            if lcfg.get("sparse") or lcfg.get("ragged"):
                raise w.error("sparse or ragged inputs are not supported.")
            _check_dtype(lcfg.get("dtype"), w)
            shape = _batch_shape(lcfg)
            if shape is None or nodes:
                raise w.error("an InputLayer must come first and give the input shape.")
            input_shape = _sample_shape(shape, w)
            continue
        if isinstance(item, dict) and item.get("class_name") in ("Sequential", "Functional", "Model"):
            inner, inner_nodes = model_from_keras_config(item, where)
            layer: Layer = inner
            # Keras files a nested model's weights under its class name: "sequential", "functional"
            nodes.append(
                _Node("Functional" if item["class_name"] != "Sequential" else "Sequential", inner, inner_nodes)
            )
        else:
            layer = layer_from_keras(item, where)
            nodes.append(_Node(_keras_class(item), layer))
        if input_shape is not None and not model.layers:
            model.add(L.Input(input_shape))
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise where.at(layer.name, nodes[-1].keras_class).error(f"it does not fit the model ({exc})") from exc
    if not model.built:
        shape = build_shape if isinstance(build_shape, list) else (cfg.get("build_config") or {}).get("input_shape")
        if isinstance(shape, list) and model.layers:
            model.build((None, *_sample_shape(shape, where.at(str(name), "Sequential"))))
        elif input_shape is not None and model.layers:
            model.build((None, *input_shape))
    if not model.layers:
        raise where.error("the model has no layers.")
    if not model.built:
        raise where.error("the model has no input shape, so its weights cannot be placed.")
    return model, nodes


def _keras_class(item: dict[str, Any]) -> str:
    return ALIASES.get(item["class_name"], item["class_name"])


def _build(entry: Any, path: Path) -> tuple[Sequential, list[_Node]]:
    """:func:`model_from_keras_config`, with a damaged description (a value of the wrong type where
    Keras writes another) reported as a ModelFileError rather than a traceback."""
    try:
        return model_from_keras_config(entry, path)
    except ModelFileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(
            f"{path}: the model description is damaged ({type(exc).__name__}: {exc}); it is not what Keras writes."
        ) from exc


def _functional(entry: dict[str, Any], where: _Where) -> tuple[Model, list[_Node]]:
    """A functional config (Keras 3's ``{"args", "kwargs"}`` nodes, or tf.keras 2's legacy
    ``inbound_nodes`` lists ``[[name, node_index, tensor_index, kwargs], ...]``) rebuilt with
    :meth:`cl.Model.from_config <cnnlab.models.functional.Model.from_config>`, every layer made by
    :func:`layer_from_keras`; the nodes come in config order, the order Keras files weights in."""
    cfg = entry.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise where.error("the functional config has no list of layers.")
    _check_dtype(cfg.get("dtype"), where.at(str(cfg.get("name", "")), "Functional"))
    nodes: list[_Node] = []

    def make(item: dict[str, Any]) -> Layer:
        if not isinstance(item, dict):
            raise where.error(f"a layer entry is {item!r:.100}; expected an object with class_name and config.")
        for node in item.get("inbound_nodes") or []:
            _check_call(node, item, where)
        cls_name = item.get("class_name")
        layer: Layer
        if cls_name == "InputLayer":
            layer = _input_layer(item, where)
            nodes.append(_Node("InputLayer", layer))
        elif cls_name in ("Sequential", "Functional", "Model"):
            layer, children = model_from_keras_config(item, where)
            nodes.append(_Node("Functional" if cls_name != "Sequential" else "Sequential", layer, children))
        else:
            layer = layer_from_keras(item, where)
            nodes.append(_Node(_keras_class(item), layer))
        return layer

    # tf.keras 2 lists a single input or output as [[name, 0, 0]]; Keras 3 as [name, 0, 0]
    spec = {**cfg}
    for key in ("input_layers", "output_layers"):
        value = spec.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            spec[key] = value[0]
    try:
        model = Model.from_config(spec, layer_from_config=make)
    except InvalidArgumentError as exc:
        raise where.at(str(cfg.get("name", "")), "Functional").error(f"the graph cannot be built ({exc})") from exc
    return model, nodes


def _check_call(node: Any, item: dict[str, Any], where: _Where) -> None:
    """A layer call must pass tensors only: keyword arguments (``mask=...``) would change what Keras
    computes, and cnnlab's layers take none."""
    kwargs: list[Any] = []
    if isinstance(node, dict):
        kwargs.append(node.get("kwargs") or {})
    elif isinstance(node, list):
        kwargs.extend(d[3] for d in node if isinstance(d, list) and len(d) > 3)
    for value in kwargs:
        # "training" is recorded from the call that built the graph, but a Keras model passes its own
        # training flag to every layer call (Functional's operation_fn), so it never changes the result
        if isinstance(value, dict) and any(v is not None for k, v in value.items() if k != "training"):
            name = (item.get("config") or {}).get("name", item.get("name"))
            raise where.at(str(name), str(item.get("class_name"))).error(
                f"the layer is called with keyword arguments {value!r:.100}, which cnnlab's layers do not take."
            )


def _input_layer(item: dict[str, Any], where: _Where) -> Layer:
    lcfg = item.get("config") if isinstance(item.get("config"), dict) else {}
    w = where.at(str(lcfg.get("name", item.get("name", "?"))), "InputLayer")
    _check_module(item, w)
    if lcfg.get("sparse") or lcfg.get("ragged"):
        raise w.error("sparse or ragged inputs are not supported.")
    _check_dtype(lcfg.get("dtype"), w)
    shape = _batch_shape(lcfg)
    if shape is None and isinstance(lcfg.get("shape"), list):
        shape = [None, *lcfg["shape"]]
    if shape is None:
        raise w.error("the InputLayer gives no input shape.")
    return L.InputLayer(_sample_shape(shape, w), name=lcfg.get("name", item.get("name")))


# ====================================================================== HDF5 safety
def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # a regular dependency; only a broken install lacks it
        raise ModelFileError(f"reading and writing Keras files needs h5py, which is not installed ({exc}).") from exc
    return h5py


def _child(group: Any, key: str, path: Path, what: str) -> Any:
    """``group[key]`` refusing external and soft links (an external link opens another file)."""
    h5py = _h5py()
    try:
        link = group.get(key, getlink=True)
    except (KeyError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: {what}: {group.name}/{key} cannot be read ({exc}).") from exc
    if link is None:
        raise ModelFileError(f"{path}: {what}: {group.name}/{key} is missing; the file is incomplete.")
    if not isinstance(link, h5py.HardLink):
        kind = "an external link to another file" if isinstance(link, h5py.ExternalLink) else "a soft link"
        raise ModelFileError(
            f"{path}: {group.name}/{key} is {kind}; cnnlab reads weights only from inside the file itself."
        )
    try:
        return group[key]
    except (KeyError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: {what}: {group.name}/{key} cannot be read ({exc}).") from exc


def _dataset(group: Any, key: str, path: Path, what: str) -> np.ndarray:
    h5py = _h5py()
    node = _child(group, key, path, what)
    if not isinstance(node, h5py.Dataset):
        raise ModelFileError(f"{path}: {what}: {node.name} is not an array.")
    if node.is_virtual or node.external:
        raise ModelFileError(
            f"{path}: {node.name} keeps its data in other files (a virtual or external dataset); cnnlab reads "
            "weights only from inside the file itself."
        )
    try:
        value = node[()]
    except (OSError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: {what}: {node.name} is corrupt ({exc}).") from exc
    value = np.asarray(value)
    if value.dtype.kind not in "fiub":
        raise ModelFileError(f"{path}: {what}: {node.name} holds {value.dtype} values, not numbers.")
    return value


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _attr_list(group: Any, name: str) -> list[str]:
    """An attribute holding a list of names, bytes or str, whole or split into ``name0``, ``name1`` ...
    (Keras's ``load_attributes_from_hdf5_group``)."""
    if name in group.attrs:
        values = group.attrs[name]
        return [_text(v) for v in np.atleast_1d(values)] if np.size(values) else []
    out: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        out.extend(_text(v) for v in np.atleast_1d(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return out


def _json_attr(group: Any, name: str, path: Path) -> Any:
    if name not in group.attrs:
        return None
    raw = group.attrs[name]
    try:
        return json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: the {name} attribute is not valid JSON ({exc}).") from exc


# ====================================================================== reading .keras
def _path_argument(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"{what}: expected path to be a str or os.PathLike, received {type(path).__name__}.")
    if os.fspath(path) in ("", b""):
        raise InvalidArgumentError(f"{what}: expected path to name a file, received an empty string.")
    return Path(os.fsdecode(path))


def is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def is_keras_zip(path: Path) -> bool:
    """A zip archive holding ``config.json`` (and no cnnlab manifest)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "config.json" in names and "cnnlab.json" not in names


def load_keras(path: str | os.PathLike[str], compile: bool = True) -> Sequential:
    """Load a ``.keras`` file written by Keras 3.x: architecture, weights, compile settings and,
    for an optimizer cnnlab has, its state (``fit`` continues where Keras stopped)."""
    path = _path_argument(path, "load_model")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(
            f"{path}: not a .keras model file (not a zip archive: {exc}); it may be truncated."
        ) from exc
    with archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise ModelFileError(f"{path}: a zip archive, but not a .keras model (no config.json inside).")
        entry = _read_json_member(archive, "config.json", path)
        model, nodes = _build(entry, path)
        if "model.weights.h5" in names:
            weights = _read_member(archive, "model.weights.h5", path)
            h5py = _h5py()
            try:
                h5 = h5py.File(io.BytesIO(weights), "r")
            except (OSError, ValueError) as exc:
                raise ModelFileError(f"{path}: model.weights.h5 is not a readable HDF5 file ({exc}).") from exc
            with h5:
                _place_keras_weights(h5, nodes, path)
                state = _keras_optimizer_state(h5, path) if compile else None
        elif "model.weights.npz" in names:
            raise ModelFileError(
                f"{path}: the weights are in Keras's .npz variant, which stores them as pickled Python objects; "
                "unpickling can run code, so cnnlab never does it. Save the model in Keras with the default "
                'weights format (model.save("net.keras")) or as HDF5 (model.save("net.h5")).'
            )
        else:
            raise ModelFileError(f"{path}: the archive has no model.weights.h5; the file is incomplete.")
    if compile and isinstance(entry.get("compile_config"), dict):
        _compile(model, entry["compile_config"], state, path)
    return model


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: {name} is corrupt or truncated ({exc}).") from exc


def _read_json_member(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    info = archive.getinfo(name)
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path}: {name} is {info.file_size} bytes; a model description is far smaller.")
    try:
        return json.loads(_read_member(archive, name, path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: {name} is not valid JSON ({exc}).") from exc


def _group_names(nodes: list[_Node]) -> list[tuple[str, _Node]]:
    """Keras's group name for each layer: class name in snake case, numbered per class."""
    used: dict[str, int] = {}
    out = []
    for node in nodes:
        base = snake_case(node.keras_class)
        if base in used:
            used[base] += 1
            out.append((f"{base}_{used[base]}", node))
        else:
            used[base] = 0
            out.append((base, node))
    return out


def _vars(group: Any, path: Path, what: str) -> list[np.ndarray]:
    """The datasets of a ``vars`` group, keys sorted as integers."""
    h5py = _h5py()
    if "vars" not in group:
        return []
    entries = _child(group, "vars", path, what)
    if not isinstance(entries, h5py.Group):
        raise ModelFileError(f"{path}: {what}: {entries.name} is not a group.")
    keys = list(entries.keys())
    if not all(k.isdigit() for k in keys):
        raise ModelFileError(f"{path}: {what}: {entries.name} holds {keys}; expected variables 0, 1, 2 ...")
    keys.sort(key=int)
    if keys != [str(i) for i in range(len(keys))]:
        raise ModelFileError(f"{path}: {what}: {entries.name} holds variables {keys}; some are missing.")
    return [_dataset(entries, k, path, what) for k in keys]


def _set_layer_weights(layer: Layer, values: list[np.ndarray], path: Path, what: str) -> None:
    expected = [w.shape for w in layer.weights]
    if len(values) != len(expected) or any(v.shape != s for v, s in zip(values, expected, strict=False)):
        raise ModelFileError(
            f"{path}: {what}: the file holds {len(values)} weight(s) of shapes {[tuple(v.shape) for v in values]}, "
            f"the layer needs {len(expected)} of shapes {[tuple(s) for s in expected]}."
        )
    layer.set_weights(values)


def _place_keras_weights(h5: Any, nodes: list[_Node], path: Path, prefix: str = "layers") -> None:
    for group_name, node in _group_names(nodes):
        what = f'layer "{node.layer.name}" ({node.keras_class}, weights group {prefix}/{group_name})'
        group = _descend(h5, f"{prefix}/{group_name}", path, what)
        if node.children is not None:  # a nested model: its layers are under <group>/layers/...
            if group is None and node.layer.weights:
                raise ModelFileError(f"{path}: {what}: the weights group is missing; the file is incomplete.")
            if group is not None:
                _place_keras_weights(group, node.children, path, "layers")
            continue
        values = [] if group is None else _vars(group, path, what)
        _set_layer_weights(node.layer, values, path, what)


def _descend(h5: Any, key: str, path: Path, what: str) -> Any:
    """``h5[key]`` one link at a time (each checked), or None when absent."""
    group = h5
    for part in key.split("/"):
        if part not in group:
            return None
        group = _child(group, part, path, what)
    return group


def _keras_optimizer_state(h5: Any, path: Path) -> list[np.ndarray] | None:
    group = _descend(h5, "optimizer", path, "optimizer")
    return None if group is None else _vars(group, path, "optimizer")


# ====================================================================== compile settings
#: cnnlab's slot names in Keras's order of variables per trainable weight
def _slot_names(optimizer: Any) -> tuple[list[str], list[str]]:
    """(per-weight slots, extra scalar slots after them), in Keras's variable order."""
    name = type(optimizer).__name__
    if name == "SGD":
        return (["momentum"] if optimizer.momentum != 0 else []), []
    if name in ("Adam", "AdamW"):
        return ["m", "v"], []
    if name == "RMSprop":
        return ["velocity", *(["momentum"] if optimizer.momentum > 0 else [])], []
    if name == "Adagrad":
        return ["accumulator"], []
    if name == "Adadelta":
        return ["accumulated_grad", "accumulated_delta_var"], []
    if name == "Adamax":
        return ["momentum", "norm"], []
    if name == "Nadam":
        return ["momentum", "velocity"], ["u_product"]
    raise InvalidArgumentError(f"no Keras variable layout known for the optimizer {name}.")


_OPTIMIZER_NEUTRAL = {
    "use_ema": (False, None),
    "ema_overwrite_frequency": (None,),
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None, 1),
    "amsgrad": (False,),
    "centered": (False,),
    "decay": (0, 0.0, None),
    "is_legacy_optimizer": (False, None),
}
_OPTIMIZER_IGNORED = ("name", "ema_momentum", "jit_compile")


def optimizer_from_keras(entry: Any) -> Any:
    """A cnnlab optimizer from Keras's serialized optimizer; InvalidArgumentError when cnnlab lacks it."""
    if isinstance(entry, str):
        return optimizers_mod.get(entry)
    if not isinstance(entry, dict):
        raise InvalidArgumentError(f"optimizer {entry!r:.80} is not a Keras optimizer description.")
    _check_module(entry, _Where("optimizer"))
    cls_name = str(entry.get("class_name", ""))
    if cls_name.startswith("Custom>"):  # how tf.keras 2.11+ names its own built-in optimizers
        cls_name = cls_name[len("Custom>") :]
    cfg = dict(entry.get("config") or {})
    if "lr" in cfg:  # tf.keras 2's name
        cfg.setdefault("learning_rate", cfg.pop("lr"))
    kwargs: dict[str, Any] = {}
    for key, value in cfg.items():
        if key in _OPTIMIZER_NEUTRAL:
            if value not in _OPTIMIZER_NEUTRAL[key]:
                raise InvalidArgumentError(f"optimizer {cls_name} with {key}={value!r} is not available in cnnlab.")
        elif key not in _OPTIMIZER_IGNORED:
            kwargs[key] = value
    if isinstance(kwargs.get("learning_rate"), dict):
        kwargs["learning_rate"] = {
            "class_name": kwargs["learning_rate"].get("class_name"),
            "config": kwargs["learning_rate"].get("config"),
        }
    return optimizers_mod.from_config({"name": cls_name.lower(), **kwargs})


def _loss_from_keras(value: Any) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "function" and isinstance(value.get("config"), str):
        # how Keras 3 serializes a loss given as a function (module "builtins"): only its name is used,
        # looked up among cnnlab's losses; nothing named in the file is imported
        return value["config"]
    if isinstance(value, dict):
        _check_module(value, _Where("loss"))
        cfg = dict(value.get("config") or {})
        cfg.pop("name", None)
        if cfg.pop("reduction", "sum_over_batch_size") not in ("sum_over_batch_size", "auto", None):
            raise InvalidArgumentError("a loss reduction other than the batch mean is not available in cnnlab.")
        cfg.pop("dtype", None)
        # Keras's defaults, which cnnlab's losses compute without naming them
        for key, default in (("ignore_class", None), ("from_logits", False), ("axis", -1)):
            if key in cfg and cfg[key] == default:
                del cfg[key]
        try:
            return losses_mod.get({"class_name": value.get("class_name"), "config": cfg})
        except TypeError as exc:
            options = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
            raise InvalidArgumentError(
                f"the loss {value.get('class_name')}({options}) is not available in cnnlab"
            ) from exc
    if isinstance(value, list) and len(value) == 1:
        return _loss_from_keras(value[0])
    return value


def _metrics_from_keras(value: Any) -> list[str]:
    out: list[str] = []
    for item in value if isinstance(value, list) else ([] if value is None else [value]):
        if isinstance(item, list):
            out.extend(_metrics_from_keras(item))
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            cfg = item.get("config") or {}
            fn = cfg.get("fn") if isinstance(cfg, dict) else None
            out.append(fn if isinstance(fn, str) else snake_case(str(item.get("class_name"))))
        else:
            raise InvalidArgumentError(f"metric {item!r:.60} is not a metric name.")
    return out


def _compile(
    model: Sequential, cfg: dict[str, Any], state: list[np.ndarray] | _TfSlots | _Keras2Weights | None, path: Path
) -> None:
    """Compile as the file says; like Keras, a compile configuration cnnlab cannot represent only
    warns and leaves the model uncompiled (prediction and explanation still work)."""
    optimizer_entry = cfg.get("optimizer", cfg.get("optimizer_config"))
    try:
        optimizer = optimizer_from_keras(optimizer_entry)
        model.compile(optimizer, _loss_from_keras(cfg.get("loss")), _metrics_from_keras(cfg.get("metrics")))
    except (InvalidArgumentError, ModelFileError, TypeError, ValueError, KeyError) as exc:
        warnings.warn(
            f"{path}: the model was not compiled: its compile settings cannot be represented in cnnlab ({exc}). "
            "Compile it yourself with model.compile(...) to train or evaluate it.",
            stacklevel=3,
        )
        return
    if state is not None:
        try:
            _set_optimizer_state(model, state)
        except ModelFileError as exc:
            warnings.warn(
                f"{path}: the optimizer state was not restored ({exc}); training starts it afresh.", stacklevel=3
            )


def _set_optimizer_state(model: Sequential, values: list[np.ndarray] | _TfSlots | _Keras2Weights) -> None:
    optimizer = model.optimizer
    per_weight, extra = _slot_names(optimizer)
    if isinstance(values, _TfSlots):
        values = _tf_to_keras3_order(values, optimizer, per_weight, extra, len(model.trainable_weights))
    elif isinstance(values, _Keras2Weights):
        values = _keras2_to_keras3_order(values, optimizer, per_weight, model.trainable_weights)
    trainable = model.trainable_weights
    has_lr = not isinstance(optimizer._learning_rate, optimizers_mod.LearningRateSchedule)
    head = 2 if has_lr else 1
    expected = head + len(per_weight) * len(trainable) + len(extra)
    if len(values) != expected:
        raise ModelFileError(
            f"the file holds {len(values)} optimizer variables"
            + (" (only the step count and learning rate: no slots)" if len(values) == head else "")
            + f", cnnlab's {type(optimizer).__name__} for this model has {expected}"
        )
    state: dict[str, np.ndarray] = {"iterations": np.array(int(values[0]))}
    dtype = np.dtype(config_mod.floatx())
    for s, key in enumerate(per_weight):
        parts = []
        for i, w in enumerate(trainable):
            v = values[head + i * len(per_weight) + s]
            if v.shape != w.shape:
                raise ModelFileError(
                    f"optimizer variable {head + i * len(per_weight) + s} has shape {v.shape}, not {w.shape}"
                )
            parts.append(v.astype(dtype).ravel())
        state[key] = np.concatenate(parts) if parts else np.zeros(0, dtype)
    for j, key in enumerate(extra):
        state[key] = np.asarray(values[head + len(per_weight) * len(trainable) + j], dtype)
    if has_lr and values[1] is not None:
        optimizer.learning_rate = float(values[1])
    optimizer.set_state(state)


def _tf_to_keras3_order(
    tf: _TfSlots, optimizer: Any, per_weight: list[str], extra: list[str], n_weights: int
) -> list[Any]:
    """tf.keras 2's slots in Keras 3's variable order; the learning rate (not among tf.keras 2's
    optimizer weights) stays the configured one."""
    name = type(optimizer).__name__
    table = _TF_SLOTS.get(name, {})
    slots = {}
    for word, arrays in tf.slots.items():
        if word not in table:
            raise ModelFileError(f"the file's {name} holds a slot {word!r} that cnnlab's {name} does not have")
        slots[table[word]] = arrays
    if extra or sorted(slots) != sorted(per_weight) or any(len(a) != n_weights for a in slots.values()):
        raise ModelFileError(
            f"the file's optimizer slots ({', '.join(f'{k}: {len(v)}' for k, v in tf.slots.items())}) do not fit "
            f"cnnlab's {name} ({', '.join(per_weight)} for {n_weights} weights)"
        )
    has_lr = not isinstance(optimizer._learning_rate, optimizers_mod.LearningRateSchedule)
    out: list[Any] = [tf.iterations, *([None] if has_lr else [])]
    for i in range(n_weights):
        out.extend(slots[key][i] for key in per_weight)
    return out


# ====================================================================== reading legacy HDF5
def load_h5(path: str | os.PathLike[str], compile: bool = True) -> Sequential:
    """Load a legacy HDF5 model (tf.keras 2.x, Keras 3's ``.h5`` writer)."""
    path = _path_argument(path, "load_model")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file.")
    h5py = _h5py()
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 model file ({exc}); it may be truncated.") from exc
    with h5:
        entry = _json_attr(h5, "model_config", path)
        if entry is None:
            raise ModelFileError(
                f"{path}: an HDF5 file without a model_config attribute: it holds weights only (model.save_weights), "
                "not a whole model."
            )
        model, nodes = _build(entry, path)
        root = _child(h5, "model_weights", path, "weights") if "model_weights" in h5 else h5
        _place_h5_weights(root, nodes, path)
        training = _json_attr(h5, "training_config", path) if compile else None
        state, unread_state = None, False
        if isinstance(training, dict) and "optimizer_weights" in h5:
            state = _legacy_optimizer_values(_child(h5, "optimizer_weights", path, "optimizer"), path)
            unread_state = state is None
            if isinstance(state, _Keras2Weights):  # Keras 2 ordered them as the file orders the layers
                state.file_order = [w for node in _leaf_nodes(nodes) for w in node.layer.trainable_weights]
    if compile and isinstance(training, dict):
        _compile(model, {**training, "optimizer": training.get("optimizer_config")}, state, path)
        if unread_state and model.compiled:
            warnings.warn(
                f"{path}: the optimizer state is stored in a layout cnnlab does not recognise; "
                "training starts the optimizer afresh (as Keras 3 does for such files).",
                stacklevel=2,
            )
    return model


def _leaf_nodes(nodes: list[_Node]) -> list[_Node]:
    out = []
    for node in nodes:
        out.extend(_leaf_nodes(node.children) if node.children is not None else [node])
    return out


def _place_h5_weights(root: Any, nodes: list[_Node], path: Path) -> None:
    layer_names = _attr_list(root, "layer_names")
    stored: list[tuple[str, list[np.ndarray]]] = []
    for name in layer_names:
        group = _child(root, name, path, f'layer "{name}"')
        weight_names = _attr_list(group, "weight_names")
        if weight_names:
            stored.append((name, [_dataset(group, w, path, f'layer "{name}"') for w in weight_names]))
    # nested Sequential models are filed as one layer with all their weights
    layers = [n for n in nodes if (n.layer.weights)]
    if len(stored) != len(layers):
        raise ModelFileError(
            f"{path}: the file holds weights for {len(stored)} layer(s) ({', '.join(n for n, _ in stored)}), "
            f"the model has {len(layers)} layer(s) with weights ({', '.join(n.layer.name for n in layers)})."
        )
    for (name, values), node in zip(stored, layers, strict=True):
        what = f'layer "{node.layer.name}" ({node.keras_class}, weights of "{name}")'
        if node.children is not None:
            expected = [w.shape for w in node.layer.weights]
            if [v.shape for v in values] != expected:
                raise ModelFileError(f"{path}: {what}: shapes {[v.shape for v in values]}, expected {expected}.")
            node.layer.set_weights(values)
        else:
            _set_layer_weights(node.layer, values, path, what)


def _legacy_optimizer_values(group: Any, path: Path) -> list[np.ndarray] | _TfSlots | _Keras2Weights | None:
    """The optimizer weights of a legacy HDF5 file: Keras 3's layout (iteration, learning_rate, slots
    per variable) as a list; tf.keras 2's layouts as :class:`_TfSlots`; standalone Keras 2.0-2.2's as
    :class:`_Keras2Weights`; None when unrecognised."""
    names = _attr_list(group, "weight_names")
    if len(names) >= 2 and names[0].endswith("/iteration") and names[1].endswith("/learning_rate"):
        return [_dataset(group, n, path, "optimizer") for n in names]
    if names and names[0].split("/")[-1] == "iterations:0" and all(_KERAS2_VARIABLE.fullmatch(n) for n in names[1:]):
        values = [_dataset(group, n, path, "optimizer") for n in names[1:]]
        return _Keras2Weights(_dataset(group, names[0], path, "optimizer"), values)
    if not names or not names[0].split("/")[-1].startswith(("iter:", "iteration:")):
        return None
    slots: dict[str, list[np.ndarray]] = {}
    for name in names[1:]:
        slot = _tf_slot_name(name)
        if slot is None:
            return None
        slots.setdefault(slot, []).append(_dataset(group, name, path, "optimizer"))
    return _TfSlots(_dataset(group, names[0], path, "optimizer"), slots)


class _TfSlots:
    """tf.keras 2's optimizer weights: the step counter and each slot's arrays in variable order.

    tf.keras <= 2.10 names them ``Adam/conv2d/kernel/m:0`` (all ``m`` first, then all ``v``), 2.11+
    ``Adamax/m/conv2d/kernel:0`` (interleaved); either way a slot's arrays come in variable order."""

    def __init__(self, iterations: np.ndarray, slots: dict[str, list[np.ndarray]]) -> None:
        self.iterations, self.slots = iterations, slots


class _Keras2Weights:
    """Standalone Keras 2.0-2.2's optimizer weights (``Adam/iterations:0``, then unnamed
    ``training/Adam/Variable_k:0``): ``optimizer.weights = [iterations] + ms + vs`` in Keras 2's
    ``get_updates`` - one block per slot, each in the order of the model's trainable weights, which
    is the order the file lists the layers in (``file_order``: those weights, set by the reader)."""

    def __init__(self, iterations: np.ndarray, values: list[np.ndarray]) -> None:
        self.iterations, self.values = iterations, values
        self.file_order: list[np.ndarray] = []


#: an unnamed Keras 2 optimizer variable (the name the TensorFlow backend gives ``K.zeros``)
_KERAS2_VARIABLE = re.compile(r"(?:.*/)?Variable(?:_\d+)?:0")
#: Keras 2's slot blocks, in order, as cnnlab's slot names (the same quantities, as for tf.keras 2:
#: Adam's ms and vs, Adamax's ms and us, SGD's moments, RMSprop's and Adagrad's accumulators,
#: Adadelta's accumulators and delta accumulators)
_KERAS2_BLOCKS = {
    "Adam": ["m", "v"],
    "Adamax": ["momentum", "norm"],
    "SGD": ["momentum"],
    "RMSprop": ["velocity"],
    "Adagrad": ["accumulator"],
    "Adadelta": ["accumulated_grad", "accumulated_delta_var"],
}


def _keras2_to_keras3_order(
    weights: _Keras2Weights, optimizer: Any, per_weight: list[str], trainable: list[np.ndarray]
) -> list[Any]:
    """Keras 2's blocks in Keras 3's variable order (cnnlab's trainable weights); the learning rate
    (not among Keras 2's optimizer weights) stays the configured one."""
    name = type(optimizer).__name__
    blocks = list(_KERAS2_BLOCKS.get(name, []))
    n = len(weights.file_order)
    values = list(weights.values)
    if name == "Adam" and len(values) == 3 * n and all(v.shape == (1,) for v in values[2 * n :]):
        values = values[: 2 * n]  # Keras 2.1.3+: placeholder vhats of shape (1,) when amsgrad is off
    if name == "SGD" and not per_weight:
        blocks, values = [], values[n:]  # moments Keras 2 keeps even without momentum: unused
    if not blocks and name not in _KERAS2_BLOCKS:
        raise ModelFileError(f"cnnlab knows no Keras 2 layout of the {name} optimizer's variables")
    if sorted(blocks) != sorted(per_weight) or len(values) != len(blocks) * n or n != len(trainable):
        raise ModelFileError(
            f"the file's {len(values)} Keras 2 optimizer variables do not fit {len(blocks)} slot(s) "
            f"({', '.join(blocks)}) for {n} trainable weights"
        )
    position = {id(w): k for k, w in enumerate(weights.file_order)}
    if any(id(w) not in position for w in trainable):
        raise ModelFileError("the model's trainable weights are not those the file lists")
    slots = {key: values[b * n : (b + 1) * n] for b, key in enumerate(blocks)}
    has_lr = not isinstance(optimizer._learning_rate, optimizers_mod.LearningRateSchedule)
    out: list[Any] = [weights.iterations, *([None] if has_lr else [])]
    for w in trainable:
        out.extend(slots[key][position[id(w)]] for key in per_weight)
    return out


#: tf.keras 2's slot names -> cnnlab's, per optimizer (the same quantities as Keras 3's)
_TF_SLOTS = {
    "Adam": {"m": "m", "v": "v"},
    "AdamW": {"m": "m", "v": "v"},
    "Adamax": {"m": "momentum", "u": "norm", "v": "norm"},
    "RMSprop": {"rms": "velocity", "velocity": "velocity", "momentum": "momentum"},
    "SGD": {"momentum": "momentum", "m": "momentum"},
    "Adagrad": {"accumulator": "accumulator"},
    "Adadelta": {
        "accum_grad": "accumulated_grad",
        "accumulated_grad": "accumulated_grad",
        "accum_var": "accumulated_delta_var",
        "accumulated_delta_var": "accumulated_delta_var",
    },
}
_TF_SLOT_WORDS = {word for table in _TF_SLOTS.values() for word in table} | {"vhat", "mg", "momentum_cache"}


def _tf_slot_name(name: str) -> str | None:
    parts = name.split(":")[0].split("/")
    if len(parts) >= 3 and parts[1] in _TF_SLOT_WORDS:  # tf.keras 2.11+: Opt/slot/variable
        return parts[1]
    if parts[-1] in _TF_SLOT_WORDS:  # tf.keras <= 2.10: Opt/variable/slot
        return parts[-1]
    return None


# ====================================================================== writing
def _keras_layer_entry(layer: Layer) -> dict[str, Any]:
    """Keras 3.0's serialized form of one cnnlab layer."""
    if isinstance(layer, Model):
        return {
            "module": "keras.src.models.functional",
            "class_name": "Functional",
            "config": _functional_config(layer),
            "registered_name": "Functional",
        }
    if isinstance(layer, Sequential):
        return {
            "module": "keras",
            "class_name": "Sequential",
            "config": _sequential_config(layer),
            "registered_name": None,
            "build_config": {"input_shape": list(layer.input_shape)},
        }
    cls_name = _WRITTEN_AS.get(type(layer), "")
    spec = SPECS.get(cls_name)
    if spec is None:
        raise InvalidArgumentError(
            f'save: layer "{layer.name}" is a {cls_name}, which has no Keras counterpart cnnlab can write. '
            f"Supported: {SUPPORTED}. Save as .cnnlab instead."
        )
    cfg = layer.get_config()
    cfg.pop("input_shape", None)
    out: dict[str, Any] = {"name": layer.name, "trainable": layer.trainable, "dtype": config_mod.floatx()}
    for key, value in cfg.items():
        if key in ("name", "trainable"):
            continue
        if key.endswith(("_regularizer", "_constraint")) and isinstance(value, dict):
            module = "keras.regularizers" if key.endswith("_regularizer") else "keras.constraints"
            value = {"module": module, **value, "registered_name": None}
        out[key] = value
    for key, value in spec.write_extra.items():
        out.setdefault(key, value)
    for key in _RULES if cls_name in ("Conv2D", "Dense") else ():
        out.setdefault(key, None)
    if cls_name == "LeakyReLU":
        out.pop("alpha", None)
    entry = {"module": "keras.layers", "class_name": cls_name, "config": out, "registered_name": None}
    if layer.build_input_shape is not None:
        entry["build_config"] = {"input_shape": list(layer.build_input_shape)}
    return entry


#: the Keras class each cnnlab class is written as (exact classes: a subclass may compute otherwise)
_WRITTEN_AS = {spec.cls: name for name, spec in SPECS.items()}


def _sequential_config(model: Sequential) -> dict[str, Any]:
    shape = list(model.input_shape)
    input_entry = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": shape, "dtype": config_mod.floatx(), "sparse": False, "name": f"{model.name}_input"},
        "registered_name": None,
    }
    return {
        "name": model.name,
        "trainable": model.trainable,
        "dtype": config_mod.floatx(),
        "layers": [input_entry, *(_keras_layer_entry(layer) for layer in model.layers)],
        "build_input_shape": shape,
    }


def _functional_config(model: Model) -> dict[str, Any]:
    """Keras 3's functional config: cl.Model's own (same graph format) with every layer entry in
    Keras's form."""
    cfg = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    layers = []
    for item in cfg["layers"]:
        layer = by_name[item["name"]]
        if getattr(layer, "declares_input", False):
            entry = {
                "module": "keras.layers",
                "class_name": "InputLayer",
                "config": {
                    "batch_shape": [None, *layer.shape],
                    "dtype": config_mod.floatx(),
                    "sparse": False,
                    "name": layer.name,
                },
                "registered_name": None,
            }
        else:
            entry = _keras_layer_entry(layer)
        layers.append({**entry, "name": item["name"], "inbound_nodes": item["inbound_nodes"]})
    return {**cfg, "layers": layers}


def _keras_model_entry(model: Sequential) -> dict[str, Any]:
    entry = _keras_layer_entry(model)
    compile_cfg = _keras_compile_config(model)
    if compile_cfg is not None:
        entry["compile_config"] = compile_cfg
    return entry


def _keras_optimizer_entry(optimizer: Any) -> dict[str, Any]:
    cls_name = type(optimizer).__name__
    _slot_names(optimizer)  # raises for an optimizer without a known Keras layout
    cfg = optimizer.get_config()
    cfg["name"] = cfg.get("name") or cls_name.lower()
    lr = cfg.get("learning_rate")
    if isinstance(lr, dict):
        cfg["learning_rate"] = {"module": "keras.optimizers.schedules", **lr, "registered_name": None}
    cfg.update({"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None})
    if cls_name in ("Adam", "AdamW"):
        cfg.setdefault("amsgrad", False)
    if cls_name == "RMSprop":
        cfg.setdefault("centered", False)
    return {"module": "keras.optimizers", "class_name": cls_name, "config": cfg, "registered_name": None}


def _keras_compile_config(model: Sequential) -> dict[str, Any] | None:
    if not model.compiled:
        return None
    loss = model.loss.serialize()
    if isinstance(loss, dict):
        loss = {"module": "keras.losses", **loss, "registered_name": None}
    return {
        "optimizer": _keras_optimizer_entry(model.optimizer),
        "loss": loss,
        "loss_weights": None,
        "metrics": [name for name, _ in model._metrics] or None,
        "weighted_metrics": None,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _optimizer_variables(model: Sequential) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """The optimizer's variables in Keras's order, with Keras 3's legacy names."""
    optimizer = model.optimizer
    per_weight, extra = _slot_names(optimizer)
    state = optimizer.get_state()
    name = optimizer.name
    dtype = np.dtype(config_mod.floatx())
    out: list[tuple[str, np.ndarray]] = [(f"{name}/iteration", np.array(int(state["iterations"]), np.int64))]
    if not isinstance(optimizer._learning_rate, optimizers_mod.LearningRateSchedule):
        out.append((f"{name}/learning_rate", np.array(optimizer.learning_rate, dtype)))
    start = 0
    leaves = [(layer, key) for layer, on in model._leaves() for key in layer.trainable_keys(on)]
    for layer, key in leaves:
        w = layer._weights[key]
        for slot in per_weight:
            flat = state.get(slot)
            if flat is None or flat.size != sum(lw._weights[k].size for lw, k in leaves):
                value = np.full(w.shape, optimizer.slot_initial.get(slot, 0.0), dtype)
            else:
                value = flat[start : start + w.size].reshape(w.shape).astype(dtype)
            out.append((f"{name}/{model.name}_{layer.name}_{key}_{slot}", value))
        start += w.size
    for slot in extra:
        out.append((f"{name}/{slot}", np.asarray(state.get(slot, np.ones((), dtype)), dtype)))
    return name, out


def _writable(model: Any, what: str) -> None:
    if not isinstance(model, Sequential):
        raise InvalidArgumentError(f"{what}: expected a Sequential model, received {type(model).__name__}.")
    if not model.built:
        raise InvalidArgumentError(
            f'{what}: model "{model.name}" is not built yet, so it has no weights to save. '
            "Call it on data or fit it first."
        )


def save_keras(model: Any, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` file (atomic); returns ``path``.

    ``metadata`` (cnnlab's free-form facts) goes into ``metadata.json`` under ``"cnnlab"``, a key
    Keras ignores."""
    target = _path_argument(path, "save")
    _writable(model, "save")
    config_text = json.dumps(_keras_model_entry(model), indent=2)
    meta = {
        "keras_version": WRITTEN_KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    if metadata:
        meta["cnnlab"] = metadata
    meta_text = json.dumps(meta, default=_json_default)
    weights = _weights_h5_bytes(model)
    with atomic_path(target, action="cannot save the model to") as tmp, zipfile.ZipFile(tmp, "w") as archive:
        # Keras writes these three members, stored (not deflated) like Keras does
        archive.writestr("metadata.json", meta_text)
        archive.writestr("config.json", config_text)
        archive.writestr("model.weights.h5", weights)
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise InvalidArgumentError(f"save: metadata holds a {type(value).__name__}, which JSON cannot store.")


def _weights_h5_bytes(model: Sequential) -> bytes:
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        _write_layer_groups(h5.create_group("layers"), model)
        if model.compiled:
            opt_name, variables = _optimizer_variables(model)
            group = h5.create_group("optimizer").create_group("vars")
            group.attrs["name"] = opt_name
            for i, (_, value) in enumerate(variables):
                group.create_dataset(str(i), data=value)
    return buffer.getvalue()


def _write_layer_groups(parent: Any, model: Sequential) -> None:
    nodes = [_Node(_container_class(layer), layer) for layer in model.layers]
    for group_name, node in _group_names(nodes):
        group = parent.create_group(group_name)
        entries = group.create_group("vars")
        entries.attrs["name"] = node.layer.name
        if isinstance(node.layer, Sequential):
            _write_layer_groups(group.create_group("layers"), node.layer)
            continue
        for i, w in enumerate(node.layer.weights):
            entries.create_dataset(str(i), data=w)


def _container_class(layer: Layer) -> str:
    if isinstance(layer, Model):
        return "Functional"
    return "Sequential" if isinstance(layer, Sequential) else type(layer).__name__


def save_h5(model: Any, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in Keras's legacy HDF5 format (atomic); returns ``path``."""
    target = _path_argument(path, "save")
    _writable(model, "save")
    h5py = _h5py()
    entry = (
        {"class_name": "Functional", "config": _functional_config(model)}
        if isinstance(model, Model)
        else {"class_name": "Sequential", "config": _sequential_config(model)}
    )
    training = None
    if model.compiled:
        cfg = _keras_compile_config(model)
        opt = cfg.pop("optimizer")
        training = {**cfg, "optimizer_config": {"class_name": opt["class_name"], "config": opt["config"]}}
    with atomic_path(target, action="cannot save the model to") as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["backend"] = "numpy"
        h5.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        h5.attrs["model_config"] = json.dumps(entry)
        if metadata:
            h5.attrs["cnnlab_metadata"] = json.dumps(metadata, default=_json_default)
        weights = h5.create_group("model_weights")
        _write_h5_attr_list(weights, "layer_names", [layer.name for layer in model.layers])
        weights.attrs["backend"] = "numpy"
        weights.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        for layer in model.layers:
            group = weights.create_group(layer.name)
            names = (
                [f"{layer.name}/{key}" for key in layer._weights]
                if not isinstance(layer, Sequential)
                else [f"{layer.name}/{sub.name}/{key}" for sub, _ in layer._leaves() for key in sub._weights]
            )
            _write_h5_attr_list(group, "weight_names", names)
            for name, w in zip(names, layer.weights, strict=True):
                group.create_dataset(name, data=w)
        if training is not None:
            h5.attrs["training_config"] = json.dumps(training)
            _, variables = _optimizer_variables(model)
            group = h5.create_group("optimizer_weights")
            _write_h5_attr_list(group, "weight_names", [n for n, _ in variables])
            for name, value in variables:
                group.create_dataset(name, data=value)
    return target


#: HDF5 attributes larger than this are split into name0, name1 ... (Keras's HDF5_OBJECT_HEADER_LIMIT)
_ATTR_LIMIT = 64512


def _write_h5_attr_list(group: Any, name: str, values: list[str]) -> None:
    if not values:
        group.attrs[name] = np.zeros(0, "S1")
        return
    data = np.array([v.encode("utf8") for v in values])
    chunks = max(1, math.ceil(data.nbytes / _ATTR_LIMIT))
    if chunks == 1:
        group.attrs[name] = data
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = part


# ====================================================================== dispatch
def keras_kind(path: Path) -> str | None:
    """``"keras"``, ``"h5"`` or None (cnnlab's own format or unknown), from the content, else the suffix."""
    if is_hdf5(path):
        return "h5"
    if is_keras_zip(path):
        return "keras"
    return None


def writer_for(path: Any) -> Callable[..., Path] | None:
    """``save_keras`` / ``save_h5`` for a ``.keras`` / ``.h5`` / ``.hdf5`` path, else None."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    suffix = Path(os.fsdecode(path)).suffix.lower()
    if suffix == KERAS_SUFFIX:
        return save_keras
    if suffix in H5_SUFFIXES:
        return save_h5
    return None
