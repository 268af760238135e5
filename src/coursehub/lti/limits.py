"""How many courses LMS launches may create: per LMS an hour, and in all.

An instructor's first launch from an unknown context creates a course (folders,
a gradebook, a grader server). Whoever can sign launches (the LMS, a copy of the
LTI 1.1 secret) could create thousands, so each creation is recorded, in SQLite
in the installation's state folder (mode 0600, like the nonces: a hub restart
forgets nothing), and a launch over a limit is refused:

- `auth.course_creation.per_hour`: new courses per LMS (an LTI 1.1 consumer key,
  an LTI 1.3 issuer and client id) in the last 60 minutes (HTTP 429);
- `auth.course_creation.max_courses`: courses created from launches that the site
  still has (HTTP 403; removing such a course makes room again).

0 for either turns creation from launches off. Launches into courses that exist,
and people joining them, are never limited; `coursehub course add` is not either.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass

from ..plan import PlanAuth
from ..privatedb import PrivateDB
from ..site import COURSES_PER_HOUR, MAX_LAUNCH_COURSES
from .launch import LaunchRefused

WINDOW = 3600.0  # seconds: the rate is per hour


@dataclass(frozen=True)
class CreationLimits:
    per_hour: int = COURSES_PER_HOUR
    max_courses: int = MAX_LAUNCH_COURSES

    @classmethod
    def of(cls, auth: PlanAuth) -> CreationLimits:
        """The limits of the Plan's auth section."""
        return cls(auth.courses_per_hour, auth.max_launch_courses)


class CreationRefused(LaunchRefused):
    """A launch that would create a course over a limit; `retry_after` in seconds (429)."""

    def __init__(self, message: str, status: int, retry_after: int | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


_OPERATOR = (
    "Ask the hub's operator: they can raise the limit (auth.course_creation in the site "
    "file, then 'coursehub up'), or add the course themselves with 'coursehub course add' "
    "and pin this LMS course (context {context}) to it in auth.contexts. Courses that "
    "exist already open as usual."
)


class CourseCreations(PrivateDB):
    """The record of the courses launches created (course, LMS, context, when); which
    LMS made which course is the operator's alone (a private file)."""

    schema = (
        "CREATE TABLE IF NOT EXISTS created ("
        " course TEXT PRIMARY KEY, lms TEXT NOT NULL, context TEXT NOT NULL,"
        " at REAL NOT NULL)",
    )

    def admit(
        self,
        lms: str,
        context_id: str,
        course_id: str,
        title: str,
        limits: CreationLimits,
        existing: Collection[str],
        now: float | None = None,
    ) -> None:
        """Record that a launch of `lms` creates `course_id` now, or raise CreationRefused
        (with the page's message) when that is over a limit. `existing`: the site's
        courses now (a course created by a launch and since removed counts no more)."""
        now = time.time() if now is None else now
        for key in ("per_hour", "max_courses"):
            if getattr(limits, key) == 0:
                raise CreationRefused(
                    f"coursehub did not create the course '{title}': this hub creates no "
                    f"courses from LMS launches (auth.course_creation.{key}: 0). "
                    + _OPERATOR.format(context=context_id),
                    403,
                )
        with self.transaction() as db:  # count and record as one step
            recent = db.execute(
                "SELECT COUNT(*), MIN(at) FROM created WHERE lms = ? AND at > ? AND course != ?",
                (lms, now - WINDOW, course_id),
            ).fetchone()
            made = [
                c
                for (c,) in db.execute("SELECT course FROM created WHERE course != ?", (course_id,))
                if c in existing
            ]
            if recent[0] >= limits.per_hour:
                wait = max(1, math.ceil(recent[1] + WINDOW - now))
                raise CreationRefused(
                    f"coursehub did not create the course '{title}': this LMS has created "
                    f"{recent[0]} new course(s) in the last hour, the most this hub allows "
                    f"(auth.course_creation.per_hour: {limits.per_hour}). Try again in about "
                    f"{math.ceil(wait / 60)} minute(s). " + _OPERATOR.format(context=context_id),
                    429,
                    retry_after=wait,
                )
            if len(made) >= limits.max_courses:
                raise CreationRefused(
                    f"coursehub did not create the course '{title}': this hub has "
                    f"{len(made)} course(s) created from LMS launches, its limit "
                    f"(auth.course_creation.max_courses: {limits.max_courses}). "
                    + _OPERATOR.format(context=context_id),
                    403,
                )
            db.execute(
                "INSERT OR REPLACE INTO created (course, lms, context, at) VALUES (?, ?, ?, ?)",
                (course_id, lms, context_id, now),
            )

    def forget(self, course_id: str) -> None:
        """The creation did not happen after all (the site file could not be written)."""
        with self.connection() as db:
            db.execute("DELETE FROM created WHERE course = ?", (course_id,))

    def recent(self, lms: str, now: float | None = None) -> int:
        """Courses `lms` created in the last hour."""
        now = time.time() if now is None else now
        with self.connection() as db:
            return db.execute(
                "SELECT COUNT(*) FROM created WHERE lms = ? AND at > ?", (lms, now - WINDOW)
            ).fetchone()[0]

    def courses(self) -> dict[str, str]:
        """{course: LMS} of every course a launch created."""
        with self.connection() as db:
            return dict(db.execute("SELECT course, lms FROM created ORDER BY course"))
