"""The course an LMS context is.

A context pinned in the site file (`auth.contexts`: LMS context id -> course
id) is that course. Any other context gets a safe id made from its label (or
its id), never the id of an existing course: an unpinned context can only ever
create a new course, so a course label that happens to match never lets a
launch into someone else's course. A course created from a launch is pinned
at once, so its id never changes afterwards.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ..names import MAX_COURSE_ID, course_id_problem

_UNSAFE = re.compile(r"[^a-z0-9]+")
_HASH_CHARS = 8
MAX_TITLE = 200  # an LMS title longer than this is cut: it is shown, never parsed


class LaunchContextError(ValueError):
    """The launch names no course context."""


@dataclass(frozen=True)
class CourseRef:
    course_id: str
    context_id: str
    title: str
    known: bool  # True: pinned to an existing course


def slug(text: str, limit: int = MAX_COURSE_ID) -> str:
    """`text` with only a-z, 0-9 and '-' (runs of anything else become one '-')."""
    return _UNSAFE.sub("-", text.lower()).strip("-")[:limit].strip("-")


def one_line(text: str, limit: int = MAX_TITLE) -> str:
    """LMS text (a context's title or label) as a site file title: control characters and
    line breaks become spaces, runs of spaces one, at most `limit` characters. The site
    file refuses control characters in titles; an LMS is not asked."""
    spaced = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return " ".join(spaced.split())[:limit].strip()


def resolve_course(
    context_id: str,
    label: str,
    title: str,
    pins: Mapping[str, str],
    existing: Collection[str],
) -> CourseRef:
    """The course of an LMS context (`context_id`, with its short `label` and `title`)."""
    if not isinstance(context_id, str) or not context_id.strip():
        raise LaunchContextError(
            "the launch has no course context (LTI 1.1 'context_id', LTI 1.3 context claim); "
            "launch coursehub from inside a course of the LMS"
        )
    shown = one_line(title or "") or one_line(label or "") or one_line(context_id)
    if context_id in pins:
        cid = pins[context_id]
        return CourseRef(cid, context_id, shown, cid in existing)
    taken = set(existing) | set(pins.values())
    base = slug(label or "") or slug(context_id)
    if base and course_id_problem(base) is None and base not in taken:
        return CourseRef(base, context_id, shown, False)
    digest = hashlib.sha256(context_id.encode()).hexdigest()[:_HASH_CHARS]
    head = base[: MAX_COURSE_ID - _HASH_CHARS - 1].strip("-")
    cid = f"{head}-{digest}" if head else f"lti-{digest}"
    if course_id_problem(cid) is not None or cid in taken:
        cid = f"lti-{digest}"
    return CourseRef(cid, context_id, shown, False)
