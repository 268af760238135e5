"""LTI 1.3 launches through the real hub, from a platform on loopback that plays an LMS.

The platform signs id_tokens with its own RSA key (published as its JWKS),
runs the OIDC flow with the hub, and serves Assignment and Grade Services
that accept only access tokens its token endpoint issued against coursehub's
JWT assertion (checked with coursehub's public JWKS, served by the hub).
"""

from __future__ import annotations

import os
import stat
import time
from contextlib import contextmanager

import pytest
import requests
import yaml
from term import answer, create_and_release, fetch, submit

from conftest import Installation, named_in_site, wait_for
from coursehub.lti.identity import hub_name
from hubclient import Person
from ltiplatform import MEMBERSHIP, Platform

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("servers run under their own uids: needs root", allow_module_level=True)

CLIENT_ID = "coursehub-client-10000000000042"
INSTRUCTOR, LEARNER = MEMBERSHIP + "Instructor", MEMBERSHIP + "Learner"
SITE: dict = {}  # made from the platform's addresses in `inst`


@pytest.fixture(scope="module")
def platform():
    p = Platform(CLIENT_ID)
    yield p
    p.close()


@pytest.fixture(scope="module")
def inst(platform):
    site = {
        "org": "LMS University",
        "auth": {
            "type": "lti13",
            "issuer": platform.issuer,
            "client_id": CLIENT_ID,
            "jwks_url": platform.jwks_url,
            "authorize_url": platform.authorize_url,
            "token_url": platform.token_url,
            "contexts": {"ctx-intro": "intro", "ctx-zoo": "zoology"},
        },
        "people": ["ines"],
        "courses": [
            {"id": "intro", "title": "Intro", "instructors": ["ines"], "students": []},
            {"id": "zoology", "title": "Zoology", "instructors": ["ines"], "students": []},
        ],
    }
    installation = Installation(site, "lti13")
    try:
        installation.up()
        platform.tool_jwks_url = f"{installation.url}hub/lti13/jwks"
        yield installation
    finally:
        installation.down()
        installation.remove()


def name(platform, sub: str) -> str:
    return hub_name(sub, issuer=platform.issuer)


def site_data(inst) -> dict:
    return yaml.safe_load(inst.site_file.read_text())


def course(inst, cid: str) -> dict:
    return next(c for c in site_data(inst)["courses"] if c["id"] == cid)


def test_student_launch_joins_and_lands_in_their_server(inst, platform):
    s = requests.Session()
    r = platform.launch(s, inst.url, platform.claims("u-1001", [LEARNER], "ctx-intro"))
    assert r.status_code == 302, r.text[:500]
    who = name(platform, "u-1001")
    assert r.headers["Location"].startswith(f"/hub/spawn/{who}?next=")
    assert who in course(inst, "intro")["students"]
    assert "admin" not in named_in_site(site_data(inst))  # the display name decided nothing
    assert who in inst.plan()["groups"]["nbgrader-intro"]


def test_instructor_launch_lands_in_the_formgrader(inst, platform):
    s = requests.Session()
    claims = platform.claims("u-ines", [INSTRUCTOR], "ctx-intro")
    r = platform.launch(s, inst.url, claims)
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == "/services/intro/formgrader"
    assert name(platform, "u-ines") in course(inst, "intro")["instructors"]


def test_the_hub_serves_its_public_key_and_keeps_the_private_one(inst):
    jwks = requests.get(f"{inst.url}hub/lti13/jwks", timeout=10).json()
    [key] = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["kid"]
    assert "d" not in key and "p" not in key  # public half only
    pem = inst.data_dir / "secrets" / "lti13-tool-key.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600


def test_login_page_says_to_open_coursehub_from_the_lms(inst):
    for path in ("hub/login", "hub/lti13/oauth_login"):
        r = requests.get(f"{inst.url}{path}", timeout=10)
        assert r.status_code == 200, (path, r.status_code)
        assert "Open coursehub from your LMS" in r.text
        assert "<form" not in r.text and "password" not in r.text.lower().replace(
            "no password to type", ""
        )
    # someone with no session who opens the hub ends on that page, not an error
    r = requests.get(inst.url, timeout=10)
    assert r.url.startswith(f"{inst.url}hub/login") and "Open coursehub" in r.text


def refused(inst, platform, forge: dict, sub: str = "u-evil"):
    r = platform.launch(
        requests.Session(), inst.url, platform.claims(sub, [INSTRUCTOR], "ctx-intro"), forge
    )
    assert name(platform, sub) not in named_in_site(site_data(inst))
    return r


def test_wrong_issuer_is_refused(inst, platform):
    r = refused(inst, platform, {"claims": {"iss": "https://another-lms.example.edu"}})
    assert r.status_code == 400 and "Invalid issuer" in r.text


def test_wrong_audience_is_refused(inst, platform):
    r = refused(inst, platform, {"claims": {"aud": "another-tool"}})
    assert r.status_code == 401 and "Audience" in r.text


def test_wrong_nonce_is_refused(inst, platform):
    r = refused(inst, platform, {"claims": {"nonce": "a-nonce-coursehub-never-sent"}})
    assert r.status_code == 400 and "nonce mismatch" in r.text


def test_unsigned_token_is_refused(inst, platform):
    r = refused(inst, platform, {"alg": "none"})
    assert r.status_code == 400


def test_expired_token_is_refused(inst, platform):
    now = int(time.time())
    r = refused(inst, platform, {"claims": {"iat": now - 400, "exp": now - 100}})
    assert r.status_code == 400 and "expired" in r.text


def test_token_signed_by_another_key_is_refused(inst, platform):
    r = refused(inst, platform, {"other_key": True})
    assert r.status_code == 400 and "Signature verification failed" in r.text


def test_role_claimed_through_a_custom_claim_is_ignored(inst, platform):
    claims = platform.claims(
        "u-1002", [LEARNER], "ctx-intro", custom={"roles": INSTRUCTOR, "role": "Instructor"}
    )
    r = platform.launch(requests.Session(), inst.url, claims)
    assert r.status_code == 302 and r.headers["Location"].startswith("/hub/spawn/")
    intro = course(inst, "intro")
    who = name(platform, "u-1002")
    assert who in intro["students"] and who not in intro["instructors"]
    # no role in the signed claim: a custom one gives none either
    claims = platform.claims("u-1003", [], "ctx-intro", custom={"roles": INSTRUCTOR})
    r = platform.launch(requests.Session(), inst.url, claims)
    assert r.status_code == 403 and "gives you no role" in r.text
    assert name(platform, "u-1003") not in named_in_site(site_data(inst))


def test_a_deployment_not_listed_is_refused(inst, platform):
    """auth.deployment_ids (read at each launch: no hub restart) limits the client id's
    launches to the deployments listed."""
    original = inst.site_file.read_text()
    hub_before = inst.hub_pid()
    try:
        for listed, status in [(["deployment-other"], 403), ([platform.deployment_id], 302)]:
            data = site_data(inst)
            data["auth"]["deployment_ids"] = listed
            inst.site_file.write_text(yaml.safe_dump(data))
            inst.up()
            r = platform.launch(
                requests.Session(), inst.url, platform.claims("u-3010", [LEARNER], "ctx-intro")
            )
            assert r.status_code == status, (listed, r.status_code, r.text[:300])
            if status == 403:
                assert "auth.deployment_ids" in r.text
        assert inst.hub_pid() == hub_before
    finally:
        inst.site_file.write_text(original)
        inst.up()


def test_replayed_id_token_is_refused_also_after_a_hub_restart(inst, platform):
    # an attacker with the browser's cookies and the posted form replays the id_token
    r = platform.launch(
        requests.Session(), inst.url, platform.claims("u-1004", [LEARNER], "ctx-intro")
    )
    assert r.status_code == 302
    action, fields = platform.last_form
    cookies = platform.cookies_at_callback
    assert set(cookies) >= {"lti13authenticator-state", "lti13authenticator-nonce-state"}

    def replay():
        return requests.post(
            action, data=fields, cookies=cookies, allow_redirects=False, timeout=60
        )

    r = replay()
    assert r.status_code == 401 and "used already" in r.text, r.text[:300]
    pid_before = inst.hub_pid()
    os.kill(pid_before, 9)  # the supervisor starts a new hub
    wait_for(
        lambda: inst.hub_pid(missing_ok=True) not in (None, pid_before) and _hub_up(inst),
        60,
        "the new hub",
    )
    r = replay()
    assert r.status_code == 401 and "used already" in r.text, r.text[:300]


def _hub_up(inst) -> bool:
    try:
        return requests.get(f"{inst.url}hub/health", timeout=2).ok
    except requests.RequestException:
        return False


RIGHT = "def square(x):\n    return x * x"


def test_autograded_score_reaches_the_platform_by_itself(inst, platform):
    ines = Person(inst.url, name(platform, "u-ines"))
    r = platform.launch(ines.s, inst.url, platform.claims("u-ines", [INSTRUCTOR], "ctx-intro"))
    assert r.status_code == 302
    create_and_release(ines, "intro", "ps1")
    student = Person(inst.url, name(platform, "u-3001"))
    claims = platform.claims("u-3001", [LEARNER], "ctx-intro", custom={"assignment": "ps1"})
    r = platform.launch(student.s, inst.url, claims)
    assert r.status_code == 302, r.text[:300]
    student.start_server()
    fetch(student, "intro", "ps1")
    answer(student, "intro", "ps1", RIGHT, "because")
    submit(student, "intro", "ps1")
    inst.cli("nbgrader", "intro", "--", "collect", "ps1")
    inst.cli("nbgrader", "intro", "--", "autograde", "ps1")

    # no 'grades push': the supervisor sends it (2 of 3 points; the written answer is
    # graded by hand), creating the assignment's line item
    wait_for(lambda: ("ps1", "u-3001") in platform.scores, 90, "the score at the platform")
    score = platform.scores[("ps1", "u-3001")]
    assert score["scoreGiven"] == pytest.approx(2.0) and score["scoreMaximum"] == 3.0
    assert score["gradingProgress"] == "FullyGraded"
    [item] = platform.lineitems["ctx-intro"]
    assert item["resourceId"] == "ps1" and item["scoreMaximum"] == 3.0
    assert not [p for p in platform.refused if "assertion" in p]

    # a push by hand prints what it sent
    out = inst.cli("grades", "push", "intro", "ps1")
    assert f"sent ps1 {student.name}: 0.6667" in out.stdout


def test_a_failed_push_waits_in_the_outbox_and_goes_later(inst, platform):
    student = Person(inst.url, name(platform, "u-3001"))
    platform.scores.clear()
    platform.fail_next = 1000  # the LMS is down
    out = inst.cli("grades", "push", "intro", "ps1", check=False)
    assert out.returncode == 1
    assert f"FAILED ps1 {student.name}: 0.6667" in out.stdout and "kept in the outbox" in out.stdout
    pending = inst.cli("grades", "pending", check=False)
    assert f"intro ps1 {student.name}: 0.6667" in pending.stdout
    status = inst.cli("status", check=False).stdout
    assert "1 score(s) waiting in the outbox" in status, status
    # back up: the supervisor's retry (with its back-off) delivers it without a command
    platform.fail_next = 0
    wait_for(lambda: ("ps1", "u-3001") in platform.scores, 120, "the retried score")
    wait_for(
        lambda: inst.cli("grades", "pending", check=False).returncode == 0, 30, "an empty outbox"
    )


def test_no_secret_or_token_in_any_log(inst, platform):
    pem = (inst.data_dir / "secrets" / "lti13-tool-key.pem").read_text()
    body = "".join(pem.strip().splitlines()[1:-1])[:64]
    assert platform.issued, "the tests issued tokens"
    found = []
    logs = list((inst.data_dir / "logs").rglob("*.log"))
    assert logs, "no log to look into"
    for log in logs:
        text = log.read_text(errors="replace")
        for token in platform.issued:
            signature = token.split(".")[-1]  # empty for the unsigned token
            if token in text or (len(signature) > 16 and signature in text):
                found.append((str(log), token[:12]))
        if body in text:
            found.append((str(log), "the tool key"))
    assert not found, f"secrets in logs: {found}"


@contextmanager
def browser_page(inst, session: requests.Session):
    """A page of Debian's Chromium (driven by Playwright) logged in with `session`'s
    cookies (those of the launches)."""
    from browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    base = inst.url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies(
                [
                    {"name": c.name, "value": c.value, "url": base + (c.path or "/")}
                    for c in session.cookies
                ]
            )
            yield context.new_page()
        finally:
            browser.close()


def test_student_lands_in_the_assignment_list_in_a_real_browser(inst, platform):
    """Chromium follows the landing of a launch and shows the Assignments panel open, with
    the course's released assignment listed."""
    from playwright.sync_api import expect

    from browser import SHOTS

    s = requests.Session()
    claims = platform.claims("u-3001", [LEARNER], "ctx-intro", custom={"assignment": "ps1"})
    r = platform.launch(s, inst.url, claims)
    assert r.status_code == 302
    landing = inst.url.rstrip("/") + r.headers["Location"]
    who = name(platform, "u-3001")
    # the workspace the landing opens is in the student's home, theirs
    account = inst.plan()["people"][who]["account"]
    folder = os.path.join(account["home"], ".jupyter", "lab", "workspaces")
    [found] = [f for f in os.listdir(folder) if f.startswith("coursehub-assignments")]
    assert os.stat(os.path.join(folder, found)).st_uid == account["uid"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page(inst, s) as page:
        page.goto(landing, timeout=90_000)
        page.wait_for_url(f"**/user/{who}/lab/workspaces/coursehub-assignments**", timeout=90_000)
        panel = page.locator("#nbgrader-assignment-list")
        expect(panel).to_be_visible(timeout=60_000)
        expect(panel).to_contain_text("ps1", timeout=30_000)
        page.screenshot(path=str(SHOTS / "lti13-student-landing.png"))


def test_a_student_of_two_courses_lands_on_the_launched_one_in_a_real_browser(inst, platform):
    """nbgrader's panel opens on the alphabetically first course; a launch from the LMS
    page of another course opens on that one, the others still in the menu. A launch
    that joins a course while the student's server runs restarts that server (it
    started without the course's group and could not read its exchange)."""
    from playwright.sync_api import expect

    ines = Person(inst.url, name(platform, "u-ines"))
    r = platform.launch(ines.s, inst.url, platform.claims("u-ines", [INSTRUCTOR], "ctx-zoo"))
    assert r.status_code == 302
    create_and_release(ines, "zoology", "zp1")
    s = requests.Session()
    who = name(platform, "u-3005")
    me = Person(inst.url, who)
    me.s = s

    def started() -> str:
        return me.hub_api("GET", f"users/{who}").json()["servers"][""]["started"]

    def launch_from(context: str) -> str:
        r = platform.launch(s, inst.url, platform.claims("u-3005", [LEARNER], context))
        assert r.status_code == 302, r.text[:300]
        return inst.url.rstrip("/") + r.headers["Location"]

    landing = launch_from("ctx-intro")
    with browser_page(inst, s) as page:

        def panel_on(url: str, course_id: str, listed: str):
            page.goto(url, timeout=90_000)
            page.wait_for_url(f"**/user/{who}/lab/workspaces/coursehub-assignments**")
            panel = page.locator("#nbgrader-assignment-list")
            expect(panel).to_be_visible(timeout=60_000)
            expect(panel.locator("#course_list_default")).to_have_text(course_id, timeout=30_000)
            expect(panel).to_contain_text(listed, timeout=30_000)
            return panel

        panel_on(landing, "intro", "ps1")  # the server starts with intro alone
        first_start = started()
        assert first_start, "the student's server has no start time"
        # the LMS page of zoology: joins it while the server runs
        landing = launch_from("ctx-zoo")
        assert who in course(inst, "zoology")["students"]
        panel = panel_on(landing, "zoology", "zp1")
        panel.locator("#course_list_dropdown").click()
        expect(panel.locator("#course_list li")).to_have_count(2)  # intro is still there
        second_start = started()
        assert second_start and second_start != first_start, (
            "the server could not see zoology: not restarted"
        )
        # back from intro's page: intro first again, the same server
        panel_on(launch_from("ctx-intro"), "intro", "ps1")
        assert started() == second_start
