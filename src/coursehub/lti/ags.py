"""LTI 1.3 Assignment and Grade Services: a line item per assignment, a score per student.

coursehub asks the LMS's token endpoint for an access token with a JWT
assertion signed by its own key (client-credentials grant, IMS Security
Framework 4.1), finds the assignment's line item in the context's line items
(the launch's own line item if the LMS made one for the link, else one whose
resourceId is the assignment, else a new one), and posts each student's score
to it. Tokens are never logged.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from .hosts import ServicePolicy, refusal_in
from .keys import ASSERTION_TYPE, client_assertion
from .outcomes import OutcomeError, Target

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"


def scores_url(lineitem: str) -> str:
    """A line item's scores endpoint: '/scores' after its path, its query kept (AGS 3.4)."""
    parts = urlsplit(lineitem)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def score_body(user_id: str, fraction: float, maximum: float, now: float | None = None) -> dict:
    """An AGS score: `fraction` of `maximum` points, fully graded."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a score fraction must be between 0 and 1, not {fraction}")
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return {
        "userId": user_id,
        "scoreGiven": round(fraction * maximum, 4),
        "scoreMaximum": maximum,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": stamp.isoformat(timespec="milliseconds"),
    }


def lineitem_body(assignment: str, maximum: float) -> dict:
    return {
        "label": assignment,
        "scoreMaximum": maximum,
        "resourceId": assignment,
        "tag": "coursehub",
    }


class AgsClient:
    """Sends scores for one LMS registration (client id, token endpoint, coursehub's key)."""

    def __init__(
        self,
        client_id: str,
        token_url: str,
        private_pem: str,
        timeout: float = 20,
        *,
        policy: ServicePolicy,
    ):
        self.client_id = client_id
        self.token_url = token_url
        self.private_pem = private_pem
        self.timeout = timeout
        self.policy = policy  # the hosts of the registration and auth.service_hosts
        self._session = policy.session()
        self._token: tuple[str, float] | None = None  # (access token, expires at)
        self._lineitems: dict[tuple[str, str], dict[str, Any]] = {}

    def _request(self, method: str, url: str, **kw) -> requests.Response:
        # every URL: the launch's line items URLs and the line item ids the LMS answers
        self.policy.check(url)
        try:
            return self._session.request(
                method, url, timeout=self.timeout, allow_redirects=False, **kw
            )
        except requests.RequestException as err:
            if refused := refusal_in(err):
                raise refused from None
            raise OutcomeError(f"the LMS did not answer: {type(err).__name__}") from None

    def access_token(self) -> str:
        if self._token and self._token[1] > time.time() + 30:
            return self._token[0]
        r = self._request(
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(
                    self.private_pem, self.client_id, self.token_url
                ),
                "scope": f"{SCOPE_LINEITEM} {SCOPE_SCORE}",
            },
        )
        if r.status_code != 200:
            raise OutcomeError(f"the LMS's token endpoint answered HTTP {r.status_code}")
        try:
            answer = r.json()
            token = answer["access_token"]
        except (ValueError, KeyError):
            raise OutcomeError("the LMS's token endpoint gave no access_token") from None
        self._token = (token, time.time() + float(answer.get("expires_in", 3600)))
        return token

    def _auth(self, accept: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}", "Accept": accept}

    def lineitem(self, target: Target, maximum: float | None) -> dict[str, Any]:
        """The assignment's line item ({'id': URL, 'scoreMaximum': ...}), found or created."""
        outcome = target.outcome
        if outcome.lineitem:  # the LMS made one for the link
            return self._get_lineitem(outcome.lineitem)
        if not outcome.service_url:
            raise OutcomeError("the launch gave no line items URL (AGS) for this course")
        key = (outcome.service_url, target.assignment)
        if key in self._lineitems:
            return self._lineitems[key]
        url = with_query(outcome.service_url, resource_id=target.assignment)
        r = self._request("GET", url, headers=self._auth(CONTAINER_TYPE))
        if r.status_code != 200:
            raise OutcomeError(f"the LMS answered HTTP {r.status_code} listing line items")
        found = [
            item
            for item in r.json()
            if isinstance(item, dict) and item.get("resourceId") == target.assignment
        ]
        if found:
            item = found[0]
        else:
            r = self._request(
                "POST",
                outcome.service_url,
                json=lineitem_body(target.assignment, maximum or 1.0),
                headers={**self._auth(LINEITEM_TYPE), "Content-Type": LINEITEM_TYPE},
            )
            if r.status_code not in (200, 201):
                raise OutcomeError(f"the LMS answered HTTP {r.status_code} creating a line item")
            item = r.json()
        if not item.get("id"):
            raise OutcomeError("the LMS's line item has no id")
        self._lineitems[key] = item
        return item

    def _get_lineitem(self, url: str) -> dict[str, Any]:
        r = self._request("GET", url, headers=self._auth(LINEITEM_TYPE))
        if r.status_code != 200:
            raise OutcomeError(f"the LMS answered HTTP {r.status_code} reading the line item")
        item = r.json()
        item.setdefault("id", url)
        return item

    def send(self, target: Target, fraction: float, maximum: float | None = None) -> None:
        """Post one student's score; raises OutcomeError saying why it did not arrive."""
        item = self.lineitem(target, maximum)
        points = float(item.get("scoreMaximum") or maximum or 1.0)
        r = self._request(
            "POST",
            scores_url(item["id"]),
            json=score_body(target.outcome.sourcedid, fraction, points),
            headers={**self._auth(SCORE_TYPE), "Content-Type": SCORE_TYPE},
        )
        if r.status_code not in (200, 201, 202, 204):
            raise OutcomeError(f"the LMS answered HTTP {r.status_code} to the score")
