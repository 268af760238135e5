"""Stable numeric ids: uids for people, and one slot per course.

A uid must never move to another person once it owns files, and a course's
slot (its grader uid, course gid and grader port) must never move to another
course. So ids are allocated once, remembered in the data folder, and never
reused, even after a person or a course leaves the site file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PERSON_UID_BASE = 20001
GRADER_UID_BASE = 10001  # the POC's grader uid
COURSE_GID_BASE = 30001
GRADER_PORT_OFFSET = 10  # grader servers listen on hub.port + 10 + slot


@dataclass(frozen=True)
class Ids:
    """Allocated ids of one installation.

    people: person -> uid; courses: course -> slot (its grader port, per
    installation); graders: course -> grader uid; groups: course -> course gid.
    uids and gids are unique across every installation on the machine, so that
    two installations never share a uid (and so each other's files).
    """

    people: dict[str, int] = field(default_factory=dict)
    courses: dict[str, int] = field(default_factory=dict)
    graders: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)

    def grader_uid(self, course_id: str) -> int:
        return self.graders.get(course_id, GRADER_UID_BASE + self.courses[course_id])

    def course_gid(self, course_id: str) -> int:
        return self.groups.get(course_id, COURSE_GID_BASE + self.courses[course_id])

    def to_json(self) -> str:
        return json.dumps(
            {
                "people": self.people,
                "courses": self.courses,
                "graders": self.graders,
                "groups": self.groups,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Ids:
        data = json.loads(text)
        return cls(**{k: dict(data.get(k, {})) for k in ("people", "courses", "graders", "groups")})

    @classmethod
    def load(cls, path: Path) -> Ids:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            return cls()


def _next(used: set[int], base: int) -> int:
    return max(used, default=base - 1) + 1 if used and max(used) >= base else base


def allocate(
    people: list[str], course_ids: list[str], previous: Ids, taken: Ids | None = None
) -> Ids:
    """Keep every id already given; give new names the next unused numbers.

    `taken`: the ids of the machine's other installations, never given again here.
    """
    taken = taken or Ids()
    uids = dict(previous.people)
    used_uids = set(uids.values()) | set(taken.people.values())
    for name in people:
        if name not in uids:
            uids[name] = _next(used_uids, PERSON_UID_BASE)
            used_uids.add(uids[name])
    slots = dict(previous.courses)
    graders = {c: previous.grader_uid(c) for c in slots}
    groups = {c: previous.course_gid(c) for c in slots}
    used_graders = set(graders.values()) | set(taken.graders.values())
    used_groups = set(groups.values()) | set(taken.groups.values())
    for course_id in course_ids:
        if course_id not in slots:
            slots[course_id] = max(slots.values(), default=-1) + 1
            graders[course_id] = _next(used_graders, GRADER_UID_BASE)
            groups[course_id] = _next(used_groups, COURSE_GID_BASE)
            used_graders.add(graders[course_id])
            used_groups.add(groups[course_id])
    return Ids(people=uids, courses=slots, graders=graders, groups=groups)


def merge(ids: list[Ids]) -> Ids:
    """All ids of several installations in one (names do not matter, numbers do)."""
    people, graders, groups = {}, {}, {}
    for n, one in enumerate(ids):
        people.update({f"{n}:{k}": v for k, v in one.people.items()})
        graders.update({f"{n}:{c}": one.grader_uid(c) for c in one.courses})
        groups.update({f"{n}:{c}": one.course_gid(c) for c in one.courses})
    return Ids(people=people, graders=graders, groups=groups)
