"""``kernel_regularizer``, ``bias_regularizer``, ``kernel_constraint``, ``bias_constraint``
for layers with a kernel and a bias (Dense, Conv2D; ``depthwise_*``/``pointwise_*`` for the
depthwise and separable convolutions), as in Keras.

The layer only records them (``regularizers`` / ``constraints``: weight key -> callable); the
training engine adds the penalties to the loss and their gradients to the weights' gradients,
and applies the constraints after each update, without knowing any layer class.
"""

from __future__ import annotations

from typing import Any

from cnnlab import constraints as constraints_mod
from cnnlab import regularizers as regularizers_mod


class WeightRulesMixin:
    """Accepts Keras's ``{prefix}_regularizer`` / ``{prefix}_constraint`` arguments and keeps them in
    ``regularizers`` / ``constraints``, keyed by weight.

    ``rule_prefixes`` maps each argument prefix to the weight it governs: ``kernel``/``bias`` for
    Dense and Conv2D, ``depthwise`` -> ``kernel`` for DepthwiseConv2D, ``depthwise``/``pointwise``
    -> ``depthwise_kernel``/``pointwise_kernel`` for SeparableConv2D (Keras's argument names).
    """

    rule_prefixes: dict[str, str] = {"kernel": "kernel", "bias": "bias"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = {
            (prefix, kind): kwargs.pop(f"{prefix}_{kind}", None)
            for prefix in self.rule_prefixes
            for kind in ("regularizer", "constraint")
        }
        super().__init__(*args, **kwargs)
        owner = type(self).__name__
        self.regularizers: dict[str, Any] = {}
        self.constraints: dict[str, Any] = {}
        for (prefix, kind), value in values.items():
            module = regularizers_mod if kind == "regularizer" else constraints_mod
            rule = module.get(value, f"{prefix}_{kind}", owner)
            if rule is not None:
                (self.regularizers if kind == "regularizer" else self.constraints)[self.rule_prefixes[prefix]] = rule

    def get_config(self) -> dict[str, Any]:
        """The layer's config with the rules that are set (as Keras's serialized form)."""
        cfg = super().get_config()  # type: ignore[misc]
        for prefix, key in self.rule_prefixes.items():
            if key in self.regularizers:
                cfg[f"{prefix}_regularizer"] = regularizers_mod.serialize(self.regularizers[key])
        for prefix, key in self.rule_prefixes.items():
            if key in self.constraints:
                cfg[f"{prefix}_constraint"] = constraints_mod.serialize(self.constraints[key])
        return cfg
