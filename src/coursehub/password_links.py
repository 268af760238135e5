"""One-time set-password links for first-use logins.

With first-use logins whoever logs in first with a name sets its password. That is
the seed's way for students; an admin's or an instructor's account (an instructor
opens the course's grader notebook, with its terminal and gradebook) must never be
claimable by someone who only knows the name. Their password is set only through a
link the operator makes with `coursehub password-link NAME` and gives to that person:
a random code, kept here only as its SHA-256 (256 random bits need no slow hash),
valid once, until it expires, and locked after a few wrong codes.

The store also remembers whose current password was set through a link: an account
whose password was set by a first login (before this check, or while the person was
a student) is not trusted once it teaches, until a link sets it again.

Pure except for the SQLite file (mode 0600, in the state folder): no JupyterHub here,
so the CLI stays light. The hub's side is coursehub.hub.set_password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

from .plan import Plan
from .privatedb import PrivateDB

SET_PASSWORD_PATH = "/coursehub/set-password"  # noqa: S105 - a URL path under /hub/
MAX_FAILURES = 5  # wrong codes for one name before its link is locked
DEFAULT_EXPIRY = 24 * 3600
MAX_EXPIRY = 30 * 24 * 3600

# what check() and spend() answer
OK, WRONG, EXPIRED, SPENT, LOCKED = "ok", "wrong", "expired", "spent", "locked"


def needs_link(plan: Plan, name: str) -> bool:
    """Admins and anyone who teaches a course: their password is set only through a link."""
    person = plan.people.get(name)
    if name in plan.admins or (person is not None and person.admin):
        return True
    return person is not None and "instructor" in person.courses.values()


def role_of(plan: Plan, name: str) -> str:
    """How the CLI names a person's standing, e.g. 'admin, instructor of intro101'."""
    person = plan.people[name]
    said = ["admin"] if name in plan.admins else []
    teaches = sorted(c for c, r in person.courses.items() if r == "instructor")
    takes = sorted(c for c, r in person.courses.items() if r == "student")
    if teaches:
        said.append(f"instructor of {', '.join(teaches)}")
    if takes:
        said.append(f"student of {', '.join(takes)}")
    return ", ".join(said) or "in no course"


def parse_duration(text: str) -> int:
    """'90s', '30m', '24h', '7d' (or plain seconds) -> seconds, at most 30 days."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text or "")
    if not m:
        raise ValueError(f"{text!r} is not a duration: write e.g. 30m, 24h or 7d")
    seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not 0 < seconds <= MAX_EXPIRY:
        raise ValueError(f"{text!r}: a link is valid for 1 second up to 30 days")
    return seconds


def link_url(base_url: str, name: str, code: str) -> str:
    """The link a person opens. The hub scrubs query parameters named 'code' from its log."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    return f"{base}hub{SET_PASSWORD_PATH}?{urlencode({'name': name, 'code': code})}"


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class LinkStore(PrivateDB):
    """Links by name (one live link per person) and whose password a link set; the
    hashes of the codes and who set a password are nobody else's (a private file)."""

    schema = (
        "CREATE TABLE IF NOT EXISTS link ("
        " name TEXT PRIMARY KEY, digest TEXT NOT NULL, expires REAL NOT NULL,"
        " failures INTEGER NOT NULL DEFAULT 0, spent REAL)",
        "CREATE TABLE IF NOT EXISTS set_by_link (name TEXT PRIMARY KEY, at REAL)",
    )

    def _transaction(self, work):
        with self.transaction() as db:
            return work(db)

    def issue(self, name: str, ttl: int = DEFAULT_EXPIRY, now: float | None = None) -> str:
        """A new code for `name`, valid for `ttl` seconds; any earlier link of `name` stops
        working. The code is returned, never stored."""
        now = time.time() if now is None else now
        code = secrets.token_urlsafe(32)
        self._transaction(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO link (name, digest, expires, failures, spent)"
                " VALUES (?, ?, ?, 0, NULL)",
                (name, _digest(code), now + ttl),
            )
        )
        return code

    def _judge(self, db: sqlite3.Connection, name: str, code: str, now: float) -> str:
        row = db.execute(
            "SELECT digest, expires, failures, spent FROM link WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return WRONG  # the same answer as a wrong code: no hint whether a link is out
        digest, expires, failures, spent = row
        if failures >= MAX_FAILURES:
            return LOCKED  # before the comparison: no more guesses
        if not hmac.compare_digest(digest, _digest(code or "")):
            db.execute("UPDATE link SET failures = failures + 1 WHERE name = ?", (name,))
            return LOCKED if failures + 1 >= MAX_FAILURES else WRONG
        # only the holder of the right code learns that it is spent or expired
        if spent is not None:
            return SPENT
        if now >= expires:
            return EXPIRED
        return OK

    def check(self, name: str, code: str, now: float | None = None) -> str:
        """Is this the live code of `name`? A wrong code counts towards the lock."""
        now = time.time() if now is None else now
        return self._transaction(lambda db: self._judge(db, name, code, now))

    def spend(self, name: str, code: str, now: float | None = None) -> str:
        """check(), and on OK the link is used up (in the same transaction: two tabs
        cannot both use it)."""
        now = time.time() if now is None else now

        def work(db):
            verdict = self._judge(db, name, code, now)
            if verdict == OK:
                db.execute("UPDATE link SET spent = ? WHERE name = ?", (now, name))
            return verdict

        return self._transaction(work)

    def mark_set(self, name: str, now: float | None = None) -> None:
        """`name`'s password was just set through a link."""
        now = time.time() if now is None else now
        self._transaction(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO set_by_link (name, at) VALUES (?, ?)", (name, now)
            )
        )

    def forget(self, name: str) -> None:
        """`name`'s password was set some other way (a first login), or removed."""
        self._transaction(lambda db: db.execute("DELETE FROM set_by_link WHERE name = ?", (name,)))

    def set_by_link(self, name: str) -> bool:
        with self.connection() as db:
            return (
                db.execute("SELECT 1 FROM set_by_link WHERE name = ?", (name,)).fetchone()
                is not None
            )


def names_set_by_link(path: str | Path) -> set[str]:
    """Whose password a link set, read without making or changing the store (doctor)."""
    if not Path(path).exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in db.execute("SELECT name FROM set_by_link")}
    except sqlite3.OperationalError:  # no such table: nothing was set through a link
        return set()
    finally:
        db.close()
