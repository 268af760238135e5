"""nbgrader exchange classes for coursehub's private exchange.

nbgrader's default exchange wants its root writable by everyone, makes each
submission world-writable, and files a submission under whatever name its
folder carries. coursehub prepares the exchange folders itself (owners and
modes from the Plan) and these classes keep them that way:

- the root and each course folder can be traversed, never listed or changed
  by students;
- each student submits into their own folder, ``inbound/{student}/``, owned by
  them and readable only by the course's grader (setgid group of the grader);
  nobody else can list, read or write it, even knowing a submission's name;
- a student submits only as themselves, and collect takes a submission only
  from the folder of the student it names, owned by that student's uid;
- feedback goes to a folder per student and course,
  ``.feedback/{student}/{course}/feedback/``, written by the course's grader
  and readable by that student's private group only.
"""

from __future__ import annotations

import base64
import glob
import os
import pwd
import re

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
from nbgrader.utils import get_username

# Inside inbound/{student}/ (2750: the student and the grader's group only), a
# submission is readable by whoever can reach it: the grader reads it whatever
# group a file ended up with (copying drops the setgid bit, and a student
# cannot give files to a group they are not in). Nobody but its owner writes it.
SUBMISSION_DIR_MODE = 0o755
SUBMISSION_FILE_MODE = 0o644


FEEDBACK_TREE = ".feedback"  # a course id never starts with '.', so this never clashes


def student_inbound(root: str, course_id: str, student: str) -> str:
    return os.path.join(root, course_id, "inbound", student)


def feedback_root(root: str, student: str) -> str:
    """A root under which ``{course}/feedback`` is the student's own feedback folder,
    so nbgrader's own path logic finds it unchanged."""
    return os.path.join(root, FEEDBACK_TREE, student)


class _StudentFeedbackRoot:
    """Look for feedback in the student's own folder instead of the course's."""

    def _with_feedback_root(self, method):
        real = self.root
        self.root = feedback_root(real, get_username())
        try:
            return method()
        finally:
            self.root = real


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


class CourseFetchFeedback(_StudentFeedbackRoot, _PreparedRoot, ExchangeFetchFeedback):
    def init_src(self):
        me = get_username()
        if self.coursedir.student_id not in ("*", "", me):
            self.fail(f"You can only fetch your own feedback ({me}).")
        self._with_feedback_root(super().init_src)


class CourseReleaseAssignment(_PreparedRoot, ExchangeReleaseAssignment):
    pass


class CourseReleaseFeedback(_PreparedRoot, ExchangeReleaseFeedback):
    """Release each student's feedback into their own folder."""

    def copy_files(self):
        wanted = self.coursedir.student_id or "*"
        pattern = self.coursedir.format_path(
            self.coursedir.feedback_directory, wanted, self.coursedir.assignment_id
        )
        students = sorted(
            os.path.basename(os.path.dirname(p)) for p in glob.glob(pattern) if os.path.isdir(p)
        )
        course_id = self.coursedir.course_id
        try:
            for student in students:
                self.coursedir.student_id = student
                self.init_src()
                self.dest_path = os.path.join(
                    feedback_root(self.root, student), course_id, "feedback"
                )
                if not os.path.isdir(self.dest_path):
                    self.log.warning(
                        "No feedback folder for %s in %s (not a student of the course?); skipped",
                        student,
                        course_id,
                    )
                    continue
                super().copy_files()
        finally:
            self.coursedir.student_id = wanted


class CourseSubmit(_PreparedRoot, ExchangeSubmit):
    """Submit into ``inbound/{me}/``, only as oneself."""

    def init_dest(self):
        course_id = self.coursedir.course_id
        if course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        me = get_username()
        if self.coursedir.student_id not in ("*", "", me):
            self.fail(
                f"You can only submit as yourself ({me}), not as {self.coursedir.student_id!r}."
            )
        if not self.authenticator.has_access(me, course_id):
            self.fail("You do not have access to this course.")
        self.inbound_path = student_inbound(self.root, course_id, me)
        if not os.path.isdir(self.inbound_path) or not os.access(
            self.inbound_path, os.W_OK | os.X_OK
        ):
            self.fail(
                f"You cannot submit to {course_id}: there is no submission folder for you. "
                "Only the course's students submit; ask your instructor to add you."
            )
        self.cache_path = os.path.join(self.cache, course_id)
        name = f"{me}+{self.coursedir.assignment_id}+{self.timestamp}"
        if self.add_random_string:
            name += "+" + base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")
        self.assignment_filename = name

    def copy_files(self):
        super().copy_files()
        # nbgrader opens each submission to everyone (0777): nobody but its owner writes it
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        for folder, _dirs, files in os.walk(dest):
            os.chmod(folder, SUBMISSION_DIR_MODE)
            for name in files:
                os.chmod(os.path.join(folder, name), SUBMISSION_FILE_MODE)


class CourseCollect(_PreparedRoot, ExchangeCollect):
    """Collect from each ``inbound/{student}/``, trusting only folders owned by that student."""

    def init_src(self):
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        wanted = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(
            self.inbound_path, wanted, f"{wanted}+{self.coursedir.assignment_id}+*"
        )
        records = []
        for path in glob.glob(pattern):
            student = os.path.basename(os.path.dirname(path))
            if not self._trusted(student, path):
                continue
            rec = self._path_to_record(path)
            # relative to inbound_path, so nbgrader's copy finds it
            rec["filename"] = os.path.join(student, rec["filename"])
            records.append(rec)
        by_student: dict[str, list] = {}
        for rec in records:
            by_student.setdefault(rec["username"], []).append(rec)
        self._select(by_student)

    def _trusted(self, student: str, path: str) -> bool:
        name = os.path.basename(path)
        if not name.startswith(f"{student}+"):
            self.log.warning("Skipping %s: it names another student than its folder", path)
            return False
        try:
            owner = pwd.getpwuid(os.stat(os.path.dirname(path)).st_uid).pw_name
        except KeyError:
            owner = None
        if owner != student:
            self.log.warning("Skipping %s: its folder is not owned by %s", path, student)
            return False
        return True

    def _select(self, by_student: dict[str, list]) -> None:
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        self.src_records = []
        for recs in by_student.values():
            recs = self._sort_by_timestamp(recs)
            if self.duedate is not None and self.before_duedate:
                before = [r for r in recs if r["timestamp"] <= self.duedate]
                recs = before or recs
            self.src_records.append(recs[0])


class CourseList(_PreparedRoot, ExchangeList):
    """Lists course by course (the root can be traversed, not listed), and
    inbound submissions in their per-student folders."""

    _inbound_re = re.compile(
        r".*/(?P<course_id>[^/]*)/inbound/(?P<folder>[^/+]*)/(?P<student_id>[^/+]*)"
        r"\+(?P<assignment_id>[^+]*)\+(?P<timestamp>[^+]*)(?P<random_string>\+.*)?$"
    )

    def init_dest(self):
        if self.coursedir.course_id or self.cached:
            self._init_dest_one()
            return
        courses = self.authenticator.get_student_courses("*") or []
        found = []
        for course_id in sorted(courses):
            self.coursedir.course_id = course_id
            try:
                self._init_dest_one()
                found += self.assignments
            finally:
                self.coursedir.course_id = ""
        self.assignments = sorted(found)

    def _init_dest_one(self):
        if not self.inbound:
            return super().init_dest()
        student = self.coursedir.student_id or "*"
        assignment = self.coursedir.assignment_id or "*"
        pattern = os.path.join(
            self.root, self.coursedir.course_id, "inbound", student, f"{student}+{assignment}+*"
        )
        self.assignments = sorted(glob.glob(pattern))

    def parse_assignments(self):
        if self.cached:  # a student's own submissions: their feedback is in their folder
            real = self.root
            self.root = feedback_root(real, get_username())
            try:
                return super().parse_assignments()
            finally:
                self.root = real
        return super().parse_assignments()

    def parse_assignment(self, assignment):
        if not self.inbound:
            return super().parse_assignment(assignment)
        m = self._inbound_re.match(assignment)
        if m is None or m.group("folder") != m.group("student_id"):
            raise RuntimeError(f"Not a submission in its student's folder: {assignment}")
        info = m.groupdict()
        del info["folder"]
        return info
