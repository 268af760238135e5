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
    """Allocated ids: person name -> uid, course id -> slot (0, 1, ...)."""

    people: dict[str, int] = field(default_factory=dict)
    courses: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"people": self.people, "courses": self.courses}, indent=2, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Ids:
        data = json.loads(text)
        return cls(people=dict(data.get("people", {})), courses=dict(data.get("courses", {})))

    @classmethod
    def load(cls, path: Path) -> Ids:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            return cls()


def allocate(people: list[str], course_ids: list[str], previous: Ids) -> Ids:
    """Keep every id already given; give new names the next unused numbers."""
    uids = dict(previous.people)
    next_uid = max(uids.values(), default=PERSON_UID_BASE - 1) + 1
    for name in people:
        if name not in uids:
            uids[name] = next_uid
            next_uid += 1
    slots = dict(previous.courses)
    next_slot = max(slots.values(), default=-1) + 1
    for course_id in course_ids:
        if course_id not in slots:
            slots[course_id] = next_slot
            next_slot += 1
    return Ids(people=uids, courses=slots)
