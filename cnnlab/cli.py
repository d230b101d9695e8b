"""The ``cnnlab`` command line: the lecture job, training, and using saved models.

Every user error (missing file, bad option, unreadable image: the classes of
:mod:`cnnlab.errors`, and ``OSError`` for files) prints one line to stderr and exits with
status 1, without a traceback; an option whose value is not in its documented form
(:class:`~cnnlab.errors.UsageError`: ``--at 1``, ``--image arange:3x``) exits with status 2, as
argparse's own usage errors. Any other exception is a bug in cnnlab and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, CommandError, UsageError
from cnnlab.explain import fmt

#: the old name of CommandError, kept for code that imported it
UserError = CommandError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, received {text!r}")
    return value


SCALE_HELP = (
    "multiply the 0..255 pixels by this before the model, e.g. 1/255 for a model trained on 0..1 inputs "
    "(default: the model file's input_scale, else 1)"
)


def _scale(text: str) -> float:
    """``--scale``: a positive number, also written as a fraction such as ``1/255``."""
    top, _, bottom = text.partition("/")
    try:
        value = float(top) / (float(bottom) if bottom else 1.0)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a positive number such as 1/255 or 0.5, received {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number such as 1/255 or 0.5, received {text!r}")
    return value


def _input_scale(model: Any, args: argparse.Namespace) -> float:
    """The factor for the pixels: ``--scale`` when given, else what the model file recorded."""
    given = getattr(args, "scale", None)
    return float(model.metadata.get("input_scale", 1.0)) if given is None else given


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}")
    return value


def _command(sub: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=f"example: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


#: ``cnnlab train --model`` choices and what they are
TRAIN_MODELS = {
    "net1": "the lecture's dense network",
    "net2": "the lecture's CNN",
    "simple": "keras.io's Simple MNIST convnet (pixels scaled to 0..1)",
    "scratch": "a keras.io 'from scratch' CNN: RandomFlip, RandomRotation, Rescaling, BatchNormalization, "
    "SeparableConv2D, GlobalAveragePooling2D, Dropout",
}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw", "adagrad", "adadelta", "adamax", "nadam")


def _training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=_positive_int, default=5, help="passes over the training set (default 5)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="samples per step (default 32)")
    parser.add_argument("--seed", type=int, default=43052, help="random seed (default 43052)")
    parser.add_argument("--normalize", action="store_true", help="scale pixels to 0..1 (the lecture does not)")
    parser.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Keras-compatible convolutional networks in NumPy, with explanations.",
        epilog="example: cnnlab lecture --quick",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lecture = _command(
        sub,
        "lecture",
        "train the lecture's dense network and CNN on Fashion-MNIST and compare them",
        "cnnlab lecture --quick --out report/",
    )
    _training_options(lecture)
    lecture.add_argument("--quick", action="store_true", help="6,000 images, 1 epoch: a smoke test")
    lecture.add_argument("--out", default="lecture-report", help="report folder (default lecture-report/)")
    lecture.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)

    train = _command(
        sub,
        "train",
        "train one of the lecture's or the course's networks and save it",
        "cnnlab train --model net2 --epochs 3 --out net2.cnnlab\n"
        "         cnnlab train --model scratch --optimizer adamw --batch-size 128 --out scratch.cnnlab",
    )
    train.add_argument(
        "--model",
        choices=tuple(TRAIN_MODELS),
        required=True,
        help="; ".join(f"{name}: {text}" for name, text in TRAIN_MODELS.items()),
    )
    _training_options(train)
    train.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adam",
        help="with Keras's defaults (default adam, as the lecture and keras.io)",
    )
    train.add_argument("--learning-rate", type=_positive_float, default=None, help="the optimizer's (default Keras's)")
    train.add_argument("--validation-split", type=_fraction, default=0.0, help="hold out the last fraction")
    train.add_argument("--out", default=None, help="model file (default MODEL.cnnlab)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)

    for name, help_text in (
        ("evaluate", "loss and accuracy of a saved model on the Fashion-MNIST test set"),
        ("summary", "print a saved model's layer table"),
        ("trace", "shape of every layer's output on the training images"),
    ):
        cmd = _command(sub, name, help_text, f"cnnlab {name} net2.cnnlab")
        cmd.add_argument(
            "model", metavar="MODEL", help="a .cnnlab file (cnnlab train, model.save()) or a Keras .keras/.h5 file"
        )
        if name != "summary":
            cmd.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
        if name == "trace":
            cmd.add_argument("--samples", type=_positive_int, default=None, help="first N images (default all)")

    predict = _command(
        sub,
        "predict",
        "classify images with a saved model (top 3 classes)",
        "cnnlab predict net2.cnnlab shoe.png shirt.npy",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG files or .npy arrays")
    predict.add_argument("--scale", type=_scale, default=None, help=SCALE_HELP)
    predict.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="Fashion-MNIST is light-on-dark; 'auto' inverts images with a light border",
    )
    convert = _command(
        sub,
        "convert",
        "convert a saved model to another format, chosen by the suffix of OUT (" + ", ".join(_WRITERS) + ")",
        "cnnlab convert net2.cnnlab net2.onnx",
    )
    convert.add_argument("source", metavar="IN", help="a model file (" + ", ".join(_READERS) + ")")
    convert.add_argument("target", metavar="OUT", help="the file to write; its suffix chooses the format")
    _explain_parsers(sub)
    return parser


def _explain_parsers(sub: Any) -> None:
    explain = _command(
        sub,
        "explain",
        "show the arithmetic behind any output of a convolution, pooling or model",
        'cnnlab explain conv --image "0 0 0 1 1 1; 0 0 0 1 1 1" --kernel "-1 1; -1 1"',
    )
    kinds = explain.add_subparsers(dest="what", required=True, metavar="WHAT")
    image_help = (
        'rows split by ";", values by spaces, channel planes by ";;"; or arange:4x4, ones:4x4x3, '
        "a .npy file (H, W[, C]) or a PNG"
    )
    conv = _command(
        kinds,
        "conv",
        "explain a convolution of an image you type",
        'cnnlab explain conv --image "0 0 0 1 1 1; 0 0 0 1 1 1; 0 0 0 1 1 1" --kernel "-1 1; -1 1" --all',
    )
    conv.add_argument("--image", required=True, help=image_help)
    conv.add_argument("--kernel", required=True, help="one filter, written like --image (planes = input channels)")
    conv.add_argument("--bias", type=float, default=0.0)
    conv.add_argument("--strides", default="1", help="N or N,M")
    conv.add_argument("--padding", choices=("valid", "same"), default="valid")
    conv.add_argument("--dilation", default="1", help="N or N,M")
    conv.add_argument("--activation", default=None, help="relu, sigmoid, tanh (default: none)")
    pool = _command(
        kinds,
        "pool",
        "explain a max (or average) pooling of an image you type",
        "cnnlab explain pool --image arange:4x4 --pool-size 2 --at 1,1",
    )
    pool.add_argument("--image", required=True, help=image_help)
    pool.add_argument("--pool-size", default="2", help="N or N,M (default 2)")
    pool.add_argument("--strides", default=None, help="N or N,M (default: the pool size)")
    pool.add_argument("--padding", choices=("valid", "same"), default="valid")
    pool.add_argument("--average", action="store_true", help="average instead of max pooling")
    for cmd in (conv, pool):
        # argparse takes "-1,0" for an option name ("--at: expected one argument"); let values that
        # start with a number reach the option, which then says what it expects
        cmd._negative_number_matcher = re.compile(r"^-\d")
        where = cmd.add_mutually_exclusive_group()
        where.add_argument("--at", default="0,0", help="output cell ROW,COL, counted from 0 (default 0,0)")
        where.add_argument("--all", action="store_true", help="explain every output cell")
        cmd.add_argument("--png", default=None, help="write the sliding-window picture here")
        cmd.add_argument("--html", default=None, help="write an interactive page here")
    model = _command(
        kinds,
        "model",
        "show every layer's output for one test image of a saved model",
        "cnnlab explain model net2.cnnlab --index 0 --html net2.html\n"
        "         cnnlab explain model cifar.keras --image cat.png --html cat.html",
    )
    model.add_argument("model", metavar="MODEL")
    which = model.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=0, help="which Fashion-MNIST test image (default 0)")
    which.add_argument(
        "--image",
        default=None,
        help="your own image instead (PNG/JPEG, or .npy of the model's input shape): for any model, "
        "e.g. a 32x32 RGB one loaded from a Keras file",
    )
    model.add_argument(
        "--invert", choices=("auto", "yes", "no"), default="auto", help="for --image, as in cnnlab predict"
    )
    model.add_argument("--scale", type=_scale, default=None, help=SCALE_HELP)
    model.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
    model.add_argument("--png", default=None, help="feature maps and learned filters as a picture")
    model.add_argument("--html", default=None, help="an interactive page of every layer's feature maps")


# ----------------------------------------------------------------- commands
def _load(path: str) -> Any:
    from cnnlab.saving import load_model

    return load_model(path)


def _test_data(model: Any, data: str | None) -> tuple[np.ndarray, np.ndarray]:
    from cnnlab.datasets import fashion_mnist

    _, (x_test, y_test) = fashion_mnist.load_data(data)
    scale = float(model.metadata.get("input_scale", 1.0))
    return x_test.reshape(-1, 28, 28, 1).astype(np.float64) * scale, y_test


#: the shape of one Fashion-MNIST image as the commands that read the data set feed it
FASHION_SAMPLE = (28, 28, 1)


def _check_fashion_input(model: Any, path: str, command: str, alternative: str = "") -> None:
    """``evaluate``, ``trace`` and ``explain model`` feed Fashion-MNIST images: refuse, by name, a
    model made for other inputs (e.g. 32x32 RGB) instead of failing inside its first layer."""
    shape = tuple(model.input_shape[1:])
    if shape != FASHION_SAMPLE:
        raise CommandError(
            f"{path}: the model takes inputs of shape {shape}, but cnnlab {command} feeds it Fashion-MNIST images "
            f"of shape {FASHION_SAMPLE}; use a model made for 28x28 grayscale images (e.g. from cnnlab train)"
            f"{alternative}."
        )


def _class_names(model: Any, fallback: list[str] | None = None) -> tuple[list[str], str | None]:
    """The names of the model's outputs and, when the model file's ``class_names`` cannot be used,
    a note saying why: they must be a list of one name per output. Without usable names:
    ``fallback`` when it has one name per output, else the output numbers "0", "1", ..."""
    outputs = int(model.output_shape[-1])
    names = model.metadata.get("class_names")
    note = None
    if names is not None:
        if isinstance(names, list) and len(names) == outputs:
            return [str(name) for name in names], None
        what = f"{len(names)} names" if isinstance(names, list) else f"a {type(names).__name__}"
        note = (
            f"note: the model file's class_names is {what}, but the model has {outputs} outputs; "
            "showing output numbers instead"
        )
    if fallback is not None and len(fallback) == outputs:
        return list(fallback), note
    return [str(k) for k in range(outputs)], note


def _check_out(check: Callable[[str], None], path: str) -> None:
    """Run ``check(path)`` before training, so an unwritable ``--out`` fails at once instead of
    after the work, with the option to change named."""
    try:
        check(path)
    except OSError as exc:
        raise CommandError(f"{exc} Nothing was trained: give --out a writable place.") from exc


def cmd_train(args: argparse.Namespace) -> None:
    import cnnlab as cl
    from cnnlab import lecture
    from cnnlab._atomic import check_target

    out = args.out or f"{args.model}.cnnlab"
    _check_out(lambda path: check_target(path, "cannot save the model to"), out)
    cl.set_random_seed(args.seed)
    from cnnlab import course_models

    builders = {"net1": lecture.build_net1, "net2": lecture.build_net2}
    builders.update({name: recipe[0] for name, recipe in course_models.RECIPES.items()})
    # the Simple MNIST convnet's recipe scales pixels to 0..1; the from-scratch model rescales itself
    normalize = args.normalize or (args.model in course_models.RECIPES and course_models.RECIPES[args.model][2])
    data = lecture.prepare_data(args.data, normalize)
    model = builders[args.model]()
    kind = type(cl.optimizers.get(args.optimizer))
    optimizer = kind() if args.learning_rate is None else kind(learning_rate=args.learning_rate)
    model.compile(optimizer, cl.losses.categorical_crossentropy, "accuracy")
    model.fit(
        data.X,
        data.y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        verbose=args.verbose,
    )
    model.metadata = data.metadata
    path = model.save(out)
    print(f"saved {args.model} to {path}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import cnnlab as cl

    model = _load(args.model)
    _check_fashion_input(model, args.model, "evaluate")
    outputs = int(model.output_shape[-1])
    if outputs != 10:  # the labels are Fashion-MNIST's 10 classes
        raise CommandError(
            f"{args.model}: the model has {outputs} outputs, but cnnlab evaluate scores it against Fashion-MNIST's "
            "10 classes; use a model with one output per class (e.g. from cnnlab train)."
        )
    x, y = _test_data(model, args.data)
    if not model.compiled:
        model.compile("adam", "categorical_crossentropy", ["accuracy"])
    # a Keras file may be compiled with integer labels (sparse_categorical_crossentropy) and without
    # an accuracy metric
    labels = y if model.loss.sparse_labels else cl.utils.to_categorical(y, 10)
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    loss = logs["loss"]
    accuracy = next((v for k, v in logs.items() if k.endswith("accuracy")), None)
    if accuracy is None:
        accuracy = float(np.mean(model.predict(x).argmax(-1) == y))
    print(f"{args.model}: test loss {loss:.4f}, test accuracy {accuracy:.4f} on {len(x):,} images")


def cmd_summary(args: argparse.Namespace) -> None:
    _load(args.model).summary()


def cmd_trace(args: argparse.Namespace) -> None:
    from cnnlab import lecture
    from cnnlab.datasets import fashion_mnist

    model = _load(args.model)
    _check_fashion_input(model, args.model, "trace")
    (x_train, _), _ = fashion_mnist.load_data(args.data)
    x = x_train[: args.samples].reshape(-1, 28, 28, 1).astype(np.float64)
    x *= float(model.metadata.get("input_scale", 1.0))
    for name, shape in lecture.shape_trace(model, x):
        print(f"  {name:<16} {shape}")


def _pixels(img: Any, size: tuple[int, int], channels: int) -> np.ndarray:
    """A PIL image as ``(H, W, channels)`` floats in 0..255 (1 channel: grayscale, 3: RGB): 16-bit
    images are scaled down (not clipped), transparent pixels are laid on white (the paper the
    garment is drawn on), then the image is resized to ``size`` (bilinear)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or wide.max() > 255 else 255.0
        img = Image.fromarray(np.clip(wide / top * 255.0, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float64).reshape(size[0], size[1], channels)


def read_image(path: str, invert: str = "auto", shape: tuple[int, ...] = FASHION_SAMPLE) -> np.ndarray:
    """An ``(H, W, C)`` float array in 0..255 for a model taking ``shape = (H, W, C)``: a PNG/JPEG
    (converted to grayscale for C = 1, RGB for C = 3, and resized) or a .npy array of exactly that
    shape ((H, W) also for C = 1). Grayscale images with a light border are inverted with
    ``invert="auto"`` (Fashion-MNIST is light-on-dark); colour images only with ``"yes"``."""
    h, w, c = shape
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    if file.suffix.lower() == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CommandError(f"{path}: not a readable .npy array ({exc})") from exc
        if c == 1 and array.shape == (h, w):
            array = array[..., None]
        if array.shape != (h, w, c):
            want = f"{(h, w)} or {(h, w, c)}" if c == 1 else f"{(h, w, c)}"
            raise CommandError(f"{path}: expected an array of shape {want}, received {array.shape}")
        if array.dtype.kind not in "biuf":
            raise CommandError(
                f"{path}: expected real pixel values, received dtype {array.dtype}; "
                "save a real array (for complex data e.g. np.abs(a)) in 0..255"
            )
        image = array.astype(np.float64)
        if not np.isfinite(image).all():
            raise CommandError(
                f"{path}: {np.count_nonzero(~np.isfinite(image))} pixel(s) are NaN or infinite; "
                "every pixel must be a number in 0..255"
            )
    else:
        from PIL import Image, UnidentifiedImageError

        if c not in (1, 3):
            raise CommandError(
                f"{path}: the model takes {c}-channel inputs; a PNG/JPEG gives 1 (grayscale) or 3 (RGB) channels. "
                f"Pass a .npy array of shape {(h, w, c)}."
            )
        try:
            with Image.open(file) as img:
                image = _pixels(img, (h, w), c)
        except (UnidentifiedImageError, OSError) as exc:
            raise CommandError(f"{path}: not a readable image (PNG or JPEG expected): {exc}") from exc
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if invert == "yes" or (invert == "auto" and c == 1 and border.mean() > 127):
        image = 255.0 - image
    return image


def _image_shape(model: Any, path: str) -> tuple[int, int, int]:
    """The ``(H, W, C)`` of one image the model takes (a model taking flat vectors of 784 values
    reads a 28x28 grayscale image)."""
    shape = tuple(model.input_shape[1:])
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if shape == (784,):
        return FASHION_SAMPLE
    raise CommandError(
        f"{path}: the model takes inputs of shape {shape}, not images (H, W, C); use the Python API for it."
    )


def cmd_predict(args: argparse.Namespace) -> None:
    model = _load(args.model)
    names, note = _class_names(model)
    if note:
        print(note)
    scale = _input_scale(model, args)
    shape = _image_shape(model, args.model)
    images = np.stack([read_image(p, args.invert, shape) for p in args.images]) * scale
    probs = model.predict(images.reshape(-1, *model.input_shape[1:]))
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(p)[::-1][:3]
        print(f"{path}: " + ", ".join(f"{names[k]} {p[k]:.3f}" for k in top))


def cmd_lecture(args: argparse.Namespace) -> None:
    from cnnlab import lecture

    _check_out(lecture.check_report_folder, args.out)
    lecture.run(args.epochs, args.batch_size, args.seed, args.normalize, args.quick, args.out, args.data, args.verbose)


def _pair(text: str, what: str) -> tuple[int, int]:
    """``--strides``, ``--pool-size``, ``--dilation``: ``N`` (both axes) or ``N,M``, whole numbers >= 1."""
    parts = text.replace(" ", "").split(",")
    if len(parts) not in (1, 2) or not all(re.fullmatch(r"\d+", p) and int(p) >= 1 for p in parts):
        raise UsageError(f"--{what} expects N or N,M with whole numbers >= 1 (got {text!r})")
    values = [int(p) for p in parts] * (3 - len(parts))
    return values[0], values[1]


def _cell(text: str, out_shape: tuple[int, ...]) -> tuple[int, int]:
    """``--at ROW,COL``: both coordinates, whole numbers counted from 0, inside the output."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2 or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise UsageError(f"--at expects ROW,COL with whole numbers >= 0, e.g. --at 0,1 (got {text!r})")
    row, col = int(parts[0]), int(parts[1])
    rows, cols = out_shape[0], out_shape[1]
    if row >= rows or col >= cols:
        raise UsageError(
            f"--at {text}: the output has {rows} row(s) and {cols} column(s); expected ROW in 0..{rows - 1} "
            f"and COL in 0..{cols - 1}"
        )
    return row, col


def cmd_explain(args: argparse.Namespace) -> None:
    from cnnlab import explain_views as views
    from cnnlab._atomic import check_target
    from cnnlab.layers import AveragePooling2D, Conv2D, MaxPooling2D

    for option in ("png", "html"):  # an unwritable place fails now, not after the work
        if getattr(args, option):
            check_target(getattr(args, option), f"--{option}: cannot write")
    if args.what == "model":
        _explain_model(args)
        return
    image = views.parse_matrix(args.image, "--image")
    if args.what == "conv":
        kernel = views.parse_matrix(args.kernel, "--kernel")
        if kernel.shape[2] != image.shape[2]:
            raise UsageError(
                f"--kernel has {kernel.shape[2]} channel plane(s) but --image has {image.shape[2]}; "
                'give one kernel plane per image channel, separated by ";;"'
            )
        layer = Conv2D(
            1,
            kernel.shape[:2],
            strides=_pair(args.strides, "strides"),
            padding=args.padding,
            dilation_rate=_pair(args.dilation, "dilation"),
            activation=args.activation,
            name="conv",
        )
        layer.build((None, *image.shape))
        layer.set_weights([kernel[..., None], np.array([args.bias])])
        print("kernel:\n" + "\n\n".join(views.grid_text(kernel[..., c]) for c in range(kernel.shape[2])))
    else:
        cls = AveragePooling2D if args.average else MaxPooling2D
        strides = None if args.strides is None else _pair(args.strides, "strides")
        layer = cls(_pair(args.pool_size, "pool-size"), strides=strides, padding=args.padding, name="pool")
    # checked against the output's shape before any arithmetic (--all ignores --at)
    at = (0, 0) if args.all else _cell(args.at, layer.compute_output_shape((1, *image.shape))[1:])
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf propagate, as IEEE arithmetic says
        _explain_window(args, layer, image, at)


def _explain_window(args: argparse.Namespace, layer: Any, image: np.ndarray, at: tuple[int, int]) -> None:
    from cnnlab import explain_views as views
    from cnnlab.explain import explain

    out = layer(image[None])[0]
    channels = range(out.shape[2]) if args.what == "pool" else [0]
    cells = [(i, j) for i in range(out.shape[0]) for j in range(out.shape[1])] if args.all else [at]
    explanations = [explain(layer, image[None], at=(0, i, j, c)) for c in channels for i, j in cells]
    first = explanations[0]
    print("input:\n" + "\n\n".join(views.grid_text(image[..., c]) for c in range(image.shape[2])))
    print(
        "output:\n"
        + "\n\n".join(
            views.grid_text(out[..., c], {(first.at[1], first.at[2])} if not args.all else None)
            for c in range(out.shape[2])
        )
    )
    for e in explanations:
        print()
        print(e)
    if not np.isfinite(image).all():
        print(f"\nnote: --image holds {np.count_nonzero(~np.isfinite(image))} NaN or infinite value(s); they propagate")
    if args.png:
        kernel = layer.kernel[..., 0:1][..., 0] if args.what == "conv" else None
        path = views.window_figure(image, first, out[..., first.at[3]], kernel, Path(args.png))
        print(f"\npicture written to {path}")
    if args.html:
        page = {
            "title": f"cnnlab explain {args.what}",
            "at": list(first.at[1:]),
            "layers": [views.window_layer_panel(layer, image, args.what)],
        }
        print(f"page written to {views.write_html(Path(args.html), page)}")


def _explain_model(args: argparse.Namespace) -> None:
    from cnnlab import explain_views as views
    from cnnlab.datasets import fashion_mnist
    from cnnlab.explain import trace
    from cnnlab.layers import Conv2D

    model = _load(args.model)
    scale = _input_scale(model, args)
    if args.image is not None:  # the user's own image: any model, no data set, no label
        shape = _image_shape(model, args.model)
        image = read_image(args.image, args.invert, shape).reshape(model.input_shape[1:]) * scale
        names, note = _class_names(model)
        truth, label, heading = None, None, f"image {args.image}"
    else:
        _check_fashion_input(model, args.model, "explain model", "; or pass your own image with --image")
        _, (x_test, y_test) = fashion_mnist.load_data(args.data)
        if not 0 <= args.index < len(x_test):
            raise CommandError(
                f"--index {args.index} is out of range: the test set has {len(x_test)} images (0..{len(x_test) - 1})"
            )
        image = x_test[args.index].reshape(28, 28, 1).astype(np.float64) * scale
        names, note = _class_names(model, list(fashion_mnist.class_names))
        truth = fashion_mnist.class_names[y_test[args.index]]  # the data set's label, whatever the model's outputs
        label, heading = int(y_test[args.index]), f"test image {args.index}"
    if note:
        print(note)
    steps = trace(model, image)
    print(heading + ("" if truth is None else f" (true class: {truth})"))
    title = f"{model.name}: {heading}" + ("" if truth is None else f" ({truth})")
    for name, out in steps:
        print(f"  {name:<18} {str(out.shape):<16} min {fmt(out.min())}  max {fmt(out.max())}  mean {fmt(out.mean())}")
    probs = steps[-1][1]
    print("prediction: " + ", ".join(f"{names[k]} {probs[k]:.3f}" for k in np.argsort(probs)[::-1][:3]))
    if args.png:
        kernels = {layer.name: layer.kernel for layer, _ in model._leaves() if isinstance(layer, Conv2D)}
        path = views.feature_maps_figure(steps, kernels, Path(args.png), title)
        print(f"picture written to {path}")
    if args.html:
        page = views.model_page(
            model,
            image,
            title,
            names,
            label,
            overlays=_attribution_overlays(model, image),
            # one training step needs labels: the test images have them, the user's own image not
            weights=None if args.image is not None else _weight_panel(model, x_test, y_test, args.index, scale),
        )
        print(f"page written to {views.write_html(Path(args.html), page)}")


#: images in the model page's training batch: the shown test image and the ones after it
WEIGHT_BATCH = 8


def weight_batch(n_images: int, index: int, size: int = WEIGHT_BATCH) -> list[int]:
    """The test images of the model page's weight panel: ``index`` and the next ones (wrapping)."""
    return [(index + k) % n_images for k in range(min(size, n_images))]


def _weight_panel(
    model: Any, x_test: np.ndarray, y_test: np.ndarray, index: int, scale: float
) -> dict[str, Any] | None:
    """One training step on a small batch (the shown image and the next ones), explained for a
    few weights; the model's own optimizer and loss when the file has them, else Adam and
    categorical cross-entropy (as ``cnnlab train``). None when the model has no Conv2D/Dense."""
    from cnnlab import explain_views as views
    from cnnlab.utils import to_categorical

    if not views.default_weight_picks(model):
        return None
    own = model.compiled
    if not own:
        model.compile("adam", "categorical_crossentropy")
    batch = weight_batch(len(x_test), index)
    x = x_test[batch].reshape(-1, 28, 28, 1).astype(np.float64) * scale
    labels = np.asarray(y_test[batch], dtype=np.int64)
    y = labels if "sparse" in model.loss.name else to_categorical(labels, int(model.output_shape[-1]))
    opt = type(model.optimizer).__name__
    note = (
        f"One training step on a batch of {len(batch)} test images (#{', #'.join(map(str, batch))}: the shown one "
        f"and the next ones) with their labels; loss {model.loss.name}, optimizer {opt} "
        + ("(the model file's own, with its saved state)" if own else "(Adam: the file has no optimizer)")
        + ". Each weight is the entry of its array with the largest |gradient|; the model is not changed."
    )
    return views.weight_change_panel(model, x, y, note)


def _attribution_overlays(model: Any, image: np.ndarray) -> list[dict[str, Any]]:
    """Grad-CAM and saliency of the predicted class, drawn over the input on the model page (a
    model without a spatial layer has no Grad-CAM: the page then offers saliency only)."""
    from cnnlab.attribution import explain_prediction
    from cnnlab.errors import CnnlabError

    overlays: list[dict[str, Any]] = []
    for name, method in (("Grad-CAM", "grad_cam"), ("saliency", "saliency")):
        try:
            result = explain_prediction(model, image, method=method)
        except CnnlabError:
            continue
        heat = np.asarray(result.heatmap, dtype=np.float64)
        top = float(np.max(np.abs(heat))) or 1.0
        overlays.append({"name": f"{name} ({result.class_name})", "heatmap": np.abs(heat) / top})
    return overlays


def _save_cnnlab(model: Any, path: str) -> Any:
    from cnnlab.saving import save_model

    return save_model(model, path, model.metadata)


def _export_onnx(model: Any, path: str) -> Any:
    return model.export(path, format="onnx")


#: ``cnnlab convert``: how to read IN and write OUT, by file suffix (lower case)
_READERS: dict[str, Callable[[str], Any]] = {suffix: _load for suffix in (".cnnlab", ".keras", ".h5", ".hdf5")}
#: save_model chooses cnnlab's format or Keras's (.keras, .h5) by the suffix itself
_WRITERS: dict[str, Callable[[Any, str], Any]] = {
    **{suffix: _save_cnnlab for suffix in (".cnnlab", ".keras", ".h5", ".hdf5")},
    ".onnx": _export_onnx,
}


def _by_suffix(table: dict[str, Any], path: str, role: str) -> Any:
    suffix = Path(path).suffix.lower()
    if suffix not in table:
        raise CommandError(
            f"cannot tell the format of {role} {path!r} from its suffix {suffix or '(none)'!r}; "
            f"expected one of {', '.join(table)}."
        )
    return table[suffix]


def cmd_convert(args: argparse.Namespace) -> None:
    read = _by_suffix(_READERS, args.source, "IN")
    write = _by_suffix(_WRITERS, args.target, "OUT")
    path = write(read(args.source), args.target)
    print(f"converted {args.source} to {path}")


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (a data-set search lists its places on several)."""
    lines = [line.strip().removeprefix("- ") for line in (str(exc) or type(exc).__name__).splitlines() if line.strip()]
    return "".join(
        line + ("" if k == len(lines) - 1 else " " if line.endswith(":") else "; ") for k, line in enumerate(lines)
    )


COMMANDS = {
    "lecture": cmd_lecture,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "summary": cmd_summary,
    "trace": cmd_trace,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "convert": cmd_convert,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (CnnlabError, OSError) as exc:
        # a user's mistake or a file that cannot be read or written: one line, no traceback;
        # anything else is a bug in cnnlab and keeps its traceback
        print(f"cnnlab {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
