"""The walker collect reads a student's submission with: no link followed, only the
owner's regular files and folders, bounded, refused as a whole when it changes."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from coursehub.exchange.safetree import (
    Limits,
    Refused,
    name_problem,
    open_dir,
    open_path,
    read_regular,
    walk,
)

ME = os.getuid()


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")


def _open(path: Path) -> int:
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd, _st = open_dir(path.name, parent, ME)
    finally:
        os.close(parent)
    return fd


def take(path: Path, limits: Limits | None = None, **kw):
    fd = _open(path)
    try:
        return walk(fd, ME, limits or Limits(), **kw)
    finally:
        os.close(fd)


def copy(path: Path, dest: Path, limits: Limits | None = None):
    dest.mkdir()
    out = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return take(path, limits, dest_fd=out)
    finally:
        os.close(out)


@pytest.fixture
def sub(tmp_path: Path) -> Path:
    s = tmp_path / "sam+hw1+2026-12-02 10:00:00.000000 UTC+abc"
    (s / "deep").mkdir(parents=True)
    (s / "hw1.ipynb").write_text("answer")
    (s / "deep" / "data.csv").write_text("1,2")
    return s


def test_an_honest_tree_is_copied_whole(sub, tmp_path):
    tree = copy(sub, tmp_path / "out")
    assert tree.left_out == [] and tree.files == 2 and tree.dirs == 1
    assert (tmp_path / "out" / "hw1.ipynb").read_text() == "answer"
    assert (tmp_path / "out" / "deep" / "data.csv").read_text() == "1,2"
    assert tree.digest == take(sub, read=True).digest  # the same names and contents


def test_links_pipes_sockets_and_hard_links_are_left_out(sub, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not the student's")
    (sub / "link.txt").symlink_to(secret)
    (sub / "dirlink").symlink_to(tmp_path)
    (sub / "dangling").symlink_to("/nonexistent")
    os.mkfifo(sub / "pipe")
    here = os.getcwd()
    os.chdir(sub)
    try:
        socket.socket(socket.AF_UNIX).bind("sock")
    finally:
        os.chdir(here)
    os.link(secret, sub / "hard.txt")
    tree = copy(sub, tmp_path / "out")
    left = dict(tree.left_out)
    assert set(left) == {"link.txt", "dirlink", "dangling", "pipe", "sock", "hard.txt"}
    assert "symbolic link" in left["link.txt"] and "named pipe" in left["pipe"]
    assert "socket" in left["sock"] and "hard link" in left["hard.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deep", "hw1.ipynb"]


@ROOT_ONLY
def test_a_device_is_left_out_and_never_opened(tmp_path):
    s = tmp_path / "s"
    s.mkdir()
    os.mknod(s / "zero", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero: endless if read
    assert dict(take(s, read=True).left_out) == {"zero": "it is a device"}


@ROOT_ONLY
def test_entries_of_another_owner_are_left_out(sub, tmp_path):
    (sub / "theirs.txt").write_text("x")
    os.chown(sub / "theirs.txt", 54321, 54321)
    (sub / "their-dir").mkdir()
    os.chown(sub / "their-dir", 54321, 54321)
    tree = copy(sub, tmp_path / "out")
    assert {p for p, _ in tree.left_out} == {"theirs.txt", "their-dir"}
    with pytest.raises(Refused, match="owned by uid 54321"):
        open_dir("their-dir", os.open(sub, os.O_RDONLY | os.O_DIRECTORY), ME)


def test_the_root_must_be_a_real_folder_of_its_owner(sub, tmp_path):
    (tmp_path / "alias").symlink_to(sub)
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    with pytest.raises(Refused, match="symbolic link"):
        open_dir("alias", parent, ME)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(Refused, match="not a folder"):
        open_dir("plain", parent, ME)
    os.mkfifo(tmp_path / "pipe")  # refused at once: opening it would wait for a writer
    with pytest.raises(Refused, match="named pipe"):
        open_dir("pipe", parent, ME)
    with pytest.raises(Refused, match="owned by uid"):
        open_dir(sub.name, parent, ME + 1)


def test_a_sparse_giant_is_left_out_or_refused_without_being_read(sub, tmp_path):
    with open(sub / "huge.bin", "wb") as f:
        f.truncate(50 * 2**30)
    tree = copy(sub, tmp_path / "out", Limits(max_file_bytes=10**8))
    assert [p for p, _ in tree.left_out] == ["huge.bin"]
    with pytest.raises(Refused, match="more than 1000 bytes"):
        take(sub, Limits(max_bytes=1000))


def test_counts_and_depth_are_bounded(sub):
    for i in range(20):
        (sub / f"f{i}").write_text("")
    with pytest.raises(Refused, match="more than 10 entries"):
        take(sub, Limits(max_entries=10))
    deep = sub
    for _ in range(5):
        deep = deep / "d"
        deep.mkdir()
    with pytest.raises(Refused, match="deep"):
        take(sub, Limits(max_depth=3))


def test_odd_names_are_left_out(sub, tmp_path):
    (sub / "new\nline").write_text("x")
    os.mkdir(os.fsencode(sub) + b"/bad\xff")
    tree = copy(sub, tmp_path / "out")
    assert {why for _, why in tree.left_out} == {
        "its name has control characters",
        "its name is not UTF-8",
    }
    assert name_problem("hw1.ipynb") is None


def test_nbgraders_ignore_and_include_globs(sub, tmp_path):
    (sub / ".ipynb_checkpoints").mkdir()
    (sub / ".ipynb_checkpoints" / "x.ipynb").write_text("old")
    (sub / "notes.txt").write_text("x")
    limits = Limits(ignore=(".ipynb_checkpoints",), include=("*.ipynb", "*.csv"))
    tree = copy(sub, tmp_path / "out", limits)
    assert tree.left_out == []
    assert {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")} == {
        "hw1.ipynb",
        "deep",
        "deep/data.csv",
    }


def test_last_change_is_the_newest_ctime_and_a_rename_moves_it(sub, tmp_path):
    before = take(sub).last_change_ns
    time.sleep(0.02)  # past the file system's clock tick
    (sub / "deep" / "data.csv").write_text("changed")
    after = take(sub).last_change_ns
    assert after > before
    time.sleep(0.02)
    os.utime(sub / "deep" / "data.csv", (0, 0))  # an mtime set back sets the ctime forward
    assert take(sub).last_change_ns > after
    moved = tmp_path / "moved"
    last = take(sub).last_change_ns
    time.sleep(0.02)
    sub.rename(moved)
    assert take(moved).last_change_ns > last


def test_one_descriptor_walks_twice_alike(sub):
    fd = _open(sub)
    try:
        first, second = walk(fd, ME, Limits()), walk(fd, ME, Limits(), read=True)
    finally:
        os.close(fd)
    assert (first.files, first.dirs, first.bytes) == (second.files, second.dirs, second.bytes)
    assert first.last_change_ns == second.last_change_ns


def test_the_digest_tells_contents_apart(sub):
    first = take(sub, read=True).digest
    (sub / "hw1.ipynb").write_text("answeR")
    assert take(sub, read=True).digest != first


def test_read_regular_refuses_all_but_bounded_regular_files(tmp_path):
    (tmp_path / "ok.html").write_text("feedback")
    (tmp_path / "big.html").write_bytes(b"x" * 2000)
    (tmp_path / "link.html").symlink_to(tmp_path / "ok.html")
    os.mkfifo(tmp_path / "pipe.html")
    fd = open_path(str(tmp_path))
    try:
        assert read_regular(fd, "ok.html", 1000) == b"feedback"
        for name, why in [
            ("big.html", "larger"),
            ("link.html", "symbolic link"),
            ("pipe.html", "named pipe"),
            ("none.html", "cannot be found"),
        ]:
            with pytest.raises(Refused, match=why):
                read_regular(fd, name, 1000)
    finally:
        os.close(fd)


def test_open_path_follows_no_link_below_its_start(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").symlink_to(tmp_path / "a")
    os.close(open_path(str(tmp_path), "a", "b", owners=(ME, ME)))
    with pytest.raises(Refused, match="symbolic link"):
        open_path(str(tmp_path), "c", "b")
    with pytest.raises(Refused, match="owned by uid"):
        open_path(str(tmp_path), "a", owners=(ME + 1,))
