"""An unprivileged account's attack on root's file operations, for the tests.

`swapping(uid, gid, targets, victim)` runs, under that uid, a tight loop that
swaps each of its own folders for a link to `victim` and back, as a grader could
from the grader notebook's terminal; `snapshot(victim)` is what must not change.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path


def snapshot(base: Path) -> dict:
    out = {}
    for path in [base, *sorted(base.rglob("*"))]:
        st = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(path)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), content)
    return out


def _swap(targets: list[str], victim: str) -> None:
    """Half the time each folder, half the time a link in its place: root's check of a
    folder and its next operation, a few milliseconds apart, often see different things."""
    while True:
        for real in targets:
            moved = real + ".real"
            try:
                os.rename(real, moved)
                os.symlink(victim, real)
                time.sleep(0.002)
                os.unlink(real)
                os.rename(moved, real)
                time.sleep(0.002)
            except OSError:
                pass


def _as(uid: int, gid: int, targets: list[str], victim: str) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _swap(targets, victim)


def _restore(targets: list[str]) -> None:
    """Put back whatever the killed attacker left half swapped."""
    for real in targets:
        if os.path.islink(real):
            os.unlink(real)
        if os.path.exists(real + ".real") and not os.path.exists(real):
            os.rename(real + ".real", real)


@contextlib.contextmanager
def swapping(uid: int, gid: int, targets: list[str], victim: Path) -> Iterator[None]:
    attacker = multiprocessing.get_context("fork").Process(
        target=_as, args=(uid, gid, targets, str(victim)), daemon=True
    )
    attacker.start()
    try:
        time.sleep(0.3)
        assert attacker.is_alive(), "the attacker did not start"
        yield
    finally:
        attacker.kill()
        attacker.join()
        _restore(targets)
