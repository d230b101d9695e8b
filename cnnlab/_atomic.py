"""Writing files so that a crash never leaves a half-written one.

Everything cnnlab writes (downloads, model files, reports, pictures, explain pages) goes
through :func:`atomic_path`, which guarantees:

* **atomic**: the data go to a temporary file beside the target, which is flushed to disk
  and renamed over the target only once it is complete; on any failure (or Ctrl-C) the
  temporary file is removed and the old target, if any, stays exactly as it was;
* **regular files only**: a target that exists but is a directory, FIFO, device node or
  socket is refused before anything is written, never replaced;
* **symlinks are followed**: writing to a symlink replaces the file it points to (through
  any chain of links); the link itself stays a link;
* **mode and owner are kept**: a replaced file keeps its permission bits and, where the
  process is allowed to set them (e.g. as root), its owner and group; a new file gets the
  permissions ``open(path, "w")`` would give it (0666 less the umask);
* the temporary file has a short name, so any legal target name works.

Errors are ``OSError``\\ s whose message names the path the caller gave (never the
temporary file), the reason and the fix, so ``except OSError`` catches all of them:

* a target of the wrong kind raises :class:`NotRegularFileError`, which is both an
  ``OSError`` (``errno`` ``EISDIR`` for a directory, ``EINVAL`` otherwise) and a
  ``ValueError`` (it is a bad argument, not a failing disk);
* every other failure raises the ``OSError`` subclass Python uses for its ``errno``
  (``PermissionError`` for ``EACCES``, ``NotADirectoryError`` for ``ENOTDIR``, plain
  ``OSError`` for ``EROFS``, ``ENAMETOOLONG`` ...), with ``errno`` set.

:func:`check_target` and :func:`check_folder` run the same checks up front, for jobs that
should fail before a long computation rather than after it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import NotRegularFileError as NotRegularFileError  # re-exported: its home before cnnlab.errors

#: what a target of each non-regular kind is called in messages
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink that cannot be resolved (a loop)"),
)


def _error(code: int | None, message: str, cls: type[OSError] | None = None) -> OSError:
    """An ``OSError`` with ``errno`` ``code`` and ``message`` as its text: of class ``cls``, or
    else of the subclass Python raises for ``code`` (``PermissionError`` for ``EACCES`` ...)."""
    if cls is None:
        cls = type(OSError(code, "")) if code else OSError
    exc = cls(message)
    # set after construction: with errno and strerror passed in, the text would be
    # "[Errno N] ..." instead of the message
    exc.errno = code
    return exc


def _kind(mode: int) -> str | None:
    """What a non-regular file of ``mode`` is called; None for a regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _resolve(target: Path) -> Path:
    """The file that writing to ``target`` should replace: symlinks followed to the end."""
    return Path(os.path.realpath(target))


def _refuse_kind(user: Path | str, final: Path, action: str) -> None:
    """Raise :class:`NotRegularFileError` if ``final`` exists and is not a regular file."""
    if str(user).endswith(("/", os.sep)):
        raise _error(
            errno.EISDIR,
            f"{action} {user}: expected a file name, but the path ends with {os.sep!r}, so it names a folder; "
            "add a file name, or choose another path.",
            NotRegularFileError,
        )
    try:
        mode = os.lstat(final).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # an ancestor is a file: reported with its name when the folder is made
    except OSError as exc:  # e.g. a name too long to look up
        raise _explain(exc, user, final.parent, action) from exc
    kind = _kind(mode)
    if kind is None:
        return
    via = f" (the symlink leads to {final})" if os.path.islink(user) and str(final) != os.path.abspath(user) else ""
    fix = (
        "give a file name inside it, or choose another path"
        if stat.S_ISDIR(mode)
        else "cnnlab never replaces anything but a regular file: choose another path, or remove it first"
    )
    raise _error(
        errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL,
        f"{action} {user}: expected a regular file (or a new name), received {kind}{via}; {fix}.",
        NotRegularFileError,
    )


def _file_in_the_way(path: Path) -> Path | None:
    """The first ancestor folder of ``path`` that exists but is not a folder, written as the
    caller wrote ``path`` (relative stays relative)."""
    for ancestor in reversed(path.parents):
        if os.path.lexists(ancestor) and not os.path.isdir(ancestor):
            return ancestor
    return None


def _explain(exc: OSError, user: Path | str, folder: Path, action: str) -> OSError:
    """``exc`` told about the caller's path ``user``: the reason in words and the fix."""
    code = exc.errno
    blocker = _file_in_the_way(Path(user)) if code in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT) else None
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder, so nothing can be created inside it"
        fix = "choose a path whose folders are folders"
        code = errno.ENOTDIR
    elif code in (errno.EACCES, errno.EPERM):
        reason = f"permission denied in the folder {folder}"
        fix = "choose a folder you can write to, or change its permissions"
    elif code == errno.EROFS:
        reason = f"the folder {folder} is on a read-only file system"
        fix = "choose a place on a writable file system"
    elif code == errno.ENAMETOOLONG:
        reason = "the name is too long for the file system"
        fix = "choose a shorter name"
    elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        reason = f"no space left for it in {folder} ({exc.strerror})"
        fix = "free some space, or choose another place"
    elif code == errno.ENOENT:
        reason = f"files cannot be created in {folder} ({exc.strerror})"
        fix = "choose an ordinary folder"
    else:
        reason = exc.strerror or str(exc)
        fix = "choose another place"
    return _error(code, f"{action} {user}: {reason}; {fix}.")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return 255  # the common limit (ext4, xfs, btrfs, tmpfs, NTFS)


def _prepare(user: Path | str, action: str) -> Path:
    """Check ``user`` as a target, make its folder, and return the file to replace."""
    try:
        final = _resolve(Path(user))
    except OSError as exc:  # e.g. a name too long to look up
        raise _explain(exc, user, Path(os.path.abspath(user)).parent, action) from exc
    _refuse_kind(user, final, action)
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _explain(exc, user, folder, action) from exc
    length, limit = len(os.fsencode(final.name)), _name_max(folder)
    if length > limit:
        raise _error(
            errno.ENAMETOOLONG,
            f"{action} {user}: the name is too long ({length} bytes; this file system allows {limit}); "
            "choose a shorter name.",
        )
    return final


def _create_temp(folder: Path, suffix: str, user: Path | str, action: str) -> Path:
    """A new empty file with a short hidden name in ``folder``, created as ``open()`` would
    (mode 0666 less the umask; ``mkstemp`` would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f".cnnlab-{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _explain(exc, user, folder, action) from exc
        os.close(fd)
        return tmp
    raise _error(errno.EEXIST, f"{action} {user}: no free temporary name in {folder}; try again.")


def _copy_owner_and_mode(source: os.stat_result, tmp: Path) -> None:
    """Give ``tmp`` the owner, group and permission bits of the file it will replace."""
    if hasattr(os, "chown"):
        own = os.stat(tmp)
        if (own.st_uid, own.st_gid) != (source.st_uid, source.st_gid):
            try:
                os.chown(tmp, source.st_uid, source.st_gid)
            except PermissionError:
                pass  # only root may give a file away; the new file stays the writer's own
    # after chown, which clears set-user-ID bits
    os.chmod(tmp, stat.S_IMODE(source.st_mode))


def _fsync(path: Path, directory: bool = False) -> None:
    if directory:
        if os.name == "nt":
            return  # Windows cannot open a directory to sync it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    else:
        fd = os.open(path, os.O_RDONLY if os.name != "nt" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(tmp: Path, final: Path, user: Path | str, action: str) -> None:
    """Copy owner and mode, flush, and rename ``tmp`` over ``final``."""
    # checked again: the target may have been replaced by something else meanwhile
    _refuse_kind(user, final, action)
    try:
        old = os.stat(final)
    except FileNotFoundError:
        old = None
    try:
        if old is not None:
            _copy_owner_and_mode(old, tmp)
        _fsync(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        raise _explain(exc, user, final.parent, action) from exc
    try:
        _fsync(final.parent, directory=True)
    except OSError:
        pass  # the rename is done; some file systems cannot sync a directory


@contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp", action: str = "cannot write") -> Iterator[Path]:
    """Yield a temporary path beside the file ``target`` names; rename it over that file
    if the block succeeds, delete it if the block raises (the old file stays as it was).

    See the module docstring for the guarantees. The target is checked before the block
    runs, so a wrong kind of target, an unusable folder or a name that is too long fail
    before any work is done. ``suffix`` ends the temporary name (some writers choose the
    format by it); ``action`` starts error messages, e.g. ``"cannot save the model to"``.
    """
    user = target if isinstance(target, str) else Path(target)
    final = _prepare(user, action)
    tmp = _create_temp(final.parent, suffix, user, action)
    try:
        try:
            yield tmp
        except OSError as exc:
            # an error about the temporary file is about the caller's file: say so
            if exc.errno is not None and exc.filename in (None, str(tmp), tmp):
                raise _explain(exc, user, final.parent, action) from exc
            raise
        _finish(tmp, final, user, action)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_target(target: str | os.PathLike[str], action: str = "cannot write") -> None:
    """Fail now, with the error :func:`atomic_path` would raise later, if ``target`` cannot be
    written: it is a directory or other non-regular file, its folder cannot be made (it is
    made if missing) or written to, or its name is too long. Writes nothing else."""
    user = target if isinstance(target, str) else Path(target)
    final = _prepare(user, action)
    _create_temp(final.parent, ".probe", user, action).unlink()


def check_folder(
    folder: str | os.PathLike[str], action: str = "cannot write to", shown: str | os.PathLike[str] | None = None
) -> None:
    """Fail now if files cannot be written in ``folder``: it is a file, cannot be made (it
    is made if missing) or is not writable. Errors name ``shown`` (default ``folder``)."""
    user = folder if isinstance(folder, str) else Path(folder)
    named = user if shown is None else shown
    path = Path(os.path.realpath(user))
    if os.path.lexists(path) and not path.is_dir():
        kind = _kind(os.lstat(path).st_mode) or "a file"
        raise _error(
            errno.ENOTDIR,
            f"{action} {named}: {user} is {kind}, not a folder; choose another folder.",
            NotRegularFileError,
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _explain(exc, named, path, action) from exc
    _create_temp(path, ".probe", named, action).unlink()
