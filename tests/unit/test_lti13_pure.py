"""LTI 1.3 without a hub: coursehub's key and JWKS, the launch's claims, AGS against the
tests' platform (its token endpoint checks coursehub's assertion), the automatic push's
choices and back-off, and the hub config of the LTI 1.3 authenticator."""

from __future__ import annotations

import json
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from sites import two_course_data

from coursehub.hub.config import hub_config
from coursehub.hub.lti import CourseLTI13Authenticator
from coursehub.lti.ags import AgsClient, scores_url, with_query
from coursehub.lti.grades import backoff, changed_scores, fraction
from coursehub.lti.hosts import policy_for
from coursehub.lti.keys import (
    client_assertion,
    ensure_tool_key,
    load_tool_key,
    public_jwks,
)
from coursehub.lti.launch import Outcome, lti13_launch
from coursehub.lti.outcomes import OutcomeError, OutcomeStore, Target
from coursehub.plan import PlanAuth, derive
from coursehub.site import parse_site

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ltiplatform import MEMBERSHIP, Platform  # noqa: E402

CLIENT = "client-123"


class JWKSServer:
    """Serves coursehub's public JWKS, as the hub's /hub/lti13/jwks does."""

    def __init__(self, jwks: dict):
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tool_pem(tmp_path_factory):
    secrets = tmp_path_factory.mktemp("secrets")
    ensure_tool_key(secrets)
    return load_tool_key(secrets)


@pytest.fixture
def platform(tool_pem):
    p = Platform(CLIENT)
    jwks = JWKSServer(public_jwks(tool_pem))
    p.tool_jwks_url = jwks.url
    yield p
    jwks.close()
    p.close()


def test_tool_key_is_made_once_and_private(tmp_path):
    path = ensure_tool_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert ensure_tool_key(tmp_path).read_text() == first  # the LMS has its public half
    path.chmod(0o644)
    with pytest.raises(RuntimeError, match="chmod 600"):
        load_tool_key(tmp_path)


def test_jwks_is_public_only_with_a_stable_kid(tool_pem):
    [key] = public_jwks(tool_pem)["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}
    assert public_jwks(tool_pem)["keys"][0]["kid"] == key["kid"]


def test_client_assertion_verifies_with_the_jwks(tool_pem):
    token = client_assertion(tool_pem, CLIENT, "https://lms.example.edu/token", now=1000)
    [key] = public_jwks(tool_pem)["keys"]
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="https://lms.example.edu/token",
        options={"verify_exp": False},
    )
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]


def test_launch_from_claims(platform):
    claims = {
        **platform.claims(
            "sub-7", [MEMBERSHIP + "Learner"], "ctx-9", custom={"assignment": "PS 1"}
        ),
        "iss": platform.issuer,
    }
    launch = lti13_launch(claims)
    assert launch.name.startswith("sub-7-") and launch.role == "student"
    assert (launch.context_id, launch.context_label) == ("ctx-9", "CTX-9")
    assert launch.assignment == "ps-1" and launch.issuer == platform.issuer
    assert launch.outcome == Outcome(platform.lineitems_url("ctx-9"), "sub-7", "")
    # a role in the custom claim only gives nothing; the link's title names the assignment
    claims = {
        **platform.claims("sub-8", [], "ctx-9", custom={"roles": "Instructor"}),
        "iss": platform.issuer,
    }
    assert lti13_launch(claims).role is None
    assert lti13_launch(claims).assignment == "week-1"
    # no AGS claim: nowhere to send grades
    del claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]
    assert lti13_launch(claims).outcome is None


def registration(platform):
    """The grade policy of a site registered with the tests' platform (its own hosts)."""
    return policy_for(
        PlanAuth(
            "lti13",
            issuer=platform.issuer,
            jwks_url=platform.jwks_url,
            authorize_url=platform.authorize_url,
            token_url=platform.token_url,
        )
    )


def target(platform, student="ana", assignment="ps1", lineitem="") -> Target:
    return Target(
        "intro",
        student,
        assignment,
        platform.issuer,
        Outcome(platform.lineitems_url("ctx-1"), f"sub-{student}", lineitem),
    )


def test_ags_creates_one_line_item_and_posts_scores(platform, tool_pem):
    client = AgsClient(CLIENT, platform.token_url, tool_pem, policy=registration(platform))
    client.send(target(platform), 2 / 3, 3.0)
    client.send(target(platform, "bo"), 1.0, 3.0)
    # a new client (another push) finds the line item instead of making a second one
    AgsClient(CLIENT, platform.token_url, tool_pem, policy=registration(platform)).send(
        target(platform, "cy"), 0.0, 3.0
    )
    [item] = platform.lineitems["ctx-1"]
    assert item["resourceId"] == "ps1" and item["scoreMaximum"] == 3.0
    assert platform.scores[("ps1", "sub-ana")]["scoreGiven"] == 2.0
    assert platform.scores[("ps1", "sub-bo")]["scoreGiven"] == 3.0
    assert platform.scores[("ps1", "sub-cy")]["scoreGiven"] == 0.0
    assert platform.refused == []
    assert len(platform.tokens) == 2  # one token per client, reused within it


def test_ags_uses_the_links_own_line_item(platform, tool_pem):
    client = AgsClient(CLIENT, platform.token_url, tool_pem, policy=registration(platform))
    client.send(target(platform, assignment="ps2"), 0.5, 10.0)
    url = platform.lineitems["ctx-1"][0]["id"]
    client.send(target(platform, "bo", assignment="other-name", lineitem=url), 1.0, None)
    assert platform.scores[("ps2", "sub-bo")]["scoreMaximum"] == 10.0
    assert len(platform.lineitems["ctx-1"]) == 1


def test_ags_with_a_key_the_platform_does_not_know(platform):
    from ltiplatform import new_rsa_pem

    client = AgsClient(CLIENT, platform.token_url, new_rsa_pem(), policy=registration(platform))
    with pytest.raises(OutcomeError, match="token endpoint answered HTTP 401"):
        client.send(target(platform), 1.0, 1.0)
    assert platform.scores == {} and platform.refused


def test_ags_outage_is_an_outcome_error(platform, tool_pem):
    platform.fail_next = 5
    with pytest.raises(OutcomeError, match="HTTP 500"):
        AgsClient(CLIENT, platform.token_url, tool_pem, policy=registration(platform)).send(
            target(platform), 1.0, 1.0
        )


def test_urls():
    assert scores_url("https://lms/li/7?x=1") == "https://lms/li/7/scores?x=1"
    assert with_query("https://lms/li?type=a", resource_id="p s") == (
        "https://lms/li?type=a&resource_id=p+s"
    )


def test_changed_scores_only_new_or_different(platform):
    t_ana, t_bo, t_cy = (target(platform, s) for s in ("ana", "bo", "cy"))
    gradebook = {"ps1": {"ana": (2.0, 3.0), "bo": (3.0, 3.0), "cy": (1.0, 3.0), "dan": (1, 3)}}
    targets = {"ps1": {"ana": t_ana, "bo": t_bo, "cy": t_cy}}
    delivered = {("ana", "ps1"): fraction(2.0, 3.0), ("bo", "ps1"): 0.5}
    out = changed_scores(gradebook, ["ps1"], targets, delivered, waiting={("cy", "ps1")})
    # ana: delivered already; bo: graded again; cy: in the outbox; dan: never launched
    assert out == [(t_bo, 1.0, 3.0)]


def test_backoff_doubles_up_to_an_hour():
    assert [backoff(n) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
    assert backoff(30) == 3600.0


def test_store_keeps_the_line_item_and_what_was_delivered(tmp_path):
    store = OutcomeStore(tmp_path / "o.sqlite")
    store.remember("intro", "ana", "ps1", "https://lms", Outcome("https://lms/li", "s", "x"))
    assert store.targets("intro", "ps1")["ana"].outcome.lineitem == "x"
    assert store.linked() == {"intro": ["ps1"]}
    store.queue("intro", "ana", "ps1", 0.5, "down")
    assert [row[:5] for row in store.waiting()] == [("intro", "ana", "ps1", 0.5, 1)]
    store.sent("intro", "ana", "ps1", 0.5)
    assert store.delivered("intro") == {("ana", "ps1"): 0.5} and store.waiting() == []


def test_authenticator_from_the_hub_config(tmp_path, fake_secrets):
    auth_section = {
        "type": "lti13",
        "issuer": "https://lms.example.edu",
        "client_id": CLIENT,
        "jwks_url": "https://lms.example.edu/jwks",
        "authorize_url": "https://lms.example.edu/authorize",
        "token_url": "https://lms.example.edu/token",
    }
    site = parse_site(two_course_data(auth_section))
    plan = derive(site, str(tmp_path / "data"), isolated=True)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    # the hub reads its key from the installation's secrets folder
    Path(plan.paths.secrets).mkdir(parents=True)
    ensure_tool_key(plan.paths.secrets)
    c = hub_config(plan, str(plan_file), fake_secrets, "/opt/env")
    assert c.JupyterHub.authenticator_class == "coursehub.hub.lti.CourseLTI13Authenticator"
    auth = CourseLTI13Authenticator(config=c)
    assert auth.issuer == "https://lms.example.edu" and auth.client_id == {CLIENT}
    assert auth.jwks_endpoint == "https://lms.example.edu/jwks"
    assert json.loads(auth.tool_jwks)["keys"][0]["kty"] == "RSA"
    paths = {route for route, *_ in auth.get_handlers(None)}
    assert {"/lti13/jwks", "/login", "lti13/oauth_login", "lti13/oauth_callback"} <= paths


def test_landing_workspace_opens_the_assignment_list():
    from coursehub.workspaces import (
        ASSIGNMENT_LIST,
        assignments_workspace,
        lab_landing,
        workspace_file_name,
    )

    ws = assignments_workspace()
    assert ws["metadata"]["id"] == "coursehub-assignments"
    main = ws["data"]["layout-restorer:data"]["main"]
    assert main["dock"]["widgets"] == [ASSIGNMENT_LIST] and main["current"] == ASSIGNMENT_LIST
    # the key nbgrader's restorer looks up: its tracker's namespace and widget name
    assert ASSIGNMENT_LIST == "nbgrader-assignment-list:nbgrader-assignment-list"
    assert ws["data"][ASSIGNMENT_LIST] == {"data": {}}
    name = workspace_file_name()
    assert name.startswith("coursehub-assignments-") and name.endswith(".jupyterlab-workspace")
    assert lab_landing("/x/", "ana") == "/x/user/ana/lab/workspaces/coursehub-assignments"
