from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.utils import to_categorical


def test_to_categorical_infers_classes_and_is_float32():
    out = to_categorical([1, 3])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [0, 0, 0, 1]])


def test_to_categorical_num_classes_and_column_labels():
    out = to_categorical(np.array([[2], [0]]), num_classes=5)
    assert out.shape == (2, 5) and out[0, 2] == 1 and out[1, 0] == 1


def test_to_categorical_float_whole_numbers_accepted():
    np.testing.assert_array_equal(to_categorical(np.array([0.0, 1.0])), np.eye(2))


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([-1, 2], {}, r"expected labels >= 0, received -1"),
        ([0.5, 1], {}, r"expected integer class labels"),
        ([0, 5], {"num_classes": 3}, r"label 5 is out of range for num_classes=3 .*num_classes=6"),
        ([0, 1], {"num_classes": 0}, r"num_classes to be a positive integer"),
    ],
)
def test_to_categorical_errors(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        to_categorical(labels, **kwargs)


def _train_once(seed: int):
    cl.set_random_seed(seed)
    model = cl.Sequential(
        [
            cl.layers.Input((4, 4, 1)),
            cl.layers.Conv2D(2, 2, activation="relu"),
            cl.layers.Flatten(),
            cl.layers.Dropout(0.3),
            cl.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 4, 1))
    y = to_categorical(rng.integers(0, 3, 40), 3)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model.get_weights(), history.history["loss"]


def test_seeded_training_repeats_bit_for_bit():
    w1, h1 = _train_once(7)
    w2, h2 = _train_once(7)
    w3, _ = _train_once(8)
    assert h1 == h2
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(w1[0], w3[0])


def test_set_seed_rejects_bad_values():
    with pytest.raises(ValueError, match="non-negative integer seed, received -3"):
        cl.set_seed(-3)
