"""Read (and copy) a folder that another account controls, trusting nothing in it.

A student owns their inbound folder and everything they put in it; the grader's
collect reads it. Every entry is reached through a directory descriptor and
opened with ``O_NOFOLLOW`` (a link is never followed, whatever it points at);
only regular files and folders are taken; a file the student does not own, or
one with several names (a hard link), is left out; sizes and counts are bounded
while reading, not from what ``stat`` said before. Nothing here imports nbgrader.

An entry that is not acceptable is *left out* (named, with the reason); a tree
that breaks a bound, or changes while it is read, is *refused* as a whole
(:class:`Refused`). The newest ``ctime`` of the tree is measured as it is read:
students can set mtimes, but only the kernel sets ctimes (see ``receipts``).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field

CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the lstat opens at once instead of waiting for a writer
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# to pass through a folder one may traverse but not list (0711, 0710): no read right needed
PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
COPY_DIR_MODE = 0o755
COPY_FILE_MODE = 0o644


class Refused(Exception):
    """The whole tree is refused: none of it is to be used."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one tree. ``max_file_bytes``: a larger file is left out (nbgrader's
    ``CourseDirectory.max_file_size``); ``ignore`` and ``include``: nbgrader's globs."""

    max_bytes: int = 100 * 2**20
    max_entries: int = 1000
    max_file_bytes: int | None = None
    max_depth: int = 32
    ignore: tuple[str, ...] = ()
    include: tuple[str, ...] = ("*",)
    # what to tell whoever reads the log: the setting behind each bound
    bytes_hint: str = ""
    entries_hint: str = ""
    file_hint: str = ""

    def key(self) -> str:
        """Names what a walk takes: two digests compare only when their keys are equal."""
        taken = (self.max_file_bytes, self.ignore, self.include)
        return hashlib.sha256(repr(taken).encode()).hexdigest()[:16]


@dataclass
class Tree:
    """What a walk found: what it took, and what it left out and why."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    entries: int = 0
    last_change_ns: int = 0  # newest ctime of the tree, its root included
    digest: str | None = None  # of names and contents, when the files were read
    left_out: list[tuple[str, str]] = field(default_factory=list)


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "not a file or a folder"


def name_problem(name: str) -> str | None:
    """Why an entry's name is not taken (it ends up in paths, logs and a gradebook)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "its name has control characters"
    return None


def open_dir(
    name: str, dir_fd: int, owner: int | None = None, *, path_only: bool = False
) -> tuple[int, os.stat_result]:
    """Open the folder `name` inside `dir_fd` without following a link; check its owner.
    `path_only`: a descriptor only to reach what is below (O_PATH), for a folder one may
    traverse but not list. Raises Refused with the reason."""
    try:
        fd = os.open(name, PATH_FLAGS if path_only else DIR_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                what = kind_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                what = "not a folder"
            raise Refused(f"it is {what}, not a folder") from None
        if err.errno == errno.EACCES:
            raise Refused("the grader may not read it") from None
        raise Refused(f"it cannot be opened ({os.strerror(err.errno)})") from None
    st = os.fstat(fd)
    if owner is not None and st.st_uid != owner:
        os.close(fd)
        raise Refused(f"it is owned by uid {st.st_uid}, not by its student (uid {owner})")
    return fd, st


def walk(
    dir_fd: int,
    owner: int,
    limits: Limits,
    *,
    read: bool = False,
    dest_fd: int | None = None,
) -> Tree:
    """Walk the folder open at `dir_fd` (opened with :func:`open_dir`).

    Without `read`, only names and metadata are looked at (sizes count as declared);
    with `read`, every taken file is read to the end and digested; with `dest_fd`
    (a new, empty folder of the caller's), taken entries are also copied there.
    """
    st = os.fstat(dir_fd)
    tree = Tree(last_change_ns=st.st_ctime_ns)
    digest = hashlib.sha256() if (read or dest_fd is not None) else None
    _walk(dir_fd, "", 0, owner, limits, tree, digest, dest_fd)
    if digest is not None:
        tree.digest = digest.hexdigest()
    return tree


def _walk(dir_fd, rel, depth, owner, limits, tree, digest, dest_fd) -> None:
    if depth > limits.max_depth:
        raise Refused(f"it has folders more than {limits.max_depth} deep")
    names = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            tree.entries += 1
            if tree.entries > limits.max_entries:
                raise Refused(
                    f"it holds more than {limits.max_entries} entries{limits.entries_hint}"
                )
            names.append(entry.name)
    for name in sorted(names):
        path = f"{rel}{name}"
        why = name_problem(name)
        if why:
            tree.left_out.append((path, why))
            continue
        if limits.ignore and any(fnmatch.fnmatch(name, g) for g in limits.ignore):
            continue  # nbgrader's CourseDirectory.ignore: left out without a word
        try:
            lst = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise Refused(f"{path!r} went away while it was read") from None
        tree.last_change_ns = max(tree.last_change_ns, lst.st_ctime_ns)
        if stat.S_ISDIR(lst.st_mode):
            _take_dir(dir_fd, name, path, lst, depth, owner, limits, tree, digest, dest_fd)
        elif stat.S_ISREG(lst.st_mode):
            _take_file(dir_fd, name, path, lst, owner, limits, tree, digest, dest_fd)
        else:
            tree.left_out.append((path, f"it is {kind_of(lst.st_mode)}"))


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_entry(dir_fd: int, name: str, flags: int, path: str, tree) -> int | None:
    """An entry of the walk opened without following it; None (and the reason noted) when
    the grader may not read it; Refused when it is gone or became something else."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        tree.left_out.append((path, "the grader may not read it"))
        return None
    except OSError:
        raise Refused(f"{path!r} changed while it was read") from None


def _take_dir(dir_fd, name, path, lst, depth, owner, limits, tree, digest, dest_fd) -> None:
    if lst.st_uid != owner:
        tree.left_out.append((path, f"it is owned by uid {lst.st_uid}, not by the student"))
        return
    fd = _open_entry(dir_fd, name, DIR_FLAGS, path, tree)
    if fd is None:
        return
    out = None
    try:
        if not _same(os.fstat(fd), lst):
            raise Refused(f"{path!r} changed while it was read")
        tree.dirs += 1
        if digest is not None:
            digest.update(b"d" + path.encode() + b"\0")
        if dest_fd is not None:
            os.mkdir(name, COPY_DIR_MODE, dir_fd=dest_fd)
            out = os.open(name, DIR_FLAGS, dir_fd=dest_fd)
        _walk(fd, path + "/", depth + 1, owner, limits, tree, digest, out)
    finally:
        os.close(fd)
        if out is not None:
            os.close(out)


def _take_file(dir_fd, name, path, lst, owner, limits, tree, digest, dest_fd) -> None:
    if limits.include and not any(fnmatch.fnmatch(name, g) for g in limits.include):
        return  # nbgrader's CourseDirectory.include
    if lst.st_uid != owner:
        tree.left_out.append((path, f"it is owned by uid {lst.st_uid}, not by the student"))
        return
    if lst.st_nlink > 1:  # a hard link: the same file is also somewhere else
        tree.left_out.append((path, f"it is a hard link ({lst.st_nlink} names for one file)"))
        return
    if limits.max_file_bytes is not None and lst.st_size > limits.max_file_bytes:
        tree.left_out.append(
            (
                path,
                f"it has {lst.st_size} bytes, more than {limits.max_file_bytes}{limits.file_hint}",
            )
        )
        return
    if tree.bytes + lst.st_size > limits.max_bytes:
        raise Refused(f"it holds more than {limits.max_bytes} bytes{limits.bytes_hint}")
    if digest is None:  # metadata only
        tree.files += 1
        tree.bytes += lst.st_size
        return
    fd = _open_entry(dir_fd, name, FILE_FLAGS, path, tree)
    if fd is None:
        return
    out = None
    try:
        before = os.fstat(fd)
        if not _same(before, lst) or not stat.S_ISREG(before.st_mode):
            raise Refused(f"{path!r} changed while it was read")
        if dest_fd is not None:
            out = os.open(name, NEW_FILE_FLAGS, COPY_FILE_MODE, dir_fd=dest_fd)
        digest.update(b"f" + path.encode() + b"\0" + before.st_size.to_bytes(8, "big"))
        got = 0
        while True:
            # never more than the size it had, plus one byte to see it grow
            chunk = os.read(fd, min(CHUNK, before.st_size - got + 1))
            if not chunk:
                break
            got += len(chunk)
            if got > before.st_size:
                raise Refused(f"{path!r} grew while it was read")
            digest.update(chunk)
            if out is not None:
                _write_all(out, chunk)
        after = os.fstat(fd)
        if got != before.st_size or (after.st_ctime_ns, after.st_size) != (
            before.st_ctime_ns,
            before.st_size,
        ):
            raise Refused(f"{path!r} changed while it was read")
        tree.files += 1
        tree.bytes += got
        tree.last_change_ns = max(tree.last_change_ns, after.st_ctime_ns)
    finally:
        os.close(fd)
        if out is not None:
            os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_regular(dir_fd: int, name: str, max_bytes: int) -> bytes:
    """The content of the regular file `name` in `dir_fd`, never through a link, never
    more than `max_bytes`. Raises Refused with the reason."""
    try:
        lst = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as err:
        raise Refused(f"it cannot be found ({os.strerror(err.errno)})") from None
    if not stat.S_ISREG(lst.st_mode):
        raise Refused(f"it is {kind_of(lst.st_mode)}")
    if lst.st_size > max_bytes:
        raise Refused(f"it is larger than {max_bytes} bytes ({lst.st_size})")
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise Refused(f"it cannot be opened ({os.strerror(err.errno)})") from None
    try:
        st = os.fstat(fd)
        if not _same(st, lst) or not stat.S_ISREG(st.st_mode):
            raise Refused("it changed while it was read")
        parts, got = [], 0
        while chunk := os.read(fd, min(CHUNK, max_bytes - got + 1)):
            got += len(chunk)
            if got > max_bytes:
                raise Refused(f"it is larger than {max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def open_path(path: str, *names: str, owners: tuple[int | None, ...] = ()) -> int:
    """Reach the folder `path` (a trusted path: its owners are root or the caller), then
    each of `names` below it, without following a link (`owners`: the uid each name must
    have, None for any). The descriptor (O_PATH) reaches entries below; it cannot list them.
    Raises Refused with the reason (OSError when `path` itself cannot be reached)."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(names):
            owner = owners[i] if i < len(owners) else None
            nxt, _st = open_dir(name, fd, owner, path_only=True)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd
