"""When a submission counts as made: names and timestamps parsed strictly, the
kernel's ctime and coursehub's receipts over the student's word."""

from __future__ import annotations

import datetime as dt
import os
import pwd
from pathlib import Path

import pytest

from coursehub.exchange.receipts import (
    BadName,
    Receipt,
    ReceiptBook,
    judge,
    parse_name,
    parse_timestamp,
    scan_course,
    to_ns,
)

DUE = dt.datetime(2026, 12, 1, 12, 0, 0)
HOUR = dt.timedelta(hours=1)


def test_names_as_nbgrader_submit_writes_them():
    sub = parse_name("sam+hw1+2026-12-02 10:00:00.123456 UTC+Ab-_9=")
    assert (sub.student, sub.assignment) == ("sam", "hw1")
    assert sub.claimed == dt.datetime(2026, 12, 2, 10, 0, 0, 123456)
    assert parse_name("sam+hw1+2026-12-02 10:00:00 UTC").claimed == dt.datetime(2026, 12, 2, 10)


@pytest.mark.parametrize(
    "name",
    [
        "sam+hw1",
        "sam+hw1+not-a-time+x",
        "sam+hw1+2026-13-45 99:99:99.000000 UTC+x",
        "sam+hw1+2026-12-02 10:00:00.000000 UTC+a+b",
        "sam+x+hw1+2026-12-02 10:00:00.000000 UTC+y",  # a student 'sam+x'
        "sam+hw1+2026-12-02 10:00:00.000000 UTC+new\nline",
        "sam+hw1+2026-12-02 10:00:00.000000 UTC+\udcff",  # a name that is not UTF-8
        "sam+hw1+2026-12-02 10:00:00.000000 Nowhere/Land+x",
        "sam+hw1+tomorrow+x",
    ],
)
def test_anything_else_is_not_a_submission(name):
    with pytest.raises(BadName):
        parse_name(name)


def test_timestamps_in_other_zones_become_utc():
    assert parse_timestamp("2026-12-02 11:00:00.000000 CET") == dt.datetime(2026, 12, 2, 10)
    assert parse_timestamp("2026-12-02 11:00:00 +0100") == dt.datetime(2026, 12, 2, 10)
    with pytest.raises(ValueError):
        parse_timestamp("2 Dec 2026")


def _judge(claimed, last_change, now=None, receipt=None, same=True, due=DUE, tol=60.0):
    return judge(
        student="sam",
        assignment="hw1",
        name="n",
        claimed=claimed,
        last_change_ns=to_ns(last_change),
        now_ns=to_ns(now or last_change + dt.timedelta(seconds=1)),
        receipt=receipt,
        same_content=same,
        digest="d2" if not same else None,
        limits_key="k" if not same else None,
        due=due,
        tolerance=tol,
    )


def test_an_honest_submission_counts_at_its_own_timestamp():
    made = DUE - HOUR
    # its files were written a few seconds after its timestamp; collected days later
    j = _judge(made, made + dt.timedelta(seconds=3), now=DUE + 48 * HOUR)
    assert j.counts_at == made and j.why == ""
    assert j.receipt.first_seen_ns == to_ns(DUE + 48 * HOUR)


def test_a_late_submission_dressed_as_on_time_is_late():
    made = DUE + HOUR  # the kernel's ctime
    j = _judge(DUE - HOUR, made)
    assert j.counts_at == made - dt.timedelta(seconds=60) > DUE
    assert "after the due date" in j.why


def test_the_tolerance_is_all_a_student_can_hide():
    j = _judge(DUE - HOUR, DUE + dt.timedelta(seconds=30))
    assert j.counts_at == DUE - dt.timedelta(seconds=30)  # inside the tolerance: on time
    assert _judge(DUE - HOUR, DUE + dt.timedelta(seconds=30), tol=0).counts_at > DUE


def test_a_later_claim_than_the_truth_stands():
    assert _judge(DUE + HOUR, DUE - HOUR).counts_at == DUE + HOUR


def _receipt(first_seen, last_change, digest="d1"):
    return Receipt("sam", "hw1", "n", to_ns(first_seen), to_ns(last_change), digest, "k")


def test_unchanged_content_keeps_the_time_coursehub_first_saw_it():
    r = _receipt(DUE - HOUR, DUE - 2 * HOUR)
    # touched after the due date (ctime moved), but the same content
    j = _judge(DUE - 2 * HOUR, DUE + HOUR, receipt=r, same=True)
    assert j.counts_at == DUE - 2 * HOUR and j.receipt == r


def test_a_change_after_the_due_date_is_refused():
    r = _receipt(DUE - HOUR, DUE - 2 * HOUR)
    j = _judge(DUE - 2 * HOUR, DUE + HOUR, receipt=r, same=False)
    assert j.counts_at is None
    assert "after the due date" in j.why and "not collected" in j.why
    assert j.receipt == r  # the receipt of what was first seen stays


def test_a_submission_seen_while_nbgrader_still_wrote_it_is_not_a_change_after_the_due_date():
    # seen a second before the due date, half written; its last file written just after
    r = _receipt(DUE - dt.timedelta(seconds=1), DUE - dt.timedelta(seconds=1), digest=None)
    j = _judge(DUE - dt.timedelta(seconds=2), DUE + dt.timedelta(seconds=1), receipt=r, same=False)
    assert j.counts_at == DUE - dt.timedelta(seconds=2)


def test_a_change_before_the_due_date_is_a_resubmission_then():
    r = _receipt(DUE - 3 * HOUR, DUE - 3 * HOUR)
    j = _judge(DUE - 3 * HOUR, DUE - HOUR, receipt=r, same=False)
    assert j.counts_at == DUE - HOUR - dt.timedelta(seconds=60)
    assert j.receipt.digest == "d2" and j.receipt.first_seen_ns == r.first_seen_ns
    assert _judge(DUE - 3 * HOUR, DUE + HOUR, receipt=r, same=False, due=None).counts_at


def test_the_book_keeps_the_first_sighting(tmp_path):
    path = str(tmp_path / "receipts.sqlite")
    with ReceiptBook(path) as book:
        first = _receipt(DUE - HOUR, DUE - HOUR)
        assert book.add(first) == first
        assert book.add(_receipt(DUE, DUE)) == first  # a later sighting changes nothing
        book.put(Receipt("sam", "hw1", "other", 1, 1))
        assert {r.name for r in book.of("sam", "hw1")} == {"n", "other"}
        assert book.get("sam", "hw2", "n") is None
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_a_scan_makes_a_receipt_of_each_new_submission_once(tmp_path):
    me = pwd.getpwuid(os.getuid()).pw_name  # the student whose folder this is
    inbound = tmp_path / "inbound"
    sub = inbound / me / f"{me}+hw1+2026-12-02 10:00:00.000000 UTC+abc"
    sub.mkdir(parents=True)
    (sub / "hw1.ipynb").write_text("answer")
    (inbound / me / f"{me}+hw1+garbage").mkdir()
    (inbound / me / f"{me}+hw2+2026-12-02 10:00:00.000000 UTC+l").symlink_to(tmp_path)
    book = str(tmp_path / "r.sqlite")
    assert scan_course(str(inbound), book) == 0  # just written: maybe still being written
    assert scan_course(str(inbound), book, settle=0) == 1
    assert scan_course(str(inbound), book, settle=0) == 0
    with ReceiptBook(book) as b:
        [r] = b.of(me, "hw1")
    assert r.digest and r.files == 1 and r.last_change_ns <= r.first_seen_ns


def test_nothing_here_imports_nbgrader():
    import subprocess
    import sys

    code = "import sys, coursehub.exchange.receipts; print('nbgrader' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_scan_runs_as_a_command(tmp_path):
    import subprocess
    import sys

    (tmp_path / "inbound").mkdir()
    argv = [sys.executable, "-m", "coursehub.exchange.receipts", "--inbound"]
    argv += [str(tmp_path / "inbound"), "--receipts", str(tmp_path / "r.sqlite")]
    subprocess.run(argv, check=True, capture_output=True)
    assert Path(tmp_path / "r.sqlite").exists()
