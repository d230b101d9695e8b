"""cnnlab.errors: one module of user-facing errors, each also a built-in exception; the CLI reports
exactly these as one line and lets every other exception (a bug) show its traceback."""

from __future__ import annotations

import pytest

import cnnlab as cl
from cnnlab import cli, errors


def test_classes_keep_their_builtin_bases():
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.ArgumentTypeError, TypeError) and issubclass(errors.ArgumentTypeError, ValueError)
    assert issubclass(errors.ShapeError, ValueError)
    assert issubclass(errors.NotReadyError, RuntimeError)
    assert issubclass(errors.DataNotFoundError, FileNotFoundError)
    assert issubclass(errors.NotRegularFileError, OSError) and issubclass(errors.NotRegularFileError, ValueError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CnnlabError)


def test_old_homes_reexport_the_same_classes():
    from cnnlab import _atomic, saving
    from cnnlab.datasets import fashion_mnist, idx

    assert saving.ModelFileError is errors.ModelFileError
    assert idx.DataFileError is fashion_mnist.DataFileError is errors.DataFileError
    assert fashion_mnist.DataNotFoundError is errors.DataNotFoundError
    assert _atomic.NotRegularFileError is saving.NotRegularFileError is errors.NotRegularFileError
    assert cli.UserError is errors.CommandError


def test_library_raises_the_documented_classes():
    with pytest.raises(errors.InvalidArgumentError, match="units"):
        cl.layers.Dense(0)
    with pytest.raises(errors.NotReadyError, match="compile"):
        cl.Sequential([cl.layers.Input((2,)), cl.layers.Dense(1)]).fit([[1.0, 2.0]], [[1.0]])
    with pytest.raises(errors.ModelFileError):
        cl.models.load_model("no-such-model.cnnlab")


def test_cli_shows_a_traceback_for_a_bug(monkeypatch, capsys):
    def buggy(args):
        raise KeyError("internal")

    monkeypatch.setitem(cli.COMMANDS, "summary", buggy)
    with pytest.raises(KeyError):
        cli.main(["summary", "x.cnnlab"])


def test_cli_reports_user_errors_on_one_line(monkeypatch, capsys):
    def failing(args):
        raise errors.DataNotFoundError("Fashion-MNIST was not found. Places tried:\n  - a\n  - b")

    monkeypatch.setitem(cli.COMMANDS, "summary", failing)
    assert cli.main(["summary", "x.cnnlab"]) == 1
    err = capsys.readouterr().err
    assert err == "cnnlab summary: Fashion-MNIST was not found. Places tried: a; b\n"
