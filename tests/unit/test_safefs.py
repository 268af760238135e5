"""Root's file operations in folders other accounts own follow no link they made.

Each attack runs as an unprivileged uid (a forked child that drops to it), as a
grader or a student would from their terminal or kernel, against the same calls
coursehub makes when it prepares folders and writes planned files.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from coursehub.folders import make_folder
from coursehub.folders import write_file as write_planned
from coursehub.plan import File, Folder
from coursehub.safefs import UnsafePathError, ensure_folder, read_file, write_file

if os.geteuid() != 0:
    pytest.skip("changes owners: needs root", allow_module_level=True)

ATTACKER = 45001  # a uid nobody else uses, as a grader's would be


@pytest.fixture
def tree():
    """root/ (root, 0755) holding graders/ (root, 0711) holding course/ (the attacker's,
    0700), and a victim folder and file that only root may change."""
    base = Path(tempfile.mkdtemp(prefix="coursehub-safefs-", dir="/var/tmp"))
    base.chmod(0o755)
    course = base / "graders" / "course"
    course.mkdir(parents=True)
    (base / "graders").chmod(0o711)
    os.chown(course, ATTACKER, ATTACKER)
    course.chmod(0o700)
    victim = base / "victim"
    victim.mkdir(mode=0o700)
    (victim / "secret").write_text("root's own\n")
    (victim / "secret").chmod(0o600)
    yield base, course, victim
    shutil.rmtree(base, ignore_errors=True)


def unchanged(victim: Path) -> bool:
    for path in (victim, victim / "secret"):
        st = path.lstat()
        if (st.st_uid, st.st_gid) != (0, 0):
            return False
    return (
        stat.S_IMODE(victim.lstat().st_mode) == 0o700
        and stat.S_IMODE((victim / "secret").lstat().st_mode) == 0o600
        and (victim / "secret").read_text() == "root's own\n"
        and sorted(p.name for p in victim.iterdir()) == ["secret"]
    )


def as_attacker(fn, *args) -> None:
    os.setgroups([])
    os.setgid(ATTACKER)
    os.setuid(ATTACKER)
    fn(*args)


def test_a_link_in_another_accounts_folder_is_not_followed(tree):
    base, course, victim = tree
    (course / "inbound").symlink_to(victim)
    os.lchown(course / "inbound", ATTACKER, ATTACKER)
    with pytest.raises(UnsafePathError, match="should be a folder and is not"):
        ensure_folder(str(course / "inbound"), 20001, 20001, 0o2750)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        ensure_folder(str(course / "inbound" / "sam"), 20001, 20001, 0o2750)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_file(str(course / "inbound" / "secret"), b"x", 20001, 20001, 0o644)
    (course / "nbgrader_config.py").symlink_to(victim / "secret")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_file(str(course / "nbgrader_config.py"), b"c = 1\n", ATTACKER, ATTACKER, 0o644)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_file(str(course / "nbgrader_config.py"))
    # a file the course owns after its first writing is left alone, link or not
    assert not write_file(str(course / "nbgrader_config.py"), b"", 0, 0, 0o644, overwrite=False)
    assert unchanged(victim)


def test_roots_own_link_in_roots_own_folder_is_followed(tree):
    base, course, victim = tree
    (base / "srv").symlink_to(base / "graders")  # an operator's /srv -> /data/srv
    ensure_folder(str(base / "srv" / "course" / "outbound"), ATTACKER, ATTACKER, 0o750)
    assert (course / "outbound").is_dir()
    assert (course / "outbound").stat().st_uid == ATTACKER
    # but a planned folder itself is never a link, not even root's
    (base / "planned").symlink_to(base / "graders")
    with pytest.raises(UnsafePathError, match="should be a folder and is not"):
        ensure_folder(str(base / "planned"), 0, 0, 0o755)


def test_hard_links_devices_and_fifos_are_refused(tree):
    base, course, victim = tree
    os.link(victim / "secret", course / "linked")  # as root: fs.protected_hardlinks aside
    with pytest.raises(UnsafePathError, match="hard link"):
        write_file(str(course / "linked"), b"x", ATTACKER, ATTACKER, 0o644)
    os.mkfifo(course / "fifo")
    t0 = time.monotonic()
    with pytest.raises(UnsafePathError, match="not a regular file"):
        write_file(str(course / "fifo"), b"x", ATTACKER, ATTACKER, 0o644)
    assert time.monotonic() - t0 < 5  # opened without blocking on the FIFO
    assert unchanged(victim)


def test_planned_files_and_folders_get_their_owner_and_mode(tree):
    base, course, victim = tree
    ensure_folder(str(course / "source"), ATTACKER, ATTACKER, 0o2750)
    st = (course / "source").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (ATTACKER, 0o2750)
    assert write_file(str(course / "nbgrader_config.py"), b"c = 1\n", ATTACKER, 100, 0o640)
    st = (course / "nbgrader_config.py").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ATTACKER, 100, 0o640)
    assert read_file(str(course / "nbgrader_config.py")) == b"c = 1\n"
    assert [p.name for p in course.iterdir() if p.name.endswith(".tmp")] == []


def _swap_forever(course: str, victim: str, name: str) -> None:
    """The attacker's loop: its planned folder, then a link to the victim, again and again."""
    real, moved = os.path.join(course, name), os.path.join(course, name + ".real")
    os.makedirs(real, exist_ok=True)
    while True:
        try:
            os.rename(real, moved)
            os.symlink(victim, real)
            os.unlink(real)
            os.rename(moved, real)
        except OSError:
            os.makedirs(real, exist_ok=True)


def planned_folder(path, uid, gid, mode) -> None:
    make_folder(Folder(str(path), uid, gid, mode, "test"))


def planned_file(path, content: str, uid, gid, mode) -> None:
    write_planned(File(str(path), content, uid, gid, mode))


@pytest.mark.parametrize("name", ["inbound", "source"])
def test_a_swap_in_a_tight_loop_never_reaches_the_victim(tree, name):
    base, course, victim = tree
    ctx = multiprocessing.get_context("fork")
    attacker = ctx.Process(
        target=as_attacker, args=(_swap_forever, str(course), str(victim), name), daemon=True
    )
    attacker.start()
    refused = done = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                # what coursehub does in a grader's folders, through its planned layout
                if name == "inbound":
                    planned_folder(course / name / "sam", 20001, ATTACKER, 0o2750)
                    planned_folder(course / name, ATTACKER, ATTACKER, 0o710)
                else:
                    planned_file(course / name / "x", "c = 2\n", ATTACKER, ATTACKER, 0o644)
                done += 1
            except (RuntimeError, FileNotFoundError, NotADirectoryError, FileExistsError):
                refused += 1
    finally:
        attacker.kill()
        attacker.join()
    assert refused > 0, "the attacker's swap never showed: the test tested nothing"
    assert done > 0, "the honest operation never went through"
    assert unchanged(victim)
