"""When was a submission made? Not the student's word alone.

A student writes their submission's name (its timestamp), its ``timestamp.txt``
and every mtime, so none of these can tell a late submission from an on-time
one. Two records they cannot write decide instead:

- **the kernel's ctime**. Every change to a file or folder (writing, renaming,
  ``touch``, ``chmod``, a link) sets its ctime to the current time, and no call
  lets a user set it back. The newest ctime of a submission folder, its files and
  the folder itself, is a time by which its content as it is now already existed;
  a folder made or filled after the due date has a ctime after it, whatever it
  says. (This holds on one machine's local file systems: ext4, xfs, btrfs, tmpfs
  and overlayfs set ctime on rename too. Restoring files from a backup, as root,
  sets new ctimes: that makes submissions look newer, never older.)
- **coursehub's receipt**, written by the course's grader account, in the
  course's own folder, which students cannot reach: the first time coursehub saw
  each submission folder, the newest ctime it had then, and a digest of what it
  held. A folder whose content is not what coursehub first saw was changed after
  it was submitted (nbgrader never changes a submission; a new submission is a
  new folder); changed after the due date, it is not collected.

A submission counts as made at ``max(claimed, proven - tolerance)``: the
student's timestamp, but never more than ``tolerance`` seconds before the time by
which its content provably existed (the ctime, or the receipt's time when the
content is still what coursehub first saw). An honest submission's files are
written in the seconds after the timestamp nbgrader gives it, so its timestamp
stands; ``tolerance`` is the most lateness anybody can hide.

Nothing here imports nbgrader, so the periodic scan (:func:`scan_course`, run as
the grader account: ``python -m coursehub.exchange.receipts``) starts quickly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pwd
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass, replace

from .safetree import Limits, Refused, name_problem, open_dir, walk

_NAME = re.compile(
    r"^(?P<student>[^+]+)\+(?P<assignment>[^+]+)\+(?P<timestamp>[^+]+)(?:\+(?P<random>[A-Za-z0-9_=-]+))?$"
)
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,6}))?"
    r"(?: ?(?P<tz>[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d{2}:?\d{2}))?$"
)


# what nbgrader's CourseDirectory takes by default: the scan digests as collect will
SCAN_LIMITS = Limits(
    max_file_bytes=100000 * 1000,
    ignore=(".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"),
    include=("*",),
)


class BadName(ValueError):
    """A folder name that is not a submission's name (the message says why)."""


@dataclass(frozen=True)
class SubmissionName:
    student: str
    assignment: str
    timestamp: str
    claimed: dt.datetime  # naive UTC, as nbgrader's gradebook keeps times


def parse_timestamp(text: str) -> dt.datetime:
    """A timestamp as nbgrader writes it ('2026-12-02 10:00:00.123456 UTC'), as naive UTC.
    Raises ValueError for anything else."""
    m = _TIMESTAMP.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a timestamp like '2026-12-02 10:00:00.000000 UTC'")
    frac = (m.group("frac") or "0").ljust(6, "0")
    when = dt.datetime.fromisoformat(f"{m.group('date')} {m.group('time')}.{frac}")
    tz = m.group("tz")
    if tz:
        from dateutil.tz import gettz

        zone = (
            dt.datetime.strptime(tz.replace(":", ""), "%z").tzinfo if tz[0] in "+-" else gettz(tz)
        )
        if zone is None:
            raise ValueError(f"{text!r} names an unknown time zone {tz!r}")
        when = when.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    return when


def parse_name(name: str) -> SubmissionName:
    """``student+assignment+timestamp[+random]``, as nbgrader submit names a folder.
    Raises BadName."""
    why = name_problem(name)
    if why:
        raise BadName(why)
    m = _NAME.match(name)
    if m is None:
        raise BadName("it is not named student+assignment+timestamp+random")
    try:
        claimed = parse_timestamp(m.group("timestamp"))
    except ValueError as err:
        raise BadName(f"its timestamp is malformed: {err}") from None
    return SubmissionName(m.group("student"), m.group("assignment"), m.group("timestamp"), claimed)


def from_ns(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).replace(tzinfo=None)


def to_ns(when: dt.datetime) -> int:
    return int(when.replace(tzinfo=dt.UTC).timestamp() * 1_000_000) * 1000


@dataclass(frozen=True)
class Receipt:
    student: str
    assignment: str
    name: str
    first_seen_ns: int  # the grader's clock, the first time coursehub saw the folder
    last_change_ns: int  # the folder's newest ctime then (or when a change was accepted)
    digest: str | None = None  # of its names and contents, once they were read
    limits: str | None = None  # Limits.key() of the walk that made the digest
    files: int | None = None
    bytes: int | None = None
    collected_ns: int | None = None


@dataclass(frozen=True)
class Judgement:
    counts_at: dt.datetime | None  # the time the submission counts as made; None: refused
    receipt: Receipt  # to store
    why: str = ""  # why it does not count as the student's timestamp says


def judge(
    *,
    student: str,
    assignment: str,
    name: str,
    claimed: dt.datetime,
    last_change_ns: int,
    now_ns: int,
    receipt: Receipt | None,
    same_content: bool,
    digest: str | None,
    limits_key: str | None,
    due: dt.datetime | None,
    tolerance: float,
) -> Judgement:
    """Decide when a submission counts as made (see the module's text). `same_content`:
    its content is what `receipt` recorded (ignored without a receipt)."""
    grace = dt.timedelta(seconds=tolerance)
    last_change = from_ns(last_change_ns)
    if receipt is None:
        receipt = Receipt(student, assignment, name, now_ns, last_change_ns, digest, limits_key)
        proven = min(last_change, from_ns(now_ns))
        what = f"its files last changed at {last_change:%Y-%m-%d %H:%M:%S} UTC"
    elif same_content:
        proven = min(from_ns(receipt.last_change_ns), from_ns(receipt.first_seen_ns))
        what = f"coursehub's receipt has it as it is now by {proven:%Y-%m-%d %H:%M:%S} UTC"
    else:
        seen = from_ns(receipt.first_seen_ns)
        # (within the tolerance, a change is nbgrader submit still writing what was seen)
        if due is not None and last_change - grace > due:
            return Judgement(
                None,
                receipt,
                f"it was changed at {last_change:%Y-%m-%d %H:%M:%S} UTC, after the due date "
                f"{due:%Y-%m-%d %H:%M:%S} UTC, since coursehub first saw it at "
                f"{seen:%Y-%m-%d %H:%M:%S} UTC: the change is not collected",
            )
        # changed in place before the due date: as good as submitting again then
        receipt = replace(receipt, last_change_ns=last_change_ns, digest=digest, limits=limits_key)
        proven = last_change
        what = f"it was changed at {last_change:%Y-%m-%d %H:%M:%S} UTC"
    counts_at = max(claimed, proven - grace)
    why = ""
    if counts_at != claimed:
        why = (
            f"it says it was made at {claimed:%Y-%m-%d %H:%M:%S} UTC, but {what} "
            "(a time only the kernel or coursehub writes): "
            f"it counts as made at {counts_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        if due is not None and counts_at > due >= claimed:
            why += f", after the due date {due:%Y-%m-%d %H:%M:%S} UTC"
    return Judgement(counts_at, receipt, why)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    student TEXT NOT NULL,
    assignment TEXT NOT NULL,
    name TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_change_ns INTEGER NOT NULL,
    digest TEXT,
    limits TEXT,
    files INTEGER,
    bytes INTEGER,
    collected_ns INTEGER,
    PRIMARY KEY (student, assignment, name)
)
"""
_FIELDS = (
    "student, assignment, name, first_seen_ns, last_change_ns, digest, limits, files, bytes, "
    "collected_ns"
)


class ReceiptBook:
    """The course's receipts: an SQLite file of the grader's (0600), beside the gradebook."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute(_SCHEMA)

    def __enter__(self) -> ReceiptBook:
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()

    def get(self, student: str, assignment: str, name: str) -> Receipt | None:
        row = self.db.execute(
            f"SELECT {_FIELDS} FROM receipts WHERE student=? AND assignment=? AND name=?",  # noqa: S608 - constant
            (student, assignment, name),
        ).fetchone()
        return Receipt(*row) if row else None

    def of(self, student: str, assignment: str) -> list[Receipt]:
        rows = self.db.execute(
            f"SELECT {_FIELDS} FROM receipts WHERE student=? AND assignment=?",  # noqa: S608 - constant
            (student, assignment),
        )
        return [Receipt(*row) for row in rows]

    def add(self, r: Receipt) -> Receipt:
        """Keep `r` unless a receipt of that folder exists; return the stored one (the first
        sighting wins when a scan and a collect race)."""
        self.db.execute(
            f"INSERT OR IGNORE INTO receipts ({_FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant
            astuple(r),
        )
        got = self.get(r.student, r.assignment, r.name)
        assert got is not None
        return got

    def put(self, r: Receipt) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO receipts ({_FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant
            astuple(r),
        )


def student_uid(student: str) -> int | None:
    """The uid of a student's account, as this process resolves names (nss_wrapper)."""
    try:
        return pwd.getpwnam(student).pw_uid
    except KeyError:
        return None


def submission_names(student_fd: int, limit: int = 10000) -> Iterator[str]:
    """The names in a student's inbound folder (at most `limit`: the student makes them)."""
    with os.scandir(student_fd) as entries:
        for n, entry in enumerate(entries):
            if n >= limit:
                return
            yield entry.name


def scan_course(
    inbound: str,
    receipts_file: str,
    limits: Limits | None = None,
    settle: float = 10.0,
    max_read: int = 2**30,
) -> int:
    """Make a receipt for each submission folder of the course seen for the first time
    (run as the course's grader, periodically, so that receipts are made soon after each
    submission). Reads only what is new, at most `max_read` bytes a run (the rest waits for
    the next), and only folders unchanged for `settle` seconds (not one nbgrader submit is
    still writing). A folder collect would refuse gets no receipt, silently: collect says
    why when it matters. Returns how many receipts it made."""
    limits = limits or SCAN_LIMITS
    budget = [max_read]
    made = 0
    inbound_fd = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    book = ReceiptBook(receipts_file)
    try:
        for student in sorted(os.listdir(inbound_fd)):
            uid = student_uid(student)
            if uid is None:
                continue
            try:
                student_fd, _ = open_dir(student, inbound_fd, uid)
            except Refused:
                continue
            try:
                for name in submission_names(student_fd):
                    if budget[0] <= 0:
                        return made
                    made += _scan_one(book, student_fd, student, uid, name, limits, settle, budget)
            finally:
                os.close(student_fd)
    finally:
        book.db.close()
        os.close(inbound_fd)
    return made


def _scan_one(book, student_fd, student, uid, name, limits, settle, budget) -> int:
    try:
        sub = parse_name(name)
    except BadName:
        return 0
    if sub.student != student or book.get(student, sub.assignment, name) is not None:
        return 0
    try:
        fd, _ = open_dir(name, student_fd, uid)
    except Refused:
        return 0
    try:
        seen = walk(fd, uid, limits)  # names and sizes first: cheap
        if time.time_ns() - seen.last_change_ns < settle * 1e9 or seen.bytes > budget[0]:
            return 0
        tree = walk(fd, uid, limits, read=True)
    except Refused:
        return 0
    finally:
        os.close(fd)
    budget[0] -= tree.bytes
    book.add(
        Receipt(
            student,
            sub.assignment,
            name,
            time.time_ns(),
            tree.last_change_ns,
            tree.digest,
            limits.key(),
            tree.files,
            tree.bytes,
        )
    )
    return 1


# How often each course's inbound folder is scanned (the local supervisor; on a Docker
# host, the course's receipts container).
SCAN_SECONDS = 15.0


def scan_argv(python: str, inbound: str, receipts: str, every: float | None = None) -> list[str]:
    """The command that scans one course (run as its grader), once or every `every` s."""
    argv = [python, "-m", "coursehub.exchange.receipts", "--inbound", inbound]
    argv += ["--receipts", receipts]
    return argv + (["--every", f"{every:g}"] if every is not None else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m coursehub.exchange.receipts",
        description="Make receipts of new submissions (run as the course's grader account).",
    )
    p.add_argument("--inbound", required=True, help="the course's inbound folder")
    p.add_argument("--receipts", required=True, help="the course's receipts file")
    p.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds a folder must be unchanged before its receipt is made (default 10)",
    )
    p.add_argument(
        "--every",
        type=float,
        default=None,
        help="scan again every so many seconds, for ever (a grader container's loop); "
        "default: scan once",
    )
    args = p.parse_args(argv)
    while True:
        try:
            made = scan_course(args.inbound, args.receipts, settle=args.settle)
        except (OSError, sqlite3.Error) as err:
            if args.every is None:
                raise
            print(f"receipts: {err}", file=sys.stderr, flush=True)  # tried again next time
            made = 0
        if made:
            print(f"{made} new receipt(s)", flush=True)
        if args.every is None:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
