"""Rules for the names people write in a site file: course ids and usernames.

A name becomes a hub user, a hub group, a service, a URL path, a folder and an
entry in a passwd file, so it must be safe in all of them at once.
"""

from __future__ import annotations

import re

MAX_USERNAME = 32  # the Linux limit for account names
GRADER_PREFIX = "grader-"
MAX_COURSE_ID = MAX_USERNAME - len(GRADER_PREFIX)  # grader-{course} must fit too

# \Z, not $: `$` also matches before a final line break, and "alice\n" must not pass
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")
_COURSE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?\Z")

RESERVED_USERNAMES = frozenset({"root", "nobody", "daemon", "jovyan", "admin", "coursehub"})
# Hub service names live beside course ids: coursehub's own service keeps its name.
RESERVED_COURSE_IDS = frozenset({"coursehub"})
COURSE_GROUP_PREFIX = "course-"  # OS group of a course's members


def grader_account(course_id: str) -> str:
    """The hub user and account that runs a course's grader server."""
    return f"{GRADER_PREFIX}{course_id}"


def _text_problem(value: object, longest: int) -> str | None:
    """What every name coursehub keeps must be: a non-empty lower-case string, short."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > longest:
        return f"is {len(value)} characters long; use at most {longest}"
    if value != value.lower():
        return f"has upper-case letters; write it as {value.lower()!r}"
    return None


def username_problem(name: object) -> str | None:
    """Why `name` cannot be a coursehub username, or None when it can."""
    problem = _text_problem(name, MAX_USERNAME)
    if problem:
        return problem
    if not _USERNAME.match(name) or ".." in name or name.endswith("."):
        return (
            "may only use a-z, 0-9, '.', '_' and '-', must start with a letter or digit, "
            "and must not contain '..' or end with '.'"
        )
    if name.startswith(GRADER_PREFIX):
        return (
            f"starts with {GRADER_PREFIX!r}, which coursehub keeps for course grader accounts; "
            "choose another name"
        )
    if name.startswith(COURSE_GROUP_PREFIX):
        return (
            f"starts with {COURSE_GROUP_PREFIX!r}, which coursehub keeps for course groups; "
            "choose another name"
        )
    if name in RESERVED_USERNAMES:
        return "is reserved; choose another name"
    return None


def course_id_problem(course_id: object) -> str | None:
    """Why `course_id` cannot be a course id, or None when it can."""
    problem = _text_problem(course_id, MAX_COURSE_ID)
    if problem:
        return problem
    if not _COURSE_ID.match(course_id):
        return (
            "may only use a-z, 0-9, '_' and '-', and must start and end with a letter or digit "
            "(it becomes a URL path, a folder and a hub group)"
        )
    if course_id in RESERVED_COURSE_IDS:
        return "is reserved for coursehub's own hub service; choose another id"
    return None


_ASSIGNMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "ps1\n" must not pass


def assignment_name_problem(name: str) -> str | None:
    """Why `name` cannot name an assignment that coursehub writes (a folder below the
    course's source/), or None when it can."""
    if not _ASSIGNMENT.match(name) or ".." in name:
        return (
            "must be letters, digits, '_', '.' and '-' (at most 64, no '..'), "
            "for example 'ps1' or 'week-2'"
        )
    return None
