"""What the hub's home page says to the person logged in.

Their courses and role in each (from the Plan, pure), a link to the formgrader of
each course they teach, the state of each released assignment of each course they
take, and for admins the health `coursehub status` reports.

The assignment states come from folders graders and students control (the
exchange's course folders, the student's inbound folder and home). The hub runs
as root, and root never follows a path another account controls: `folder` walks
down with directory descriptors, one `O_NOFOLLOW` step per name, so a link, or
anything that is not a folder, ends the walk instead of being followed. A name
found in such a folder is untrusted text: it is shown escaped by the template and
used only for one lookup relative to a descriptor. Each listing is bounded, and an
odd entry is skipped, never an error on the page.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ..hosting import Check, HostUnsupported, InstallationHealth, host_for  # noqa: F401
from ..plan import INSTRUCTOR, STUDENT, Plan, load_plan

TEMPLATES = str(Path(__file__).parent / "templates")  # c.JupyterHub.template_paths

MAX_ENTRIES = 500  # per folder read: a folder with more shows only its first entries
MAX_SUBMISSIONS_CHECKED = 5  # newest submissions of one assignment looked at for feedback
MAX_SECRET_BYTES = 1024  # nbgrader's submission secret is 128 hex digits

RELEASED, FETCHED, SUBMITTED, FEEDBACK = "released", "fetched", "submitted", "feedback available"

_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# Reading folders others control.


def plain_name(name: str) -> bool:
    """A name that can be one step below a folder and shown as text: anything else is skipped."""
    return (
        0 < len(name) <= 255 and name not in (".", "..") and "/" not in name and name.isprintable()
    )


@contextmanager
def folder(root: str | int, *parts: str) -> Iterator[int | None]:
    """A descriptor of the folder root/parts..., or None when a part is missing, a link or
    not a folder.

    root is a path coursehub itself owns (the exchange, the homes) or an open descriptor
    (left open); each part is opened relative to the one before, never through a link.
    """
    try:
        if isinstance(root, int):
            fd = os.dup(root)
        else:  # coursehub's own path: followed as given
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        for part in parts:
            if not plain_name(part):
                yield None
                return
            try:
                child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
            except OSError:
                yield None
                return
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def entries(fd: int, kind: int, limit: int = MAX_ENTRIES) -> list[str]:
    """Names of the folders (kind=stat.S_IFDIR) or plain files (stat.S_IFREG) among the
    first `limit` entries of the folder `fd`; links and odd names are left out."""
    names = []
    try:
        with os.scandir(fd) as it:
            for entry in itertools.islice(it, limit):
                if _is(fd, entry.name, kind):
                    names.append(entry.name)
    except OSError:
        pass
    return names


def _is(fd: int, name: str, kind: int) -> bool:
    if not plain_name(name):
        return False
    try:
        return stat.S_IFMT(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode) == kind
    except OSError:
        return False


def read_small(fd: int, name: str, limit: int = MAX_SECRET_BYTES) -> str | None:
    """The ASCII text of a plain file of at most `limit` bytes in the folder `fd`, or None.

    Not a link, a FIFO (O_NONBLOCK: opening one never waits), a device or a hard link
    to a file elsewhere (one link only): the same file checked before and after open.
    """
    try:
        before = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(before.st_mode):
            return None
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    try:
        st = os.fstat(f)
        if (
            (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino)
            or not stat.S_ISREG(st.st_mode)
            or st.st_nlink != 1
            or st.st_size > limit
        ):
            return None
        data = os.read(f, limit + 1)
    except OSError:
        return None
    finally:
        os.close(f)
    if len(data) > limit or not data.isascii():
        return None
    return data.decode("ascii").strip() or None


# What a student's assignments are at.


@dataclass(frozen=True)
class Assignment:
    name: str  # untrusted text from the course's outbound folder: the template escapes it
    state: str  # RELEASED, FETCHED, SUBMITTED or FEEDBACK


def _submissions(inbound: int, student: str) -> dict[str, list[str]]:
    """assignment -> its submission folders, newest first. Submissions are named
    '{student}+{assignment}+{timestamp}[+random]'; any other entry is skipped."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name in entries(inbound, stat.S_IFDIR):
        parts = name.split("+")
        if len(parts) >= 3 and parts[0] == student and parts[1]:
            found.setdefault(parts[1], []).append((parts[2], name))
    return {a: [n for _, n in sorted(subs, reverse=True)] for a, subs in found.items()}


def _has_feedback(inbound: int, submissions: list[str], given: set[str]) -> bool:
    """Is there released feedback for one of these submissions?

    nbgrader names the feedback of a notebook after a hash of the submission's secret
    and the notebook's name (its own notebook_hash, used here so the names match).
    """
    from nbgrader.utils import notebook_hash

    for name in submissions[:MAX_SUBMISSIONS_CHECKED]:
        with folder(inbound, name) as sub:
            if sub is None:
                continue
            secret = read_small(sub, "submission_secret.txt")
            if secret is None:
                continue
            for nb in entries(sub, stat.S_IFREG):
                stem = nb.removesuffix(".ipynb")
                if (
                    stem
                    and stem != nb
                    and f"{notebook_hash(secret=secret, notebook_id=stem)}.html" in given
                ):
                    return True
    return False


def student_assignments(plan: Plan, course_id: str, student: str) -> list[Assignment] | None:
    """Each assignment released in a course, with how far the student got; None when the
    course's released folder cannot be read safely (missing, a link)."""
    from ..exchange import FEEDBACK_TREE

    ex = plan.paths.exchange
    with folder(ex, course_id, "outbound") as outbound:
        if outbound is None:
            return None
        released = sorted(entries(outbound, stat.S_IFDIR))
    if not released:
        return []
    homes, home = os.path.split(plan.people[student].account.home)
    with folder(homes, home, course_id) as mine:
        fetched = set() if mine is None else {a for a in released if _is(mine, a, stat.S_IFDIR)}
    feedback: set[str] = set()
    with folder(ex, course_id, "inbound", student) as inbound:
        submissions = {} if inbound is None else _submissions(inbound, student)
        with folder(ex, FEEDBACK_TREE, student, course_id, "feedback") as fb:
            given = set() if fb is None else set(entries(fb, stat.S_IFREG))
        if given:
            feedback = {
                a
                for a in released
                if a in submissions and _has_feedback(inbound, submissions[a], given)
            }

    def state(a: str) -> str:
        if a in feedback:
            return FEEDBACK
        if a in submissions:
            return SUBMITTED
        return FETCHED if a in fetched else RELEASED

    return [Assignment(a, state(a)) for a in released]


# The page's data.


@dataclass(frozen=True)
class CourseView:
    course_id: str
    title: str
    role: str  # INSTRUCTOR or STUDENT
    formgrader: str | None = None  # instructors
    assignments: tuple[Assignment, ...] | None = None  # students; None: not known


def courses_of(plan: Plan, name: str) -> list[CourseView]:
    """The person's courses and role in each, in the Plan's order. Pure."""
    person = plan.people.get(name)
    if person is None:
        return []
    views = []
    for cid, g in plan.courses.items():
        role = person.courses.get(cid)
        if role == INSTRUCTOR:
            views.append(CourseView(cid, g.title, role, formgrader=g.formgrader_url))
        elif role == STUDENT:
            views.append(CourseView(cid, g.title, role))
    return views


@dataclass(frozen=True)
class CourseSummary:
    course_id: str
    title: str
    instructors: int
    students: int
    url: str  # the grader service's prefix


def installation_courses(plan: Plan) -> list[CourseSummary]:
    """Every course of the installation, for admins. Pure."""
    return [
        CourseSummary(cid, g.title, len(g.instructors), len(g.students), g.prefix)
        for cid, g in plan.courses.items()
    ]


def installation_health(plan: Plan) -> InstallationHealth:
    """What `coursehub status` knows of the installation, from its target (the same
    functions status calls). Blocking: HTTP to each process."""
    try:
        return host_for(plan).health()
    except HostUnsupported:  # coursehub's install lacks its targets: nothing to ask
        return InstallationHealth(available=False)


class HomePage:
    """The `coursehub` template variable of one page: nothing is read until the home
    template asks for it (JupyterHub builds template variables for every page)."""

    def __init__(self, plan_file: str, name: str):
        self.plan_file = plan_file
        self.name = name

    @cached_property
    def plan(self) -> Plan | None:
        try:
            return load_plan(self.plan_file)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @cached_property
    def courses(self) -> list[CourseView]:
        if self.plan is None:
            return []
        views = []
        for v in courses_of(self.plan, self.name):
            if v.role == STUDENT:
                found = student_assignments(self.plan, v.course_id, self.name)
                v = replace(v, assignments=None if found is None else tuple(found))
            views.append(v)
        return views

    @property
    def admin(self) -> bool:
        return self.plan is not None and self.name in self.plan.admins

    @cached_property
    def all_courses(self) -> list[CourseSummary]:
        return [] if self.plan is None else installation_courses(self.plan)

    async def health(self) -> InstallationHealth | None:
        """Admins only. In a thread: the checks ask this very hub through the proxy."""
        if not self.admin:
            return None
        return await asyncio.to_thread(installation_health, self.plan)


class HomeTemplateVar:
    """c.JupyterHub.template_vars["coursehub"]: called with the user for every page."""

    def __init__(self, plan_file: str):
        self.plan_file = plan_file

    def __call__(self, user: Any) -> HomePage | None:
        name = getattr(user, "name", None)
        return HomePage(self.plan_file, name) if name else None
