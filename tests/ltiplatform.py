"""An LMS as the tests play it: LTI 1.1 launches signed with oauthlib exactly as an
LMS signs them (OAuth 1.0a, HMAC-SHA1, parameters in the form body), and an
outcome service that checks the body-hash signature of Basic Outcomes requests
and records the scores it receives.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, SIGNATURE_TYPE_BODY, Client
from oauthlib.oauth1.rfc5849 import signature

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
IMSX = "{http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0}"


def launch_params(user_id: str, roles: str, context_id: str, **extra: str) -> dict[str, str]:
    params = {
        "lti_message_type": "basic-lti-launch-request",
        "lti_version": "LTI-1p0",
        "resource_link_id": f"link-{context_id}",
        "resource_link_title": "Week 1",
        "user_id": user_id,
        "roles": roles,
        "context_id": context_id,
        "context_label": context_id.upper(),
        "context_title": f"Course {context_id}",
        # what a person can set in their LMS profile: never their hub identity
        "lis_person_name_full": "Admin",
        "lis_person_contact_email_primary": "admin@example.edu",
        "tool_consumer_info_product_family_code": "canvas",
    }
    params.update(extra)
    return params


def signed_launch(
    url: str, key: str, secret: str, params: dict[str, str], timestamp: int | None = None
) -> str:
    """The form body an LMS posts to the tool's launch URL."""
    client = Client(
        key,
        client_secret=secret,
        signature_type=SIGNATURE_TYPE_BODY,
        timestamp=str(timestamp) if timestamp is not None else None,
        nonce=uuid.uuid4().hex,
    )
    _, _, body = client.sign(url, http_method="POST", body=params, headers=FORM)
    return body


def post_launch(session: requests.Session, url: str, body: str) -> requests.Response:
    return session.post(url, data=body, headers=FORM, allow_redirects=False, timeout=120)


def now() -> int:
    return int(time.time())


class OutcomeService:
    """The LMS's Basic Outcomes endpoint: verifies each request's OAuth signature and
    body hash with the shared secret, then records replaceResult scores by sourcedid."""

    def __init__(self, key: str, secret: str):
        self.key, self.secret = key, secret
        self.scores: dict[str, float] = {}
        self.refused: list[str] = []
        self.fail_next = 0  # answer this many requests with HTTP 500 (an LMS outage)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if service.fail_next:
                    service.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                problem = service.check(self, body)
                if problem:
                    service.refused.append(problem)
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(problem.encode())
                    return
                root = ET.fromstring(body)  # noqa: S314 - the tests' own requests
                sourcedid = root.find(f".//{IMSX}sourcedId").text
                score = float(root.find(f".//{IMSX}textString").text)
                service.scores[sourcedid] = score
                answer = (
                    b'<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeResponse '
                    b'xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0">'
                    b"<imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo>"
                    b"<imsx_codeMajor>success</imsx_codeMajor></imsx_statusInfo>"
                    b"</imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody>"
                    b"<replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>"
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/outcomes"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, handler: BaseHTTPRequestHandler, body: bytes) -> str | None:
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("OAuth "):
            return "no OAuth Authorization header"
        params = dict(
            signature.collect_parameters(
                headers={"Authorization": auth}, exclude_oauth_signature=False
            )
        )
        if params.get("oauth_consumer_key") != self.key:
            return "wrong consumer key"
        digest = base64.b64encode(hashlib.sha1(body).digest()).decode()  # noqa: S324 - the spec's
        if params.get("oauth_body_hash") != digest:
            return "body hash does not match the body"
        url = f"http://127.0.0.1:{self.server.server_port}{handler.path}"
        base = signature.signature_base_string(
            "POST",
            signature.base_string_uri(url),
            signature.normalize_parameters(
                signature.collect_parameters(headers={"Authorization": auth})
            ),
        )
        expected = signature.sign_hmac_sha1_with_client(
            base, Client(self.key, client_secret=self.secret)
        )
        if expected != params.get("oauth_signature"):
            return "bad signature"
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


__all__ = [
    "SIGNATURE_TYPE_AUTH_HEADER",
    "OutcomeService",
    "launch_params",
    "now",
    "post_launch",
    "signed_launch",
]
