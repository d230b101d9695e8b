"""``kernel_regularizer``, ``bias_regularizer``, ``kernel_constraint``, ``bias_constraint``
for layers with a kernel and a bias (Dense, Conv2D), as in Keras.

The layer only records them (``regularizers`` / ``constraints``: weight key -> callable); the
training engine adds the penalties to the loss and their gradients to the weights' gradients,
and applies the constraints after each update, without knowing any layer class.
"""

from __future__ import annotations

from typing import Any

from cnnlab import constraints as constraints_mod
from cnnlab import regularizers as regularizers_mod


class WeightRulesMixin:
    """Accepts the four Keras arguments and keeps them in ``regularizers`` / ``constraints``."""

    def __init__(
        self,
        *args: Any,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        owner = type(self).__name__
        self.regularizers: dict[str, Any] = {}
        self.constraints: dict[str, Any] = {}
        for key, value in (("kernel", kernel_regularizer), ("bias", bias_regularizer)):
            rule = regularizers_mod.get(value, f"{key}_regularizer", owner)
            if rule is not None:
                self.regularizers[key] = rule
        for key, value in (("kernel", kernel_constraint), ("bias", bias_constraint)):
            rule = constraints_mod.get(value, f"{key}_constraint", owner)
            if rule is not None:
                self.constraints[key] = rule

    def get_config(self) -> dict[str, Any]:
        """The layer's config with the rules that are set (as Keras's serialized form)."""
        cfg = super().get_config()  # type: ignore[misc]
        for key, reg in self.regularizers.items():
            cfg[f"{key}_regularizer"] = regularizers_mod.serialize(reg)
        for key, con in self.constraints.items():
            cfg[f"{key}_constraint"] = constraints_mod.serialize(con)
        return cfg
