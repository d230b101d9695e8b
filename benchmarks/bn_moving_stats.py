"""Why the scratch model is near chance at inference: train as in the 5-epoch run (seed 1), then
compare inference with BN's moving statistics against inference with the training data's statistics
under the final weights.

    .venv/bin/python benchmarks/bn_moving_stats.py 5      # epochs (5 epochs on 12,000 images, seed 1)
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # course_models.py is beside this file
import course_models as cm

import cnnlab as keras

(x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
keras.utils.set_random_seed(1)
X = np.expand_dims(x[:12000].astype("float32"), -1)
Y = keras.utils.to_categorical(y[:12000], 10)
XT = np.expand_dims(xt.astype("float32"), -1)
model = cm.from_scratch_sequential(keras)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(X, Y, batch_size=128, epochs=int(sys.argv[1]), validation_split=0.1, verbose=0)
print("test accuracy, moving statistics:", (model.predict(XT).argmax(1) == yt).mean())
BN = keras.layers.BatchNormalization
aug = (keras.layers.RandomFlip, keras.layers.RandomRotation)
stats = {}


def forward(x, collect):
    for layer in model.layers:
        if isinstance(layer, aug):
            continue
        if isinstance(layer, BN):
            g, b, mm, mv = [np.asarray(w) for w in layer.get_weights()]
            if collect:
                axes = tuple(range(x.ndim - 1))
                stats[layer.name] = m, v = x.mean(axes), x.var(axes)
                print(
                    f"  {layer.name}: |moving_mean - mean| / std: median {np.median(abs(mm - m) / np.sqrt(v)):.2f}, "
                    f"max {np.max(abs(mm - m) / np.sqrt(v)):.2f}; moving_var / var: median {np.median(mv / v):.2f}, "
                    f"range {np.min(mv / v):.2f}..{np.max(mv / v):.2f}"
                )
            m, v = stats[layer.name]
            x = g * (x - m) / np.sqrt(v + layer.epsilon) + b
            continue
        x = layer(x)
    return x


print("statistics of each BN's input over the 10,800 training images, final weights:")
forward(X[:10800], True)
print(
    "test accuracy, BN with those statistics instead of the moving ones:", (forward(XT, False).argmax(1) == yt).mean()
)
