"""An LMS as the tests play it.

LTI 1.1: launches signed with oauthlib exactly as an LMS signs them (OAuth
1.0a, HMAC-SHA1, parameters in the form body), and an outcome service that
checks the body-hash signature of Basic Outcomes requests and records the
scores it receives.

LTI 1.3: `Platform`, a small platform on loopback with its own RSA key and
JWKS, the OIDC flow (login initiation at the tool, then the platform's
authorization endpoint answers with a form carrying the signed id_token), a
token endpoint that checks the tool's JWT assertion against the tool's public
JWKS, and Assignment and Grade Services endpoints that check the bearer token.
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

    def __init__(self, key: str, secret: str, host: str = "127.0.0.1"):
        self.key, self.secret = key, secret
        self.scores: dict[str, float] = {}
        self.requests = 0  # every request it got, whatever it was
        self.refused: list[str] = []
        self.fail_next = 0  # answer this many requests with HTTP 500 (an LMS outage)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                service.requests += 1
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

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.url = f"http://{host}:{self.server.server_port}/outcomes"
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
        url = f"http://{self.host}:{self.server.server_port}{handler.path}"
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


# -- LTI 1.3

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


def new_rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_jwk(pem: str, kid: str) -> dict:
    import json

    import jwt
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(pem.encode(), password=None)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class Platform:
    """An LTI 1.3 platform (LMS) on loopback.

    `launch()` plays a person clicking a link in a course: login initiation at
    the tool, the authorization request the tool redirects to, the form post
    of the signed id_token back to the tool. Each launch may be forged (`forge`)
    to check that the tool refuses it.
    """

    def __init__(self, client_id: str, deployment_id: str = "deployment-1"):
        import json
        from urllib.parse import parse_qs, urlsplit

        import jwt

        self.client_id = client_id
        self.deployment_id = deployment_id
        self.key = new_rsa_pem()
        self.kid = "platform-key-1"
        self.other_key = new_rsa_pem()  # a key the platform never published
        self.tool_jwks_url = ""  # the tool's public JWKS, registered with the tool
        self.pending: dict[str, dict] = {}  # login_hint -> claims and forgeries
        self.issued: list[str] = []  # id_tokens and access tokens handed out
        self.tokens: dict[str, set[str]] = {}  # access token -> scopes
        self.lineitems: dict[str, list[dict]] = {}  # context -> line items
        self.scores: dict[tuple[str, str], dict] = {}  # (line item label, userId) -> score
        self.refused: list[str] = []
        self.fail_next = 0  # answer this many AGS requests with HTTP 500 (an outage)
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code: int, body=b"", ctype="application/json"):
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/jwks":
                    return self._answer(200, {"keys": [_public_jwk(platform.key, platform.kid)]})
                if parts.path == "/authorize":
                    code, body = platform.authorize(query)
                    return self._answer(code, body.encode(), "text/html")
                return platform.ags(self, "GET", parts.path, query, None)

            def do_POST(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if parts.path == "/token":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    code, body = platform.token(form)
                    return self._answer(code, body)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                return platform.ags(self, "POST", parts.path, query, raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = self.url
        self.jwks_url = f"{self.url}/jwks"
        self.authorize_url = f"{self.url}/authorize"
        self.token_url = f"{self.url}/token"
        self._jwt = jwt
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the launch

    def lineitems_url(self, context_id: str) -> str:
        return f"{self.url}/ags/{context_id}/lineitems"

    def claims(
        self,
        sub: str,
        roles: list[str],
        context_id: str,
        link_title: str = "Week 1",
        custom: dict | None = None,
        ags: bool = True,
    ) -> dict:
        claims = {
            "sub": sub,
            "name": "Admin",  # what a person can set in their profile: never who they are
            "email": "admin@example.edu",
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": "",
            LTI + "resource_link": {"id": f"link-{context_id}", "title": link_title},
            LTI + "roles": roles,
            LTI + "context": {
                "id": context_id,
                "label": context_id.upper(),
                "title": f"Course {context_id}",
            },
        }
        if custom:
            claims[LTI + "custom"] = custom
        if ags:
            claims[AGS_ENDPOINT] = {
                "scope": [SCOPE_LINEITEM, SCOPE_SCORE],
                "lineitems": self.lineitems_url(context_id),
            }
        return claims

    def launch(
        self,
        session: requests.Session,
        tool_url: str,
        claims: dict,
        forge: dict | None = None,
    ) -> requests.Response:
        """The whole OIDC launch of `claims` into the tool at `tool_url` (its base URL);
        returns the tool's answer to the id_token's form post (not followed)."""
        import re

        hint = uuid.uuid4().hex
        self.pending[hint] = {"claims": claims, "forge": forge or {}}
        login = f"{tool_url}hub/lti13/oauth_login"
        r = session.post(
            login,
            data={
                "iss": self.issuer,
                "login_hint": hint,
                "target_link_uri": f"{tool_url}hub/lti13/oauth_callback",
                "client_id": self.client_id,
                "lti_deployment_id": self.deployment_id,
            },
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 302, (r.status_code, r.text[:300])
        assert r.headers["Location"].startswith(self.authorize_url), r.headers["Location"]
        page = session.get(r.headers["Location"], allow_redirects=False, timeout=30)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        action = re.search(r'action="([^"]+)"', page.text).group(1)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        self.last_form = (action, fields)
        self.cookies_at_callback = {c.name: c.value for c in session.cookies}
        return session.post(action, data=fields, allow_redirects=False, timeout=120)

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The platform's OIDC authorization endpoint: checks the tool's request and answers
        with the self-submitting form of the signed id_token (response_mode form_post)."""
        import time as _time
        from html import escape

        wanted = {
            "response_type": "id_token",
            "scope": "openid",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": self.client_id,
        }
        for key, value in wanted.items():
            if query.get(key) != value:
                return 400, f"bad {key}"
        pending = self.pending.pop(query.get("login_hint", ""), None)
        if pending is None:
            return 400, "unknown login_hint"
        forge = pending["forge"]
        now = int(_time.time())
        claims = {
            **pending["claims"],
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": query["nonce"],
        }
        claims[LTI + "target_link_uri"] = query["redirect_uri"]
        claims.update(forge.get("claims", {}))
        headers = {"kid": self.kid}
        if forge.get("alg") == "none":
            token = self._jwt.encode(claims, None, algorithm="none", headers=headers)
        else:
            key = self.other_key if forge.get("other_key") else self.key
            token = self._jwt.encode(claims, key, algorithm="RS256", headers=headers)
        self.issued.append(token)
        return 200, (
            f'<form method="post" action="{escape(query["redirect_uri"])}">'
            f'<input type="hidden" name="id_token" value="{escape(token)}">'
            f'<input type="hidden" name="state" value="{escape(query["state"])}">'
            "</form><script>document.forms[0].submit()</script>"
        )

    # -- grades: tokens and AGS

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        """The token endpoint: a client-credentials grant authenticated by the tool's JWT
        assertion, checked against the tool's published JWKS."""
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return 400, {"error": "invalid_client"}
        try:
            key = self._jwt.PyJWKClient(self.tool_jwks_url).get_signing_key_from_jwt(
                form.get("client_assertion", "")
            )
            claims = self._jwt.decode(
                form["client_assertion"],
                key.key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.client_id,
                options={"require": ["exp", "iat", "jti", "sub"]},
            )
        except Exception as err:  # noqa: BLE001 - any failure is a refused client
            self.refused.append(f"assertion: {err}")
            return 401, {"error": "invalid_client"}
        if claims["sub"] != self.client_id:
            self.refused.append("assertion: sub is not the client id")
            return 401, {"error": "invalid_client"}
        scopes = set(form.get("scope", "").split()) & {SCOPE_LINEITEM, SCOPE_SCORE}
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self.tokens[token] = scopes
        self.issued.append(token)
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(sorted(scopes)),
        }

    def ags(self, handler, method: str, path: str, query: dict, raw: bytes | None):
        import json

        if self.fail_next:
            self.fail_next -= 1
            return handler._answer(500, {"error": "outage"})
        auth = handler.headers.get("Authorization", "")
        scopes = (
            self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        )
        if scopes is None:
            self.refused.append(f"{method} {path}: no valid bearer token")
            return handler._answer(401, {"error": "invalid_token"})
        parts = path.strip("/").split("/")  # ags/{context}/lineitems[/{n}[/scores]]
        if len(parts) < 3 or parts[0] != "ags" or parts[2] != "lineitems":
            return handler._answer(404, {"error": "not found"})
        context = parts[1]
        items = self.lineitems.setdefault(context, [])
        if len(parts) == 3 and method == "GET":
            if SCOPE_LINEITEM not in scopes:
                return handler._answer(403, {"error": "scope"})
            found = [i for i in items if query.get("resource_id") in (None, i["resourceId"])]
            return handler._answer(200, found, "application/vnd.ims.lis.v2.lineitemcontainer+json")
        if len(parts) == 3 and method == "POST":
            if SCOPE_LINEITEM not in scopes:
                return handler._answer(403, {"error": "scope"})
            item = json.loads(raw)
            item["id"] = f"{self.lineitems_url(context)}/{len(items) + 1}"
            items.append(item)
            return handler._answer(201, item, "application/vnd.ims.lis.v2.lineitem+json")
        item = next((i for i in items if i["id"].endswith(f"/lineitems/{parts[3]}")), None)
        if item is None:
            return handler._answer(404, {"error": "no such line item"})
        if len(parts) == 4 and method == "GET":
            return handler._answer(200, item, "application/vnd.ims.lis.v2.lineitem+json")
        if len(parts) == 5 and parts[4] == "scores" and method == "POST":
            if SCOPE_SCORE not in scopes:
                return handler._answer(403, {"error": "scope"})
            if handler.headers.get("Content-Type") != "application/vnd.ims.lis.v1.score+json":
                return handler._answer(415, {"error": "media type"})
            score = json.loads(raw)
            self.scores[(item["label"], score["userId"])] = score
            return handler._answer(204, b"")
        return handler._answer(405, {"error": "method"})


__all__ = [
    "Platform",
    "SIGNATURE_TYPE_AUTH_HEADER",
    "OutcomeService",
    "launch_params",
    "now",
    "post_launch",
    "signed_launch",
]
