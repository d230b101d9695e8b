"""Write tests/fixtures/keras_functional.json with real Keras 3 (run in a Keras environment):

    KERAS_BACKEND=torch python tools/make_keras_functional_fixture.py

A functional model with two inputs, a shared Conv2D, Add, Concatenate, a nested functional model
and two outputs: its ``get_config()`` (Keras 3's functional format, which ``cl.Model.from_config``
mirrors), its ``summary()`` lines on an 80-column terminal, its weights and its predictions on a
fixed input, so cnnlab can rebuild it from Keras's own config and predict the same numbers.
"""

import io
import json
import os
import sys
from contextlib import redirect_stdout

os.environ.setdefault("COLUMNS", "80")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

keras.utils.set_random_seed(0)
a = keras.Input((6, 6, 1), name="a")
b = keras.Input((6, 6, 1), name="b")
conv = layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")
added = layers.Add(name="add")([conv(a), conv(b)])
joined = layers.Concatenate(name="cat")([added, a])
pooled = layers.GlobalAveragePooling2D(name="gap")(joined)
inner_in = keras.Input((3,), name="inner_in")
inner = keras.Model(inner_in, layers.Dense(2, name="inner_dense")(inner_in), name="inner")
out1 = layers.Dense(3, activation="softmax", name="out1")(pooled)
model = keras.Model([a, b], [out1, inner(out1)], name="net")

rng = np.random.default_rng(0)
xa = rng.random((3, 6, 6, 1)).astype("float32")
xb = rng.random((3, 6, 6, 1)).astype("float32")
buffer = io.StringIO()
with redirect_stdout(buffer):
    model.summary()
fixture = {
    "keras_version": keras.__version__,
    "config": model.get_config(),
    "summary": buffer.getvalue().rstrip("\n").split("\n"),
    "weights": [w.tolist() for w in model.get_weights()],
    "x": [xa.tolist(), xb.tolist()],
    "predictions": [p.tolist() for p in model.predict([xa, xb], verbose=0)],
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "keras_functional.json")
with open(path, "w") as handle:
    json.dump(fixture, handle)
print("wrote", path, file=sys.stderr)
