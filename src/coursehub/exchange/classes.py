"""The exchange classes nbgrader's ExchangeFactory is configured with (see the package).

Each subclasses nbgrader's default class and overrides what coursehub's folders
and trust boundaries need; nothing of nbgrader is copied.
"""

from __future__ import annotations

import base64
import glob
import os
import re
import shutil
import tempfile
import time
from dataclasses import replace

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
from traitlets import Float, Integer, Unicode

from ..paths import receipts_file
from . import (
    FEEDBACK_TREE,
    SUBMISSION_DIR_MODE,
    SUBMISSION_FILE_MODE,
    feedback_root,
    student_inbound,
)
from .receipts import (
    BadName,
    ReceiptBook,
    judge,
    parse_name,
    student_uid,
    submission_names,
)
from .safetree import DIR_FLAGS, Limits, Refused, open_dir, open_path, read_regular, walk

MiB = 2**20
MAX_NAMES = 10000  # names looked at in one student's inbound folder


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
    """Fetch one's own feedback, trusting nothing the grader account put there: the
    grader is reached by every instructor and by student code during autograde."""

    max_feedback_bytes = Integer(
        100 * MiB,
        help="Largest feedback file fetched; a larger one is left where it is, with a warning.",
    ).tag(config=True)

    def init_src(self):
        me = get_username()
        if self.coursedir.student_id not in ("*", "", me):
            self.fail(f"You can only fetch your own feedback ({me}).")
        self._with_feedback_root(super().init_src)

    def do_copy(self, src, dest):
        course_id = self.coursedir.course_id
        try:
            # root's folders down to .feedback/{me}; the grader's two below it, never a link
            fd = open_path(self.root, FEEDBACK_TREE, get_username(), course_id, "feedback")
        except (OSError, Refused) as err:
            self.log.warning("Your feedback folder of %s cannot be read: %s", course_id, err)
            return
        try:
            for notebook_id, timestamp, path in self.feedback_files:
                name = os.path.basename(path)
                try:
                    data = read_regular(fd, name, self.max_feedback_bytes)
                except Refused as err:
                    self.log.warning(
                        "Not fetching the feedback on %s submitted at %s: %s (%s)",
                        notebook_id,
                        timestamp,
                        err,
                        name,
                    )
                    continue
                # dest is in the student's own home and this runs as the student: the
                # folder is theirs, so a link of theirs can only redirect their own write
                folder = os.path.join(dest, timestamp)
                os.makedirs(folder, exist_ok=True)
                target = os.path.join(folder, f"{notebook_id}.html")
                tmp_fd, tmp = tempfile.mkstemp(prefix=".feedback-", suffix=".html", dir=folder)
                try:
                    with os.fdopen(tmp_fd, "wb") as f:
                        f.write(data)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, target)  # replaces whatever name was there, links included
                except BaseException:
                    os.unlink(tmp)
                    raise
                self.log.info("Fetched feedback: %s", target)
        finally:
            os.close(fd)


class CourseReleaseAssignment(_PreparedRoot, ExchangeReleaseAssignment):
    pass


class CourseReleaseFeedback(_PreparedRoot, ExchangeReleaseFeedback):
    """Release each student's feedback into their own folder, which only the grader
    writes: checked to be the grader's own folders, reached without a link."""

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
                why = self._not_mine(student, course_id)
                if why:
                    self.log.warning(
                        "Not releasing feedback for %s in %s: %s", student, course_id, why
                    )
                    continue
                super().copy_files()
        finally:
            self.coursedir.student_id = wanted

    def _not_mine(self, student: str, course_id: str) -> str | None:
        """Why `.feedback/{student}/{course}/feedback` is not the grader's own folder
        (root owns the two above it), reached without a link."""
        me = os.getuid()
        try:
            fd = open_path(
                self.root,
                FEEDBACK_TREE,
                student,
                course_id,
                "feedback",
                owners=(None, None, me, me),
            )
        except Refused as err:
            if not os.path.isdir(self.dest_path):
                return "there is no feedback folder for them (not a student of the course?)"
            return str(err)
        except OSError as err:
            return f"the exchange cannot be reached ({err})"
        os.close(fd)
        return None


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
        # runs as the student, in their own inbound folder: chmod can only reach what
        # the student owns anyway
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        for folder, _dirs, files in os.walk(dest):
            os.chmod(folder, SUBMISSION_DIR_MODE)
            for name in files:
                os.chmod(os.path.join(folder, name), SUBMISSION_FILE_MODE)


class CourseCollect(_PreparedRoot, ExchangeCollect):
    """Collect from each ``inbound/{student}/``, trusting nothing the student put there.

    Each submission is read with ``safetree`` (no link followed, only the student's own
    regular files and folders, bounded) and filed only under the student whose folder
    and files it is; a submission that cannot be taken is skipped with its reason, and
    the rest of the course is collected. The time it counts as made comes from
    ``receipts``: never earlier than the kernel's record of its files' last change
    allows, and a folder changed after the due date since coursehub first saw it is not
    collected again. The collected copy's ``timestamp.txt`` says that time, so
    autograde and the formgrader see it (and count lateness from it)."""

    max_submission_bytes = Integer(
        100 * MiB,
        help="""Most bytes one submission may hold, all its files together (files over
        CourseDirectory.max_file_size are left out first, as nbgrader does). A larger
        submission is not collected: the student's previous one is, if any.
        CourseDirectory.max_dir_size, when smaller, bounds it too.""",
    ).tag(config=True)

    max_submission_files = Integer(
        1000,
        help="""Most entries (files and folders, those left out included) one submission
        may hold; a submission with more is not collected.""",
    ).tag(config=True)

    clock_tolerance = Float(
        60.0,
        help="""Seconds a submission's own timestamp may precede the kernel's record of the
        last change to its files (their ctime): the time nbgrader submit takes to write
        them. A submission counts as made at its timestamp, or at that record minus these
        seconds if later; it is the most lateness anybody can hide.""",
    ).tag(config=True)

    receipts_file = Unicode(
        "",
        help="""coursehub's receipts of the course's submissions (SQLite, written by the
        grader account only). Default: coursehub's receipts file beside the gradebook.""",
    ).tag(config=True)

    def _receipts_file(self) -> str:
        return self.receipts_file or receipts_file(self.coursedir.root)

    def _limits(self) -> Limits:
        cd = self.coursedir
        max_bytes = self.max_submission_bytes
        if cd.max_dir_size:
            max_bytes = min(max_bytes, 1000 * cd.max_dir_size)
        return Limits(
            max_bytes=max_bytes,
            max_entries=self.max_submission_files,
            max_file_bytes=1000 * cd.max_file_size if cd.max_file_size else None,
            ignore=tuple(cd.ignore),
            include=tuple(cd.include),
            bytes_hint=" (CourseCollect.max_submission_bytes, CourseDirectory.max_dir_size)",
            entries_hint=" (CourseCollect.max_submission_files)",
            file_hint=" (CourseDirectory.max_file_size)",
        )

    def _duedate(self):
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                return gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                return None

    def _skip(self, student: str, name: str, why: str) -> None:
        self.skipped.append((student, name, why))
        self.log.warning("Skipping %s's submission %r: %s", student, name, why)

    def init_src(self):
        cd = self.coursedir
        if cd.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, cd.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        self.duedate = self._duedate()
        self.limits = self._limits()
        self.skipped: list[tuple[str, str, str]] = []
        self.src_records = []
        inbound = os.open(self.inbound_path, DIR_FLAGS)  # the grader's own folder
        try:
            if cd.student_id and cd.student_id != "*":
                students = [cd.student_id]
            else:
                students = sorted(os.listdir(inbound))
            with ReceiptBook(self._receipts_file()) as book:
                for student in students:
                    rec = self._choose(self._candidates(book, inbound, student))
                    if rec is not None:
                        self.src_records.append(rec)
        finally:
            os.close(inbound)

    def _choose(self, candidates: list[dict]) -> dict | None:
        """The latest submission; with before_duedate the latest made before the due date,
        if any (nbgrader's rules, on times that are not the student's word alone)."""
        if not candidates:
            return None
        candidates = sorted(candidates, key=lambda c: c["timestamp"], reverse=True)
        if self.duedate is not None and self.before_duedate:
            on_time = [c for c in candidates if c["timestamp"] <= self.duedate]
            return (on_time or candidates)[0]
        return candidates[0]

    def _candidates(self, book: ReceiptBook, inbound: int, student: str) -> list[dict]:
        assignment = self.coursedir.assignment_id
        uid = student_uid(student)
        if uid is None:
            self.log.warning("Skipping inbound/%s: no account of that name", student)
            return []
        try:
            folder, _st = open_dir(student, inbound, uid)
        except Refused as err:
            self.log.warning("Skipping inbound/%s: %s", student, err)
            return []
        found = []
        try:
            names = list(submission_names(folder, MAX_NAMES))
            for name in names:
                rec = self._candidate(book, folder, student, uid, name)
                if rec is not None:
                    found.append(rec)
        finally:
            os.close(folder)
        if len(names) < MAX_NAMES:
            present = set(names)
            for r in book.of(student, assignment):
                if r.name not in present:
                    self.log.warning(
                        "%s's submission %r, which coursehub saw at %s UTC, is no longer "
                        "in their folder: it was deleted or renamed",
                        student,
                        r.name,
                        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.first_seen_ns / 1e9)),
                    )
        else:
            self.log.warning("inbound/%s holds too many names: looked at %d", student, MAX_NAMES)
        return found

    def _candidate(self, book, folder: int, student: str, uid: int, name: str) -> dict | None:
        assignment = self.coursedir.assignment_id
        try:
            sub = parse_name(name)
        except BadName as err:
            # names of other assignments are none of this collect's business
            if f"+{assignment}+" in name or name.startswith(f"{student}+{assignment}"):
                self._skip(student, name, str(err))
            return None
        if sub.assignment != assignment:
            return None
        if sub.student != student:
            self._skip(
                student,
                name,
                f"it names another student ({sub.student!r}) than the folder it is in",
            )
            return None
        try:
            fd, _st = open_dir(name, folder, uid)
        except Refused as err:
            self._skip(student, name, str(err))
            return None
        try:
            tree = walk(fd, uid, self.limits)  # names and metadata only
            receipt = book.get(student, assignment, name)
            same, digest = True, None
            if receipt is not None and receipt.last_change_ns != tree.last_change_ns:
                # touched or changed since coursehub first saw it: the digest tells which
                same = False
                if receipt.digest and receipt.limits == self.limits.key():
                    tree = walk(fd, uid, self.limits, read=True)
                    digest = tree.digest
                    same = digest == receipt.digest
        except Refused as err:
            self._skip(student, name, str(err))
            return None
        finally:
            os.close(fd)
        verdict = judge(
            student=student,
            assignment=assignment,
            name=name,
            claimed=sub.claimed,
            last_change_ns=tree.last_change_ns,
            now_ns=time.time_ns(),
            receipt=receipt,
            same_content=same,
            digest=digest,
            limits_key=self.limits.key() if digest else None,
            due=self.duedate,
            tolerance=self.clock_tolerance,
        )
        if verdict.counts_at is None:
            self._skip(student, name, verdict.why)
            return None
        if receipt is None:
            stored = book.add(verdict.receipt)
        else:
            stored = verdict.receipt
            if stored != receipt:
                book.put(stored)
        if verdict.why:
            self.log.warning("%s's submission %r: %s", student, name, verdict.why)
        return {
            "username": student,
            "filename": os.path.join(student, name),
            "name": name,
            "timestamp": verdict.counts_at,
            "last_change_ns": tree.last_change_ns,
            "receipt": stored,
        }

    def init_dest(self):
        pass

    def copy_files(self):
        cd = self.coursedir
        if not self.src_records:
            self.log.warning(
                "No submissions of '%s' for course '%s' to collect", cd.assignment_id, cd.course_id
            )
        else:
            self.log.info(
                "Processing %d submissions of '%s' for course '%s'",
                len(self.src_records),
                cd.assignment_id,
                cd.course_id,
            )
        inbound = os.open(self.inbound_path, DIR_FLAGS)
        try:
            with ReceiptBook(self._receipts_file()) as book:
                for rec in self.src_records:
                    try:
                        self._collect_one(book, inbound, rec)
                    except Refused as err:
                        self._skip(rec["username"], rec["name"], str(err))
        finally:
            os.close(inbound)
        if self.skipped:
            self.log.warning(
                "Not collected: %d submission(s): %s",
                len(self.skipped),
                "; ".join(f"{s}: {n!r}: {why}" for s, n, why in self.skipped),
            )

    def _collect_one(self, book: ReceiptBook, inbound: int, rec: dict) -> None:
        cd = self.coursedir
        student, assignment = rec["username"], cd.assignment_id
        dest = cd.format_path(cd.submitted_directory, student, assignment)
        updating = os.path.isdir(dest)
        if updating:
            existing = cd.get_existing_timestamp(dest)
            new = rec["timestamp"]
            newer = self.update and (existing is None or new > existing)
            if not newer and not (self.before_duedate and existing != new):
                if self.update:
                    self.log.info("No newer submission to collect: %s %s", student, assignment)
                else:
                    self.log.info(
                        "Submission already exists, use --update to update: %s %s",
                        student,
                        assignment,
                    )
                return
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        # copied beside its place, then renamed into it: never half a submission
        staging = tempfile.mkdtemp(prefix=f".{assignment}-collecting-", dir=parent)
        try:
            uid = student_uid(student)
            folder, _st = open_dir(student, inbound, uid)
            try:
                src, _st = open_dir(rec["name"], folder, uid)
            finally:
                os.close(folder)
            out = os.open(staging, DIR_FLAGS)
            try:
                tree = walk(src, uid, self.limits, dest_fd=out)
            finally:
                os.close(src)
                os.close(out)
            receipt = rec["receipt"]
            if tree.last_change_ns != rec["last_change_ns"]:
                raise Refused("it changed while it was collected")
            if (
                receipt.digest
                and receipt.limits == self.limits.key()
                and receipt.last_change_ns == tree.last_change_ns
                and receipt.digest != tree.digest
            ):
                raise Refused("its content is not what coursehub first saw")
            for path, why in tree.left_out:
                self.log.warning(
                    "%s's submission %r: left out %r: %s", student, rec["name"], path, why
                )
            # the time it counts as made, for autograde and the formgrader (not the student's)
            with open(os.path.join(staging, "timestamp.txt"), "w") as f:
                f.write(f"{rec['timestamp']:%Y-%m-%d %H:%M:%S.%f} UTC")
            # staging and dest are in the grader's own course folder (0700, no student
            # reaches it), and this runs as the grader
            os.chmod(staging, SUBMISSION_DIR_MODE)
            if updating:
                self.log.info("Updating submission: %s %s", student, assignment)
                shutil.rmtree(dest)
            else:
                self.log.info("Collecting submission: %s %s", student, assignment)
            os.rename(staging, dest)
            staging = None
            if receipt.digest is None:
                receipt = replace(receipt, digest=tree.digest, limits=self.limits.key())
            book.put(
                replace(receipt, files=tree.files, bytes=tree.bytes, collected_ns=time.time_ns())
            )
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


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
