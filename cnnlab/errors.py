"""The errors cnnlab raises for a user's mistake or a bad file, all in one place.

Every class is a :class:`CnnlabError` and also a subclass of the built-in exception that
code written before this module caught (``ValueError``, ``TypeError``, ``RuntimeError``,
``OSError``), so ``except ValueError`` keeps working. Each message names the argument or
file, what was expected, what was received and the fix.

The command line (:mod:`cnnlab.cli`) reports exactly these (and ``OSError`` for files) as
one line; anything else is a bug in cnnlab and shows its traceback.

========================  =============================  =====================================
class                     built-in base                  raised for
========================  =============================  =====================================
InvalidArgumentError      ValueError                     a bad argument value
ArgumentTypeError         ValueError, TypeError          an argument of the wrong type
ShapeError                ValueError                     arrays or layers whose shapes clash
NotReadyError             RuntimeError                   a model used before compile/build
ModelFileError            ValueError                     an unreadable, corrupt or foreign model file
DataFileError             ValueError                     a corrupt or foreign data-set file
DataNotFoundError         FileNotFoundError (OSError)    no place held the data set
NotRegularFileError       OSError, ValueError            writing over a directory, FIFO, device
CommandError              ValueError                     bad input to a ``cnnlab`` command
UsageError                ValueError                     an option value not in its documented form
MissingDependencyError    ImportError                    an optional package a feature needs
========================  =============================  =====================================
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "CnnlabError",
    "CommandError",
    "DataFileError",
    "DataNotFoundError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "ModelFileError",
    "NotReadyError",
    "NotRegularFileError",
    "ShapeError",
    "UsageError",
]


class CnnlabError(Exception):
    """Base of every user-facing cnnlab error: ``except cnnlab.errors.CnnlabError`` catches them all."""


class InvalidArgumentError(CnnlabError, ValueError):
    """An argument has a value cnnlab cannot use; the message names the argument and the fix."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (also a ``TypeError``)."""


class ShapeError(InvalidArgumentError):
    """Arrays or layers whose shapes do not fit together."""


class NotReadyError(CnnlabError, RuntimeError):
    """A model is used before the step it needs (compile, build)."""


class ModelFileError(CnnlabError, ValueError):
    """A model file is unreadable, corrupt, foreign or too new."""


class DataFileError(CnnlabError, ValueError):
    """A data file exists but is not what it should be (corrupt, truncated, foreign)."""


class DataNotFoundError(CnnlabError, FileNotFoundError):
    """No place held the data set and it could not be downloaded."""


class NotRegularFileError(CnnlabError, OSError, ValueError):
    """The target exists but is not a regular file (directory, FIFO, device, socket).

    An ``OSError`` so that ``except OSError`` around a write keeps working, and a
    ``ValueError`` because the caller passed the wrong kind of path.
    """


class CommandError(InvalidArgumentError):
    """Bad input to a ``cnnlab`` command (an option, an image file), reported as one line."""


class UsageError(CommandError):
    """An option of a ``cnnlab`` command whose value does not follow its documented form
    (``--at ROW,COL``, ``--image arange:HxW``): exit status 2, as argparse's usage errors, with
    one line naming the option, the form expected and the value received."""


class MissingDependencyError(CnnlabError, ImportError):
    """An optional package a feature needs is not installed (e.g. ``onnx`` for ONNX export); the
    message names the ``pip install`` command."""
