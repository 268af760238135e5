"""File operations that root makes in folders other accounts control, without following
a path those accounts could change.

A grader account is reachable by every instructor (the grader notebook has a
terminal) and by student code during autograde; a student controls their home
and their inbound folder. A path-based call (`chown(path)`, `open(path)`) made by
root after a check can be turned, by a link or a folder swapped in between, into
an operation on any file of the machine. So every operation here walks down from
`/` with directory descriptors, one component at a time, and acts on the
descriptor it opened (`fchown`, `fchmod`, `openat` with `O_NOFOLLOW`,
`renameat` within one open folder):

- a link is followed only where root alone could have made it: in a folder owned
  by root that nobody else may write (a site's `/srv -> /data/srv` is fine; a link
  in a grader's folder, or in `/tmp`, is refused);
- a file that root reads or changes in place must be a regular file with one
  link (a hard link to another file could otherwise lend it root's hand).

This module uses the standard library only: the Docker host's prepare script
runs the same code with the host's python3.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_READ = 16 * 1024 * 1024  # planned files are small; anything larger is not one of them


class UnsafePathError(RuntimeError):
    """A path that another account could redirect: refused, with what to do."""


def _trusted(fd: int) -> bool:
    """Only root (or the account coursehub runs as) can add or replace entries here."""
    st = os.fstat(fd)
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _parts(path: str) -> list[str]:
    if not os.path.isabs(path):
        raise ValueError(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePathError(f"{path}: '..' in a planned path")
    return parts


def _step(fd: int, name: str, path: str) -> int:
    """Open folder `name` below the open folder `fd`, following a link only where
    root alone could have put it."""
    try:
        return os.open(name, _DIR, dir_fd=fd)
    except OSError as err:
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{path}: {name!r} is not a folder; move it away") from None
        if not (_trusted(fd) and st.st_uid in (0, os.geteuid())):
            raise UnsafePathError(
                f"{path}: {name!r} is a symbolic link in a folder that another account can "
                "change; coursehub does not follow it. Replace the link by the folder itself"
            ) from None
        # root's own link in root's own folder: follow it, then go on without following
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)


def open_folder(path: str) -> int:
    """An open descriptor of the existing folder `path`, walked down from `/`."""
    fd = os.open("/", _DIR)
    try:
        for name in _parts(path):
            child = _step(fd, name, path)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_folder(path: str, uid: int, gid: int, mode: int) -> None:
    """Make the folder if missing (its parent must exist), then give it its owner and
    mode through its own descriptor."""
    parent, name = os.path.split(path.rstrip("/"))
    pfd = open_folder(parent or "/")
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=pfd)  # no wider than 0700 before the fchown
        try:  # a planned folder is a folder itself: never a link, not even root's
            fd = os.open(name, _DIR, dir_fd=pfd)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise UnsafePathError(
                f"{path} should be a folder and is not (a link or a file); move it away, "
                "then run this again"
            ) from None
    finally:
        os.close(pfd)
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _open_regular(dir_fd: int, name: str, path: str) -> int | None:
    """An open descriptor of the regular file `name`, None when there is none; a link,
    a device, a FIFO, a folder or a file with other names (hard links) is refused."""
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafePathError(
                f"{path} is a symbolic link; coursehub does not follow it. Remove the link"
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link"
        raise UnsafePathError(f"{path} is {what}; coursehub does not write through it. Remove it")
    return fd


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def open_regular(path: str) -> int | None:
    """An open read-only descriptor of the regular file `path` (None when missing),
    walked down without following a link another account made; the caller closes it."""
    parent, name = os.path.split(path)
    pfd = open_folder(parent)
    try:
        return _open_regular(pfd, name, path)
    finally:
        os.close(pfd)


def read_file(path: str, limit: int = MAX_READ) -> bytes | None:
    """The content of a regular file (None when missing), read without following links."""
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafePathError(f"{path} is larger than {limit} bytes; not a planned file")
    return data


def write_file(
    path: str, content: bytes, uid: int, gid: int, mode: int, overwrite: bool = True
) -> bool:
    """Write a file atomically: a new file made in the open parent folder, given its
    owner and mode through its descriptor, then renamed over the name. A file there
    that already holds `content` only gets its owner and mode. Returns False when the
    file exists and `overwrite` is False (it is left alone)."""
    parent, name = os.path.split(path)
    pfd = open_folder(parent)
    try:
        if not overwrite and _exists(pfd, name):
            return False  # whatever is there now is its owner's, and stays untouched
        fd = _open_regular(pfd, name, path)
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                if f.read(len(content) + 1) == content:
                    st = os.fstat(f.fileno())
                    if (st.st_uid, st.st_gid) != (uid, gid):
                        os.fchown(f.fileno(), uid, gid)
                    if stat.S_IMODE(st.st_mode) != mode:
                        os.fchmod(f.fileno(), mode)
                    return True
        replace_in_folder(pfd, name, content, mode, (uid, gid))
        return True
    finally:
        os.close(pfd)


def replace_in_folder(
    dir_fd: int, name: str, content: bytes, mode: int, owner: tuple[int, int] | None
) -> None:
    """Put `content` at `name` in the open folder: a new file (O_EXCL, no link followed)
    given its owner (when root) and mode through its descriptor, then renamed over the
    name, so nothing is ever written through a link or left half-written."""
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
