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
- collect trusts nothing inside a student's folder (``safetree``): no link is
  followed, only the student's own regular files and folders are copied, sizes
  and counts are bounded, a malformed entry is skipped with its reason; and the
  time a submission counts as made is not the student's word alone
  (``receipts``: the kernel's ctime and coursehub's own receipts);
- feedback goes to a folder per student and course,
  ``.feedback/{student}/{course}/feedback/``, written by the course's grader
  and readable by that student's private group only; fetching it follows no
  link and reads only bounded regular files.

The classes live in ``coursehub.exchange.classes`` (they import nbgrader) and are
found here by name, as nbgrader's configuration names them
(``coursehub.exchange.CourseCollect``); importing this package alone stays light.
They run in people's and graders' servers: they import nbgrader, coursehub.paths and
each other, never the hub, the Plan's targets or anything that needs root.
"""

from __future__ import annotations

import os

# Inside inbound/{student}/ (2750: the student and the grader's group only), a
# submission is readable by whoever can reach it: the grader reads it whatever
# group a file ended up with (copying drops the setgid bit, and a student
# cannot give files to a group they are not in). Nobody but its owner writes it.
SUBMISSION_DIR_MODE = 0o755
SUBMISSION_FILE_MODE = 0o644


FEEDBACK_TREE = ".feedback"  # a course id never starts with '.', so this never clashes

CLASSES = (
    "CourseExchange",
    "CourseFetchAssignment",
    "CourseFetchFeedback",
    "CourseReleaseAssignment",
    "CourseReleaseFeedback",
    "CourseSubmit",
    "CourseCollect",
    "CourseList",
)


def student_inbound(root: str, course_id: str, student: str) -> str:
    return os.path.join(root, course_id, "inbound", student)


def feedback_root(root: str, student: str) -> str:
    """A root under which ``{course}/feedback`` is the student's own feedback folder,
    so nbgrader's own path logic finds it unchanged."""
    return os.path.join(root, FEEDBACK_TREE, student)


def __getattr__(name: str):
    if name in CLASSES:
        from . import classes

        return getattr(classes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
