"""`coursehub grades push`: a course's scores from its gradebook back to the LMS.

Scores are read from the course's gradebook as its grader account (the
gradebook is the grader's), sent to where each student's launch said (LTI 1.1
Basic Outcomes), and anything that does not arrive is kept in the outbox and
sent again on the next push or `coursehub grades retry`: never lost silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .credentials import load_lti_credentials
from .outcomes import OutcomeError, OutcomeStore, send_lti11_score

OUTCOMES_DB = "lti-outcomes.sqlite"
ATTEMPTS = 3  # within one push, before a score waits in the outbox

_READ_SCORES = """
import json, sys
from nbgrader.api import Gradebook, MissingEntry
db_url, course_id, assignment = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
with Gradebook(db_url, course_id) as gb:
    try:
        gb.find_assignment(assignment)
    except MissingEntry:
        print(json.dumps(None)); sys.exit(0)
    for s in gb.assignment_submissions(assignment):
        out[s.student_id] = [s.score, s.max_score]
print(json.dumps(out))
"""


class GradesError(RuntimeError):
    pass


@dataclass
class PushReport:
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # student, assignment, score
    failed: list[tuple[str, str, float, str]] = field(default_factory=list)
    no_launch: list[str] = field(default_factory=list)  # graded, but never launched the link


def outcomes_store(data_dir: str) -> OutcomeStore:
    return OutcomeStore(Path(data_dir, "state", OUTCOMES_DB))


def gradebook_scores(inst, course_id: str, assignment: str) -> dict[str, tuple[float, float]]:
    """{student: (score, max score)} of an assignment, read as the course's grader."""
    from ..targets.local.runtime import run_as_grader

    plan = inst.plan()
    root = plan.courses[course_id].course_root
    python = os.path.join(inst.runtime()["user_env"], "bin", "python")
    proc = run_as_grader(
        inst,
        course_id,
        [python, "-c", _READ_SCORES, f"sqlite:///{root}/gradebook.db", course_id, assignment],
        capture=True,
    )
    if proc.returncode != 0:
        raise GradesError(
            f"could not read the gradebook of {course_id}: {proc.stderr.strip()[-400:]}"
        )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    if found is None:
        raise GradesError(f"{course_id} has no assignment {assignment!r} in its gradebook")
    return {s: (float(v[0]), float(v[1])) for s, v in found.items()}


def fraction(score: float, max_score: float) -> float:
    """LTI 1.1 scores are fractions of the maximum, between 0 and 1."""
    if max_score <= 0:
        return 0.0
    return min(1.0, max(0.0, score / max_score))


def _send(store, target, score, key, secret, report: PushReport, send) -> None:
    last = ""
    for _ in range(ATTEMPTS):
        try:
            send(target, score, key, secret)
        except OutcomeError as err:
            last = str(err)
            continue
        store.sent(target.course_id, target.student, target.assignment)
        report.sent.append((target.student, target.assignment, score))
        return
    store.queue(target.course_id, target.student, target.assignment, score, last)
    report.failed.append((target.student, target.assignment, score, last))


def push(
    inst,
    course_id: str,
    assignment: str,
    send: Callable = send_lti11_score,
) -> PushReport:
    """Send every graded submission of `assignment` whose student launched its LMS link,
    after retrying what waits in the course's outbox."""
    plan = inst.plan()
    if course_id not in plan.courses:
        known = ", ".join(plan.courses) or "none"
        raise GradesError(f"no course {course_id!r} in this installation (courses: {known})")
    if plan.auth["type"] != "lti11":
        raise GradesError(
            f"grades go back to an LMS only with auth type 'lti11' (this site uses "
            f"{plan.auth['type']!r})"
        )
    creds = load_lti_credentials(plan.paths.secrets)
    store = outcomes_store(inst.data_dir)
    report = PushReport()
    retry(inst, course_id, send, report, skip=assignment)
    targets = store.targets(course_id, assignment)
    for student, (score, max_score) in sorted(
        gradebook_scores(inst, course_id, assignment).items()
    ):
        target = targets.get(student)
        if target is None:
            report.no_launch.append(student)
            continue
        value = fraction(score, max_score)
        _send(store, target, value, creds["consumer_key"], creds["shared_secret"], report, send)
    return report


def retry(
    inst,
    course_id: str | None = None,
    send: Callable = send_lti11_score,
    report: PushReport | None = None,
    skip: str | None = None,
) -> PushReport:
    """Send again what waits in the outbox (of one course, or of all)."""
    report = report or PushReport()
    plan = inst.plan()
    creds = load_lti_credentials(plan.paths.secrets)
    store = outcomes_store(inst.data_dir)
    for course, student, assignment, score, _attempts, _error in store.pending(course_id):
        if assignment == skip:
            continue  # pushed now with its current score
        target = store.targets(course, assignment).get(student)
        if target is None:
            continue
        _send(store, target, score, creds["consumer_key"], creds["shared_secret"], report, send)
    return report
