"""The ``cnnlab`` command line: the lecture job, training, and using saved models.

Every user error (missing file, bad option, unreadable image) prints one line to
stderr and exits with status 1 (2 for bad usage), without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.datasets.fashion_mnist import DataNotFoundError
from cnnlab.datasets.idx import DataFileError


class UserError(ValueError):
    """An error caused by the command's input, reported as one line."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


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
        "train one of the lecture's networks and save it",
        "cnnlab train --model net2 --epochs 3 --out net2.cnnlab",
    )
    train.add_argument("--model", choices=("net1", "net2"), required=True)
    _training_options(train)
    train.add_argument("--validation-split", type=_fraction, default=0.0, help="hold out the last fraction")
    train.add_argument("--out", default=None, help="model file (default MODEL.cnnlab)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)

    for name, help_text in (
        ("evaluate", "loss and accuracy of a saved model on the Fashion-MNIST test set"),
        ("summary", "print a saved model's layer table"),
        ("trace", "shape of every layer's output on the training images"),
    ):
        cmd = _command(sub, name, help_text, f"cnnlab {name} net2.cnnlab")
        cmd.add_argument("model", metavar="MODEL", help="a file written by 'cnnlab train' or model.save()")
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
    predict.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="Fashion-MNIST is light-on-dark; 'auto' inverts images with a light border",
    )
    return parser


# ----------------------------------------------------------------- commands
def _load(path: str) -> Any:
    from cnnlab.saving import load_model

    return load_model(path)


def _test_data(model: Any, data: str | None) -> tuple[np.ndarray, np.ndarray]:
    from cnnlab.datasets import fashion_mnist

    _, (x_test, y_test) = fashion_mnist.load_data(data)
    scale = float(model.metadata.get("input_scale", 1.0))
    return x_test.reshape(-1, 28, 28, 1).astype(np.float64) * scale, y_test


def cmd_train(args: argparse.Namespace) -> None:
    import cnnlab as cl
    from cnnlab import lecture

    cl.set_random_seed(args.seed)
    data = lecture.prepare_data(args.data, args.normalize)
    model = lecture.build_net1() if args.model == "net1" else lecture.build_net2()
    model.compile("adam", cl.losses.categorical_crossentropy, "accuracy")
    model.fit(
        data.X,
        data.y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        verbose=args.verbose,
    )
    model.metadata = data.metadata
    path = model.save(args.out or f"{args.model}.cnnlab")
    print(f"saved {args.model} to {path}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import cnnlab as cl

    model = _load(args.model)
    x, y = _test_data(model, args.data)
    if not model.compiled:
        model.compile("adam", "categorical_crossentropy", ["accuracy"])
    loss, accuracy = model.evaluate(x, cl.utils.to_categorical(y, 10), verbose=0)
    print(f"{args.model}: test loss {loss:.4f}, test accuracy {accuracy:.4f} on {len(x):,} images")


def cmd_summary(args: argparse.Namespace) -> None:
    _load(args.model).summary()


def cmd_trace(args: argparse.Namespace) -> None:
    from cnnlab import lecture
    from cnnlab.datasets import fashion_mnist

    model = _load(args.model)
    (x_train, _), _ = fashion_mnist.load_data(args.data)
    x = x_train[: args.samples].reshape(-1, 28, 28, 1).astype(np.float64)
    x *= float(model.metadata.get("input_scale", 1.0))
    for name, shape in lecture.shape_trace(model, x):
        print(f"  {name:<16} {shape}")


def read_image(path: str, invert: str = "auto") -> np.ndarray:
    """A (28, 28) float array in 0..255 from a PNG/JPEG (converted to grayscale and resized)
    or a .npy array of shape (28, 28) or (28, 28, 1)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: no such file")
    if file.suffix.lower() == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a readable .npy array ({exc})") from exc
        if array.shape == (28, 28, 1):
            array = array[..., 0]
        if array.shape != (28, 28):
            raise UserError(f"{path}: expected an array of shape (28, 28) or (28, 28, 1), received {array.shape}")
        image = array.astype(np.float64)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as img:
                image = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float64)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{path}: not a readable image (PNG or JPEG expected): {exc}") from exc
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if invert == "yes" or (invert == "auto" and border.mean() > 127):
        image = 255.0 - image
    return image


def cmd_predict(args: argparse.Namespace) -> None:
    model = _load(args.model)
    names = model.metadata.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    scale = float(model.metadata.get("input_scale", 1.0))
    images = np.stack([read_image(p, args.invert) for p in args.images])[..., None] * scale
    probs = model.predict(images)
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(p)[::-1][:3]
        print(f"{path}: " + ", ".join(f"{names[k]} {p[k]:.3f}" for k in top))


def cmd_lecture(args: argparse.Namespace) -> None:
    from cnnlab import lecture

    lecture.run(args.epochs, args.batch_size, args.seed, args.normalize, args.quick, args.out, args.data, args.verbose)


COMMANDS = {
    "lecture": cmd_lecture,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "summary": cmd_summary,
    "trace": cmd_trace,
    "predict": cmd_predict,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (DataNotFoundError, DataFileError, ValueError, OSError) as exc:
        print(f"cnnlab {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
