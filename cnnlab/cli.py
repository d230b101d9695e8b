"""The ``cnnlab`` command line."""

from __future__ import annotations

import argparse
import sys

from cnnlab.datasets.fashion_mnist import DataNotFoundError
from cnnlab.datasets.idx import DataFileError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Keras-compatible convolutional networks in NumPy, with explanations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lecture = sub.add_parser(
        "lecture",
        help="train the lecture's dense network and CNN on Fashion-MNIST and compare them",
        description="Train net1 (MLP) and net2 (CNN) on Fashion-MNIST as the lecture does and compare them.",
        epilog="example: cnnlab lecture --quick --out /tmp/report",
    )
    lecture.add_argument("--epochs", type=_positive_int, default=5)
    lecture.add_argument("--batch-size", type=_positive_int, default=32)
    lecture.add_argument("--seed", type=int, default=43052)
    lecture.add_argument("--normalize", action="store_true", help="scale pixels to 0..1 (the lecture does not)")
    lecture.add_argument("--quick", action="store_true", help="6,000 images, 1 epoch: a smoke test")
    lecture.add_argument("--out", default="lecture-report", help="report folder (default: lecture-report/)")
    lecture.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
    lecture.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "lecture":
            from cnnlab import lecture

            lecture.run(
                args.epochs, args.batch_size, args.seed, args.normalize, args.quick, args.out, args.data, args.verbose
            )
    except (DataNotFoundError, DataFileError, ValueError, OSError) as exc:
        print(f"cnnlab {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
