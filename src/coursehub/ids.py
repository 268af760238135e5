"""Stable numeric ids: uids for people, and one slot per course.

A uid must never move to another person once it owns files, and a course's
slot (its grader uid, course gid and grader port) must never move to another
course. So ids are allocated once, remembered in the data folder, and never
reused, even after a person or a course leaves the site file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


# The highest number coursehub hands out; beyond it allocation stops with a clear error.
MAX_ID = 2**31 - 2


class IdsExhaustedError(RuntimeError):
    pass


def _next(
    kind: list[int],
    base: int,
    used: set[int],
    host_taken: Callable[[int], bool],
    limit: int,
    what: str,
) -> int:
    """The next number above this kind's highest (numbers never move back), that no
    account or group of any kind, here, in another installation or on the host, has."""
    n = max([base - 1, *(k for k in kind if k >= base)]) + 1
    while n in used or host_taken(n):
        n += 1
    if n > limit:
        raise IdsExhaustedError(
            f"no free number left for {what} (coursehub gives at most {limit}); remove "
            "installations this machine no longer needs ('coursehub down' and delete their "
            "data folders), or free the numbers other accounts hold"
        )
    used.add(n)
    kind.append(n)
    return n


def _nobody(n: int) -> bool:
    return False


def allocate(
    people: list[str],
    course_ids: list[str],
    previous: Ids,
    taken: Ids | None = None,
    host_taken: Callable[[int], bool] = _nobody,
    limit: int = MAX_ID,
) -> Ids:
    """Keep every id already given; give new names the next unused numbers.

    uids (and the private gids equal to them), grader uids and course gids come from one
    pool: no number is ever both a person's uid and a course's gid, however many people
    and courses there are. `taken`: the ids of the machine's other installations;
    `host_taken(n)`: whether the host already has an account or group numbered n. Neither
    is handed out again.
    """
    taken = taken or Ids()
    uids = dict(previous.people)
    slots = dict(previous.courses)
    graders = {c: previous.grader_uid(c) for c in slots}
    groups = {c: previous.course_gid(c) for c in slots}
    used = (
        set(uids.values())
        | set(graders.values())
        | set(groups.values())
        | set(taken.people.values())
        | {taken.grader_uid(c) for c in taken.courses}
        | set(taken.graders.values())
        | set(taken.groups.values())
    )
    people_numbers = [*uids.values(), *taken.people.values()]
    grader_numbers = [*graders.values(), *taken.graders.values()]
    group_numbers = [*groups.values(), *taken.groups.values()]
    for name in people:
        if name not in uids:
            uids[name] = _next(
                people_numbers, PERSON_UID_BASE, used, host_taken, limit, f"person {name!r}"
            )
    for course_id in course_ids:
        if course_id not in slots:
            slots[course_id] = max(slots.values(), default=-1) + 1
            what = f"course {course_id!r}"
            graders[course_id] = _next(
                grader_numbers, GRADER_UID_BASE, used, host_taken, limit, what
            )
            groups[course_id] = _next(group_numbers, COURSE_GID_BASE, used, host_taken, limit, what)
    return Ids(people=uids, courses=slots, graders=graders, groups=groups)


def host_taken(n: int) -> bool:
    """Whether this machine already has a user or a group numbered n (its files, NSS
    included: a directory service's accounts count too)."""
    import grp
    import pwd

    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(n)
        except KeyError:
            continue
        return True
    return False


def merge(ids: list[Ids]) -> Ids:
    """All ids of several installations in one (names do not matter, numbers do)."""
    people, graders, groups = {}, {}, {}
    for n, one in enumerate(ids):
        people.update({f"{n}:{k}": v for k, v in one.people.items()})
        graders.update({f"{n}:{c}": one.grader_uid(c) for c in one.courses})
        groups.update({f"{n}:{c}": one.course_gid(c) for c in one.courses})
    return Ids(people=people, graders=graders, groups=groups)
