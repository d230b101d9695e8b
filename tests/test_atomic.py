from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

from cnnlab._atomic import NotRegularFileError, atomic_path


def test_atomic_path_renames_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# ---------------------------------------------------------------- what the target may be
def _no_temp_left(folder):
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _check_message(message, target):
    """The error names the user's path and never the hidden temporary file."""
    assert str(target) in message and "[Errno" not in message
    assert ".tmp" not in message.replace(str(target), "")


def _make_fifo(path):
    os.mkfifo(path)
    return stat.S_ISFIFO


def _make_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return stat.S_ISSOCK


def _make_directory(path):
    path.mkdir()
    return stat.S_ISDIR


def _make_char_device(path):
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # the numbers of /dev/null
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    return stat.S_ISCHR


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a POSIX system")
@pytest.mark.parametrize("make", [_make_fifo, _make_socket, _make_directory, _make_char_device])
def test_refuses_every_target_that_is_not_a_regular_file(tmp_path, make):
    target = tmp_path / "m.cnnlab"
    is_kind = make(target)
    with pytest.raises(NotRegularFileError) as info, atomic_path(target) as tmp:
        tmp.write_text("never")
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)
    message = str(info.value)
    _check_message(message, target)
    assert "expected a regular file" in message and "choose another" in message.lower()
    assert is_kind(os.lstat(target).st_mode)  # untouched
    assert _no_temp_left(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a POSIX system")
def test_refuses_before_the_block_runs(tmp_path):
    target = tmp_path / "pipe"
    os.mkfifo(target)
    ran = []
    with pytest.raises(NotRegularFileError, match="received a FIFO"), atomic_path(target):
        ran.append(True)
    assert not ran


def test_a_trailing_slash_names_a_folder(tmp_path):
    target = str(tmp_path / "new") + os.sep
    with pytest.raises(NotRegularFileError, match="ends with"), atomic_path(target):
        pass
    assert _no_temp_left(tmp_path) and not (tmp_path / "new").exists()


def test_overwriting_keeps_the_mode(tmp_path):
    target = tmp_path / "m.cnnlab"
    target.write_text("old")
    target.chmod(0o600)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.chmod(0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("newer")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give files away")
def test_overwriting_keeps_owner_and_group(tmp_path):
    target = tmp_path / "m.cnnlab"
    target.write_text("old")
    os.chown(target, 4321, 8765)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (4321, 8765) and target.read_text() == "new"


def test_new_files_get_the_umask_mode_even_with_an_unusual_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_writes_through_symlinks_and_the_link_stays(tmp_path):
    real = tmp_path / "store" / "real.cnnlab"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.cnnlab"
    link.symlink_to(os.path.join("store", "real.cnnlab"))  # relative, as users make them
    chain = tmp_path / "chain.cnnlab"
    chain.symlink_to(link)
    with atomic_path(chain) as tmp:
        assert tmp.parent == real.parent  # the temporary file is beside the real target
        tmp.write_text("new")
    assert chain.is_symlink() and link.is_symlink()
    assert os.readlink(link) == os.path.join("store", "real.cnnlab")
    assert real.read_text() == "new" and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert _no_temp_left(tmp_path) and _no_temp_left(real.parent)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "sub" / "made")
    with atomic_path(link) as tmp:
        tmp.write_text("x")
    assert link.is_symlink() and (tmp_path / "sub" / "made").read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlink_to_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    link = tmp_path / "link"
    link.symlink_to("pipe")
    with pytest.raises(NotRegularFileError) as info, atomic_path(link):
        pass
    _check_message(str(info.value), link)
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def test_longest_legal_name_works_and_the_temporary_name_is_short(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    target = tmp_path / ("m" * (limit - 7) + ".cnnlab")
    assert len(target.name) == limit
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and len(tmp.name) <= 64
        tmp.write_text("x")
    assert target.read_text() == "x" and _no_temp_left(tmp_path)


def test_a_name_too_long_is_named_with_the_reason(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    target = tmp_path / ("m" * (limit + 1))
    ran = []
    with pytest.raises(OSError) as info, atomic_path(target):
        ran.append(True)
    assert info.value.errno == errno.ENAMETOOLONG and not ran
    _check_message(str(info.value), target)
    assert "too long" in str(info.value) and _no_temp_left(tmp_path)


def test_a_path_under_a_regular_file_names_that_file(tmp_path):
    (tmp_path / "file.txt").write_text("a file")
    target = tmp_path / "file.txt" / "sub" / "m.cnnlab"
    with pytest.raises(OSError) as info, atomic_path(target):
        pass
    message = str(info.value)
    _check_message(message, target)
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in message


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_proc_is_refused_with_the_users_path(tmp_path):
    target = "/proc/cnnlab-test.cnnlab"
    with pytest.raises(OSError) as info, atomic_path(target):
        pass
    _check_message(str(info.value), target)
    assert not os.path.exists(target)


def test_a_failing_rename_keeps_the_original_and_names_the_reason(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_text("new")
    assert info.value.errno == errno.EROFS
    _check_message(str(info.value), target)
    assert "read-only" in str(info.value)
    assert target.read_text() == "old" and _no_temp_left(tmp_path)


def test_an_error_about_the_temporary_file_is_told_about_the_target(tmp_path):
    target = tmp_path / "f.txt"
    with pytest.raises(PermissionError) as info, atomic_path(target) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    _check_message(str(info.value), target)
    assert info.value.errno == errno.EACCES and _no_temp_left(tmp_path)


def test_file_and_folder_are_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_path(tmp_path / "f") as tmp:
        tmp.write_text("x")
    assert synced[0] is False and (os.name == "nt" or True in synced)
