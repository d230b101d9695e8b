"""One random generator for everything in cnnlab.

Weight initialisation, dropout masks and the shuffling in ``fit`` all draw from
the generator returned by :func:`generator`, so one call to
:func:`set_random_seed` makes a whole run repeatable bit for bit.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import InvalidArgumentError

_GENERATOR = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed every random choice cnnlab makes (like ``keras.utils.set_random_seed``).

    Also seeds NumPy's legacy global generator, as Keras does, so user code that
    calls ``np.random.*`` is repeatable too.

    >>> set_random_seed(43052); a = generator().random()
    >>> set_random_seed(43052); a == generator().random()
    True
    """
    global _GENERATOR
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(
            f"set_random_seed: expected a non-negative integer seed, received {seed!r}. "
            "Pass e.g. set_random_seed(43052)."
        )
    _GENERATOR = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 (seeding legacy users, as Keras does)


def generator() -> np.random.Generator:
    """The generator cnnlab draws from (replaced by each :func:`set_random_seed`)."""
    return _GENERATOR
