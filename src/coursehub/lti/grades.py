"""`coursehub grades push`: a course's scores from its gradebook back to the LMS.

Scores are read from the course's gradebook as its grader account (the
gradebook is the grader's), sent to where each student's launch said (LTI 1.1
Basic Outcomes, LTI 1.3 Assignment and Grade Services), and anything that does
not arrive is kept in the outbox and sent again on the next push,
`coursehub grades retry` or the supervisor's automatic push: never lost
silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..hosting import Host
from ..paths import gradebook_url
from ..plan import Plan
from ..site import LTI11, LTI13
from .credentials import load_lti_credentials
from .outcomes import OutcomeError, OutcomeStore, Target, send_lti11_score

ATTEMPTS = 3  # within one push, before a score waits in the outbox

# A submission's score is final for the LMS once autograde has scored every autogradable
# (code) grade cell: autograde writes the submission first and its scores after running the
# notebook, which can take long, and unscored cells would read as 0. Cells graded by hand
# (written answers) may still wait: the LMS gets the autograded part, then the update.
_AUTOGRADED = """
def autograded(submission):
    return all(g.auto_score is not None
               for nb in submission.notebooks for g in nb.grades
               if g.cell.cell_type == "code")
"""

_READ_SCORES = (
    _AUTOGRADED
    + """
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
        if autograded(s):
            out[s.student_id] = [s.score, s.max_score]
print(json.dumps(out))
"""
)

# every assignment's scores at once, for the automatic push (one grader process a course)
_READ_ALL_SCORES = (
    _AUTOGRADED
    + """
import json, sys
from nbgrader.api import Gradebook
db_url, course_id = sys.argv[1], sys.argv[2]
out = {}
with Gradebook(db_url, course_id) as gb:
    for a in gb.assignments:
        out[a.name] = {s.student_id: [s.score, s.max_score]
                       for s in gb.assignment_submissions(a.name) if autograded(s)}
print(json.dumps(out))
"""
)


class GradesError(RuntimeError):
    pass


@dataclass
class PushReport:
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # student, assignment, score
    failed: list[tuple[str, str, float, str]] = field(default_factory=list)
    no_launch: list[str] = field(default_factory=list)  # graded, but never launched the link


def outcomes_store(plan: Plan) -> OutcomeStore:
    return OutcomeStore(plan.paths.lti_outcomes)


def _read(host: Host, course_id: str, script: str, *args: str):
    """What a gradebook script printed last (JSON), run as the course's grader."""
    root = host.plan().courses[course_id].course_root
    try:
        out = host.read_gradebook(course_id, script, [gradebook_url(root), course_id, *args])
    except RuntimeError as err:
        raise GradesError(str(err)) from None
    return json.loads(out.strip().splitlines()[-1])


def gradebook_scores(host: Host, course_id: str, assignment: str) -> dict[str, tuple[float, float]]:
    """{student: (score, max score)} of an assignment, read as the course's grader."""
    found = _read(host, course_id, _READ_SCORES, assignment)
    if found is None:
        raise GradesError(f"{course_id} has no assignment {assignment!r} in its gradebook")
    return {s: (float(v[0]), float(v[1])) for s, v in found.items()}


def fraction(score: float, max_score: float) -> float:
    """LTI 1.1 scores are fractions of the maximum, between 0 and 1."""
    if max_score <= 0:
        return 0.0
    return min(1.0, max(0.0, score / max_score))


Sender = Callable[[Target, float, "float | None"], None]  # (target, fraction, max points)


def sender_for(plan) -> Sender:
    """How this installation's scores reach its LMS (by its auth type)."""
    from .hosts import policy_for

    kind = plan.auth.type
    policy = policy_for(plan.auth)  # where the launches' URLs may point
    if kind == LTI11:
        creds = load_lti_credentials(plan.paths.secrets)
        key, secret = creds["consumer_key"], creds["shared_secret"]
        return lambda target, value, _maximum: send_lti11_score(
            target, value, key, secret, policy=policy
        )
    if kind == LTI13:
        from .ags import AgsClient
        from .keys import load_tool_key

        token_url = plan.auth.token_url
        if not token_url:
            raise GradesError(
                "auth.token_url: needed to send grades with LTI 1.3 (Assignment and Grade "
                "Services); copy the LMS's access token URL into the site file"
            )
        client = AgsClient(
            plan.auth.client_id, token_url, load_tool_key(plan.paths.secrets), policy=policy
        )
        return client.send
    raise GradesError(
        f"grades go back to an LMS only with auth type 'lti11' or 'lti13' (this site uses {kind!r})"
    )


def _send(
    store: OutcomeStore,
    target: Target,
    score: float,
    report: PushReport,
    send: Sender,
    maximum: float | None = None,
    attempts: int = ATTEMPTS,
) -> bool:
    from .hosts import HostRefused

    last = ""
    for _ in range(attempts):
        try:
            send(target, score, maximum)
        except HostRefused as err:  # trying again now changes nothing
            last = str(err)
            break
        except OutcomeError as err:
            last = str(err)
            continue
        store.sent(target.course_id, target.student, target.assignment, score)
        report.sent.append((target.student, target.assignment, score))
        return True
    store.queue(target.course_id, target.student, target.assignment, score, last)
    report.failed.append((target.student, target.assignment, score, last))
    return False


def _check_course(plan, course_id: str) -> None:
    if course_id not in plan.courses:
        known = ", ".join(plan.courses) or "none"
        raise GradesError(f"no course {course_id!r} in this installation (courses: {known})")


def push(host: Host, course_id: str, assignment: str, send: Sender | None = None) -> PushReport:
    """Send every graded submission of `assignment` whose student launched its LMS link,
    after retrying what waits in the course's outbox."""
    plan = host.plan()
    _check_course(plan, course_id)
    send = send or sender_for(plan)
    store = outcomes_store(plan)
    report = PushReport()
    retry(host, course_id, send, report, skip=assignment)
    targets = store.targets(course_id, assignment)
    for student, (score, max_score) in sorted(
        gradebook_scores(host, course_id, assignment).items()
    ):
        target = targets.get(student)
        if target is None:
            report.no_launch.append(student)
            continue
        _send(store, target, fraction(score, max_score), report, send, max_score)
    return report


def retry(
    host: Host,
    course_id: str | None = None,
    send: Sender | None = None,
    report: PushReport | None = None,
    skip: str | None = None,
) -> PushReport:
    """Send again what waits in the outbox (of one course, or of all)."""
    report = report or PushReport()
    plan = host.plan()
    store = outcomes_store(plan)
    waiting = store.pending(course_id)
    if not waiting:
        return report
    send = send or sender_for(plan)
    for course, student, assignment, score, _attempts, _error in waiting:
        if assignment == skip:
            continue  # pushed now with its current score
        target = store.targets(course, assignment).get(student)
        if target is None:
            continue
        _send(store, target, score, report, send)
    return report


# -- the supervisor's automatic push

BACKOFF_FIRST = 10.0  # seconds before the first retry of a failed score
BACKOFF_MAX = 3600.0


def backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed tries: doubling, at most an hour."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1))


def changed_scores(
    gradebook: dict[str, dict[str, tuple[float, float]]],
    linked: list[str],
    targets: dict[str, dict[str, Target]],
    delivered: dict[tuple[str, str], float],
    waiting: set[tuple[str, str]],
) -> list[tuple[Target, float, float]]:
    """(target, fraction, max points) of every score the LMS has not got yet: graded,
    launched from the LMS, not delivered with this value, not already in the outbox."""
    out = []
    for assignment in linked:
        scores = gradebook.get(assignment, {})
        for student, target in sorted(targets.get(assignment, {}).items()):
            if student not in scores or (student, assignment) in waiting:
                continue
            score, max_score = scores[student]
            value = fraction(score, max_score)
            last = delivered.get((student, assignment))
            if last is None or abs(last - value) > 1e-9:
                out.append((target, value, max_score))
    return out


def all_gradebook_scores(host: Host, course_id: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{assignment: {student: (score, max score)}} of a course, read as its grader."""
    if not os.path.exists(host.plan().courses[course_id].gradebook):
        return {}
    found = _read(host, course_id, _READ_ALL_SCORES)
    return {
        a: {s: (float(v[0]), float(v[1])) for s, v in scores.items()} for a, scores in found.items()
    }


def _stamp(plan: Plan, course_id: str) -> tuple[int, ...] | None:
    """When the course's gradebook and the launches' targets last changed: while neither
    does, reading the gradebook again (as the grader) is skipped."""
    paths = (Path(plan.courses[course_id].gradebook), Path(plan.paths.lti_outcomes))
    try:
        return tuple(p.stat().st_mtime_ns for p in paths)
    except OSError:
        return None


# An autograde writes the gradebook several times per submission: a gradebook changed this
# recently is read in a later round (and only autograded submissions are read at all).
GRADEBOOK_SETTLE = 5.0


def auto_push(
    host: Host, now: float | None = None, send: Sender | None = None, seen: dict | None = None
) -> PushReport:
    """One round of the automatic push: new or changed autograded scores of every
    assignment that students opened from the LMS, then the outbox's scores whose
    back-off is over. What fails stays in the outbox (`coursehub grades pending`)."""
    import time

    now = time.time() if now is None else now
    report = PushReport()
    plan = host.plan()
    if not plan.auth.is_lti:
        return report
    store = outcomes_store(plan)
    linked = store.linked()
    outbox = store.waiting()
    if not linked and not outbox:
        return report
    send = send or sender_for(plan)
    waiting = {(c, s, a) for c, s, a, *_ in outbox}
    for course_id, assignments in linked.items():
        if course_id not in plan.courses:
            continue
        stamp = _stamp(plan, course_id)
        if seen is not None and stamp is not None and seen.get(course_id) == stamp:
            continue
        if stamp is not None and time.time() - stamp[0] / 1e9 < GRADEBOOK_SETTLE:
            continue  # being written: next round
        gradebook = all_gradebook_scores(host, course_id)
        targets = {a: store.targets(course_id, a) for a in assignments}
        for target, value, maximum in changed_scores(
            gradebook,
            assignments,
            targets,
            store.delivered(course_id),
            {(s, a) for c, s, a in waiting if c == course_id},
        ):
            _send(store, target, value, report, send, maximum, attempts=1)
        if seen is not None and stamp is not None:
            seen[course_id] = stamp  # as before the read: a change meanwhile is read next round
    for course, student, assignment, score, attempts, last_try in outbox:
        if now - last_try < backoff(attempts):
            continue
        target = store.targets(course, assignment).get(student)
        if target is not None:
            _send(store, target, score, report, send, attempts=1)
    return report


class AutoPush:
    """The supervisor's periodic grade push, in a thread of its own so that a slow LMS
    never holds up the supervision of the hub and the grader servers."""

    def __init__(self, host: Host, every: float = 15.0, log=None):
        import logging
        import threading

        self.host = host
        self.every = every
        self.log = log or logging.getLogger("coursehub.grades")
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self._seen: dict = {}  # course -> (gradebook, targets) modification times last read

    def tick(self, now: float | None = None) -> None:
        import threading
        import time

        now = time.monotonic() if now is None else now
        if now < self._next or (self._thread is not None and self._thread.is_alive()):
            return
        self._next = now + self.every
        self._thread = threading.Thread(target=self._round, name="grades-push", daemon=True)
        self._thread.start()

    def _round(self) -> None:
        try:
            report = auto_push(self.host, seen=self._seen)
        except Exception as err:  # noqa: BLE001 - reported, tried again next round
            self.log.warning("automatic grade push: %s", err)
            return
        for student, assignment, score in report.sent:
            self.log.info("grades: sent %s %s: %.4f", assignment, student, score)
        for student, assignment, score, error in report.failed:
            self.log.warning(
                "grades: %s %s: %.4f did not arrive (%s); kept in the outbox",
                assignment,
                student,
                score,
                error,
            )
