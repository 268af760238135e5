"""Where each student's grades go back, learnt from their launches; and the outbox.

A launch of a student from an LMS link that names an assignment carries where
that student's score for it goes (LTI 1.1: the outcome service URL and the
result sourcedid). Both stores are SQLite in the installation's state folder,
mode 0600: sourcedids are capabilities to write a grade.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from ..secrets import private_file
from .errors import OutcomeError
from .launch import Outcome

if TYPE_CHECKING:
    from .hosts import ServicePolicy


@dataclass(frozen=True)
class Target:
    course_id: str
    student: str
    assignment: str
    consumer: str
    outcome: Outcome


class OutcomeStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        private_file(self.path)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS outcome ("
                " course TEXT NOT NULL, student TEXT NOT NULL, assignment TEXT NOT NULL,"
                " consumer TEXT NOT NULL, service_url TEXT NOT NULL, sourcedid TEXT NOT NULL,"
                " updated REAL NOT NULL, PRIMARY KEY (course, student, assignment))"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(outcome)")}
            if "lineitem" not in columns:  # LTI 1.3: the link's own line item
                db.execute("ALTER TABLE outcome ADD COLUMN lineitem TEXT NOT NULL DEFAULT ''")
            db.execute(
                "CREATE TABLE IF NOT EXISTS delivered ("
                " course TEXT NOT NULL, student TEXT NOT NULL, assignment TEXT NOT NULL,"
                " score REAL NOT NULL, at REAL NOT NULL, PRIMARY KEY (course, student, assignment))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox ("
                " course TEXT NOT NULL, student TEXT NOT NULL, assignment TEXT NOT NULL,"
                " score REAL NOT NULL, attempts INTEGER NOT NULL, last_error TEXT NOT NULL,"
                " updated REAL NOT NULL, PRIMARY KEY (course, student, assignment))"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def remember(
        self, course_id: str, student: str, assignment: str, consumer: str, outcome: Outcome
    ) -> None:
        """The latest launch wins: the LMS may issue a new sourcedid."""
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO outcome (course, student, assignment, consumer,"
                " service_url, sourcedid, updated, lineitem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    course_id,
                    student,
                    assignment,
                    consumer,
                    outcome.service_url,
                    outcome.sourcedid,
                    time.time(),
                    outcome.lineitem,
                ),
            )

    def targets(self, course_id: str, assignment: str) -> dict[str, Target]:
        with self._db() as db:
            rows = db.execute(
                "SELECT student, consumer, service_url, sourcedid, lineitem FROM outcome"
                " WHERE course = ? AND assignment = ?",
                (course_id, assignment),
            ).fetchall()
        return {
            s: Target(course_id, s, assignment, c, Outcome(u, d, li)) for s, c, u, d, li in rows
        }

    def linked(self) -> dict[str, list[str]]:
        """{course: [assignment, ...]} of every assignment some student's launch links."""
        with self._db() as db:
            rows = db.execute(
                "SELECT DISTINCT course, assignment FROM outcome ORDER BY course, assignment"
            ).fetchall()
        found: dict[str, list[str]] = {}
        for course, assignment in rows:
            found.setdefault(course, []).append(assignment)
        return found

    def delivered(self, course_id: str) -> dict[tuple[str, str], float]:
        """{(student, assignment): score} the LMS last accepted, for one course."""
        with self._db() as db:
            rows = db.execute(
                "SELECT student, assignment, score FROM delivered WHERE course = ?", (course_id,)
            ).fetchall()
        return {(s, a): v for s, a, v in rows}

    # -- the outbox: scores that could not be sent yet

    def queue(self, course_id: str, student: str, assignment: str, score: float, error: str):
        with self._db() as db:
            row = db.execute(
                "SELECT attempts FROM outbox WHERE course = ? AND student = ? AND assignment = ?",
                (course_id, student, assignment),
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?)",
                (course_id, student, assignment, score, (row[0] if row else 0) + 1, error,
                 time.time()),
            )  # fmt: skip

    def sent(
        self, course_id: str, student: str, assignment: str, score: float | None = None
    ) -> None:
        with self._db() as db:
            if score is not None:
                db.execute(
                    "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?, ?)",
                    (course_id, student, assignment, score, time.time()),
                )
            db.execute(
                "DELETE FROM outbox WHERE course = ? AND student = ? AND assignment = ?",
                (course_id, student, assignment),
            )

    def waiting(self) -> list[tuple[str, str, str, float, int, float]]:
        """(course, student, assignment, score, attempts, last try) of the outbox."""
        with self._db() as db:
            return db.execute(
                "SELECT course, student, assignment, score, attempts, updated FROM outbox"
            ).fetchall()

    def pending(self, course_id: str | None = None) -> list[tuple[str, str, str, float, int, str]]:
        """(course, student, assignment, score, attempts, last error) still to send."""
        sql = "SELECT course, student, assignment, score, attempts, last_error FROM outbox"
        with self._db() as db:
            if course_id is None:
                return db.execute(sql + " ORDER BY course, assignment, student").fetchall()
            return db.execute(
                sql + " WHERE course = ? ORDER BY assignment, student", (course_id,)
            ).fetchall()


# -- LTI 1.1 Basic Outcomes: replaceResult

_POX = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"


def replace_result_xml(sourcedid: str, score: float, message_id: str) -> str:
    """The replaceResult request of LTI 1.1 Basic Outcomes (score between 0 and 1)."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"an LTI 1.1 score must be between 0 and 1, not {score}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<imsx_POXEnvelopeRequest xmlns="{_POX}">'
        "<imsx_POXHeader><imsx_POXRequestHeaderInfo>"
        "<imsx_version>V1.0</imsx_version>"
        f"<imsx_messageIdentifier>{escape(message_id)}</imsx_messageIdentifier>"
        "</imsx_POXRequestHeaderInfo></imsx_POXHeader>"
        "<imsx_POXBody><replaceResultRequest><resultRecord>"
        f"<sourcedGUID><sourcedId>{escape(sourcedid)}</sourcedId></sourcedGUID>"
        "<result><resultScore><language>en</language>"
        f"<textString>{score:.4f}</textString>"
        "</resultScore></result></resultRecord></replaceResultRequest></imsx_POXBody>"
        "</imsx_POXEnvelopeRequest>"
    )


def signed_outcome_request(
    url: str, key: str, secret: str, body: str
) -> tuple[str, dict[str, str], str]:
    """(url, headers, body) of a Basic Outcomes POST: OAuth 1.0a HMAC-SHA1 in the
    Authorization header, with oauth_body_hash of the XML body (the spec's body signing)."""
    from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, Client

    client = Client(key, client_secret=secret, signature_type=SIGNATURE_TYPE_AUTH_HEADER)
    return client.sign(
        url, http_method="POST", body=body, headers={"Content-Type": "application/xml"}
    )


def outcome_succeeded(answer: str) -> bool:
    """Whether the LMS's replaceResult answer says success (imsx_codeMajor)."""
    import xml.etree.ElementTree as ET  # noqa: N817

    try:
        root = ET.fromstring(answer)  # noqa: S314 - the LMS we were configured to trust
    except ET.ParseError:
        return False
    code = root.find(f".//{{{_POX}}}imsx_codeMajor")
    return code is not None and (code.text or "").strip() == "success"


def send_lti11_score(
    target: Target,
    score: float,
    key: str,
    secret: str,
    timeout: float = 20,
    *,
    policy: ServicePolicy,
) -> None:
    """Send one score; raises OutcomeError saying why it did not arrive (HostRefused:
    `policy` does not allow the launch's outcome URL, and nothing was sent)."""
    import uuid

    import requests

    from .hosts import refusal_in

    # checked now, not only at the launch: a name may resolve elsewhere today
    policy.check(target.outcome.service_url)
    body = replace_result_xml(target.outcome.sourcedid, score, uuid.uuid4().hex)
    url, headers, body = signed_outcome_request(target.outcome.service_url, key, secret, body)
    try:
        r = policy.session().post(
            url, data=body.encode(), headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as err:
        if refused := refusal_in(err):
            raise refused from None
        raise OutcomeError(f"the LMS did not answer: {type(err).__name__}") from None
    if r.status_code != 200:
        raise OutcomeError(f"the LMS answered HTTP {r.status_code}")
    if not outcome_succeeded(r.text):
        raise OutcomeError("the LMS did not accept the score (imsx_codeMajor is not success)")
