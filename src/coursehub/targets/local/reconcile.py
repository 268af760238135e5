"""Students added in a course's formgrader become members everywhere.

nbgrader's formgrader adds a student to the course's gradebook (and tries the
hub group, which fails for someone the hub does not know yet). The supervisor
looks at each gradebook every few seconds and takes such students into the
site file, so that adding a student anywhere ends in the same state: site
file, hub user, hub group, gradebook row and folders.
"""

from __future__ import annotations

import logging

from ...names import username_problem
from ...roster import add_member
from ...site import SiteError
from ...sitefile import change_site
from .apply import apply_site, gradebook_students, seen_gradebooks
from .runtime import Installation

log = logging.getLogger("coursehub")
_refused: set[tuple[str, str]] = set()  # (course, name) already reported as unusable


def new_gradebook_students(inst: Installation) -> dict[str, list[str]]:
    """Students who appeared in a gradebook since coursehub last looked, and whom
    the site file does not have in that course."""
    plan = inst.plan()
    seen = seen_gradebooks(inst)
    found: dict[str, list[str]] = {}
    for cid, g in plan.courses.items():
        known = set(g.students) | set(g.instructors) | seen.get(cid, set())
        for name in gradebook_students(plan, cid):
            if name in known or (cid, name) in _refused:
                continue
            if problem := username_problem(name):
                _refused.add((cid, name))
                log.warning(
                    "gradebook of %s has student %r, which %s; not added", cid, name, problem
                )
                continue
            found.setdefault(cid, []).append(name)
    return found


def adopt_formgrader_students(inst: Installation) -> None:
    """Called by the supervisor every few seconds; skips a round while a change is applied."""
    from .apply import Busy, apply_lock

    try:
        with apply_lock(inst, wait=False):
            found = new_gradebook_students(inst)
    except Busy:
        return
    if not found:
        return
    site_file = inst.runtime()["site_file"]

    def change(data):
        for cid, names in found.items():
            for name in names:
                add_member(data, cid, name, "student")

    try:
        change_site(site_file, change)
    except (SiteError, ValueError) as err:
        for cid, names in found.items():
            _refused.update((cid, n) for n in names)
        log.warning("could not add students from the formgrader: %s", err)
        return
    try:
        applied = apply_site(inst, site_file, wait=False)
    except Busy:
        return  # the site file has them now; the change in progress or the next 'up' applies it
    for cid, names in found.items():
        log.info("added to %s from its formgrader: %s", cid, ", ".join(names))
    for line in applied.lines():
        log.info("  %s", line)
