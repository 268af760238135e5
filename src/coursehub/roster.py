"""Roster changes as pure edits of a site file's data (courses, people, roles).

Each function changes the data in place and raises RosterError with what to
do when the change makes no sense; the result is checked as a whole site
afterwards (sitefile.change_site), so nothing invalid is ever written.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from .names import course_id_problem, username_problem

ROLES = {"student": "students", "instructor": "instructors"}


class RosterError(ValueError):
    pass


def _course(data: Any, course_id: str) -> Any:
    for course in data.get("courses") or []:
        if course.get("id") == course_id:
            return course
    known = ", ".join(str(c.get("id")) for c in data.get("courses") or []) or "none"
    raise RosterError(f"no course {course_id!r} in the site file (courses: {known})")


def _list(mapping: Any, key: str) -> Any:
    if mapping.get(key) is None:
        mapping[key] = []
    return mapping[key]


def _check_name(name: str) -> None:
    """A course member may log in: being in a course is enough, `people` is for
    those in none. Only the name itself is checked here."""
    if problem := username_problem(name):
        raise RosterError(f"{name!r} {problem}")


def add_course(
    data: Any,
    course_id: str,
    title: str | None = None,
    instructors: list[str] = (),
    students: list[str] = (),
) -> None:
    if problem := course_id_problem(course_id):
        raise RosterError(f"course id {course_id!r} {problem}")
    if any(c.get("id") == course_id for c in data.get("courses") or []):
        raise RosterError(f"course {course_id!r} exists already")
    for name in [*instructors, *students]:
        _check_name(name)
    _list(data, "courses").append(
        {
            "id": course_id,
            "title": title or course_id,
            "instructors": list(instructors),
            "students": list(students),
        }
    )


def remove_course(data: Any, course_id: str) -> None:
    course = _course(data, course_id)
    data["courses"].remove(course)


def add_member(data: Any, course_id: str, name: str, role: str) -> bool:
    """Add `name` to a course with `role`. Returns False when nothing changed."""
    if role not in ROLES:
        raise RosterError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    course = _course(data, course_id)
    other = next(k for r, k in ROLES.items() if r != role)
    if name in (course.get(other) or []):
        raise RosterError(
            f"{name!r} is already {other[:-1]} of {course_id!r}; remove them first to change the role"
        )
    _check_name(name)
    members = _list(course, ROLES[role])
    if name in members:
        return False
    members.append(name)
    return True


def remove_member(data: Any, course_id: str, name: str) -> str:
    """Remove `name` from a course. Returns the role they had."""
    course = _course(data, course_id)
    for role, key in ROLES.items():
        if name in (course.get(key) or []):
            course[key].remove(name)
            return role
    raise RosterError(f"{name!r} is not a member of {course_id!r}")


def members(data: Any, course_id: str) -> list[tuple[str, str]]:
    course = _course(data, course_id)
    return [(n, role) for role, key in ROLES.items() for n in course.get(key) or []]


def parse_members_csv(text: str) -> list[tuple[str, str]]:
    """Rows of a roster CSV: a 'username' column and an optional 'role' column
    (student or instructor; student when empty). Returns (name, role) pairs."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "username" not in fields:
        raise RosterError(
            "the CSV needs a header row with a 'username' column (and optionally 'role'); "
            f"found columns: {', '.join(fields) or 'none'}"
        )
    rows = []
    problems = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        name = row.get("username", "")
        role = row.get("role") or "student"
        if not name:
            continue
        if problem := username_problem(name):
            problems.append(f"line {line}: {name!r} {problem}")
        elif role not in ROLES:
            problems.append(f"line {line}: role {role!r} must be student or instructor")
        else:
            rows.append((name, role))
    if problems:
        raise RosterError(
            "the CSV has problems, nothing was changed:\n  - " + "\n  - ".join(problems)
        )
    return rows
