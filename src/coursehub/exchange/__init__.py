"""nbgrader exchange classes for an exchange whose folders coursehub prepares.

nbgrader's default exchange wants its root writable by everyone (and makes it
0777 on release). coursehub makes the root and each course's folders itself,
with the owners and modes of the Plan, so these classes only check that the
root can be traversed and never loosen its mode.
"""

from __future__ import annotations

import os

from nbgrader.exchange.default import (
    Exchange,
    ExchangeCollect,
    ExchangeFetchAssignment,
    ExchangeFetchFeedback,
    ExchangeList,
    ExchangeReleaseAssignment,
    ExchangeReleaseFeedback,
    ExchangeSubmit,
)


class _PreparedRoot:
    def ensure_root(self):
        """The root is coursehub's: it must exist and be traversable, nothing more."""
        if not os.path.isdir(self.root) or not os.access(self.root, os.X_OK):
            self.fail(
                f"The exchange folder {self.root} is missing or not reachable; "
                "ask your hub's administrator to run 'coursehub doctor'."
            )


class CourseExchange(_PreparedRoot, Exchange):
    pass


class CourseFetchAssignment(_PreparedRoot, ExchangeFetchAssignment):
    pass


class CourseFetchFeedback(_PreparedRoot, ExchangeFetchFeedback):
    pass


class CourseReleaseAssignment(_PreparedRoot, ExchangeReleaseAssignment):
    pass


class CourseReleaseFeedback(_PreparedRoot, ExchangeReleaseFeedback):
    pass


class CourseList(_PreparedRoot, ExchangeList):
    """Lists course by course: the root can be traversed, not listed, so the
    courses come from the person's hub groups instead of a glob over the root."""

    def init_dest(self):
        if self.coursedir.course_id or self.cached:
            return super().init_dest()
        courses = self.authenticator.get_student_courses("*") or []
        found = []
        for course_id in sorted(courses):
            self.coursedir.course_id = course_id
            try:
                super().init_dest()
                found += self.assignments
            finally:
                self.coursedir.course_id = ""
        self.assignments = sorted(found)


class CourseSubmit(_PreparedRoot, ExchangeSubmit):
    pass


class CourseCollect(_PreparedRoot, ExchangeCollect):
    pass
