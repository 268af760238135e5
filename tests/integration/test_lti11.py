"""LTI 1.1 launches through the real hub, signed with oauthlib as an LMS signs them.

A pinned course (intro) exists; launches bring students and instructors into
it, an instructor's launch from a new context creates a course live, and
every forged, stale, replayed or self-promoting launch is refused.
"""

from __future__ import annotations

import ast
import os
import time
import xml.etree.ElementTree as ET

import pytest
import requests
import yaml
from term import answer, create_and_release, fetch, submit

from conftest import named_in_site, wait_for
from hubclient import Person
from ltiplatform import OutcomeService, launch_params, now, post_launch, signed_launch
from pagecheck import assert_safe_page, assert_strict_policy

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("servers run under their own uids: needs root", allow_module_level=True)

KEY = "coursehub-test-lms"
SECRET = "lti-shared-secret-9f8e7d6c5b4a3921"
SITE = {
    "org": "LMS University <em>&</em> 'Co'",  # shown as text on every page
    "auth": {
        "type": "lti11",
        "consumer_key": KEY,
        "shared_secret": SECRET,
        "contexts": {"ctx-intro": "intro"},
        "outcome_hosts": ["127.0.0.1"],  # the tests' LMS (its outcome service) is on loopback
    },
    # pat: written by hand, in no course; no LMS person may become pat
    "people": ["ines", "pat"],
    "courses": [{"id": "intro", "title": "Intro", "instructors": ["ines"], "students": []}],
}


def launch_url(inst) -> str:
    return f"{inst.url}hub/lti/launch"


def launch(inst, params, key=KEY, secret=SECRET, timestamp=None, session=None):
    body = signed_launch(launch_url(inst), key, secret, params, timestamp)
    return post_launch(session or requests.Session(), launch_url(inst), body)


def site_data(inst) -> dict:
    return yaml.safe_load(inst.site_file.read_text())


def course(inst, cid: str) -> dict:
    return next(c for c in site_data(inst)["courses"] if c["id"] == cid)


def test_student_launch_joins_and_lands_in_their_server(inst):
    s = requests.Session()
    r = launch(inst, launch_params("1001", "Learner", "ctx-intro"), session=s)
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == (
        "/hub/spawn/1001?next=%2Fuser%2F1001%2Flab%2Fworkspaces%2Fcoursehub-assignments"
    )
    # membership written back to the site file, and live in the hub
    assert "1001" in course(inst, "intro")["students"]
    assert "1001" not in site_data(inst).get("people", [])  # a member needs no repeat there
    assert "1001" in inst.plan()["groups"]["nbgrader-intro"]
    # the display name 'Admin' decided nothing
    assert "admin" not in named_in_site(site_data(inst))
    # following the landing starts their server and opens their Lab
    r = s.get(inst.url.rstrip("/") + r.headers["Location"], timeout=120)
    assert r.status_code == 200, (r.url, r.text[:300])
    lab = f"{inst.url}user/1001/lab/workspaces/coursehub-assignments"
    if r.url != lab:  # the spawn-pending page, which a browser follows once the server is up
        assert r.url.startswith(f"{inst.url}hub/spawn-pending/1001"), r.url
        wait_for(lambda: s.get(lab, timeout=30).url == lab, 120, "the student's Lab")
    assert s.get(lab, timeout=30).status_code == 200


def test_instructor_launch_lands_in_the_formgrader(inst):
    s = requests.Session()
    r = launch(
        inst, launch_params("ines", "urn:lti:role:ims/lis/Instructor", "ctx-intro"), session=s
    )
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == "/services/intro/formgrader"
    r = s.get(inst.url.rstrip("/") + r.headers["Location"], timeout=60)
    assert r.status_code == 200 and r.url.startswith(f"{inst.url}services/intro/formgrader"), r.url
    assert "formgrader" in r.text.lower()


def test_role_claimed_through_a_custom_parameter_is_ignored(inst):
    params = launch_params(
        "1002", "Learner", "ctx-intro", custom_roles="Instructor", custom_role="Instructor"
    )
    r = launch(inst, params)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/hub/spawn/1002")
    intro = course(inst, "intro")
    assert "1002" in intro["students"] and "1002" not in intro["instructors"]
    # with no role in the signed field, a custom one gives none either
    r = launch(inst, launch_params("1003", "", "ctx-intro", custom_roles="Instructor"))
    assert r.status_code == 403
    assert "gives you no role" in r.text
    assert "1003" not in named_in_site(site_data(inst))


def test_student_launch_into_an_unknown_course_is_refused(inst):
    r = launch(inst, launch_params("1004", "Learner", "ctx-unknown"))
    assert r.status_code == 403
    assert "is not set up in coursehub yet" in r.text
    assert "1004" not in named_in_site(site_data(inst))


def test_bad_signature_is_refused(inst):
    r = launch(inst, launch_params("1005", "Learner", "ctx-intro"), secret="not-the-secret-000")
    assert r.status_code == 401
    assert "Invalid oauth_signature" in r.text


def test_tampered_launch_is_refused(inst):
    body = signed_launch(
        launch_url(inst), KEY, SECRET, launch_params("1006", "Learner", "ctx-intro")
    )
    r = post_launch(requests.Session(), launch_url(inst), body.replace("Learner", "Instructor"))
    assert r.status_code == 401


def test_wrong_consumer_key_is_refused(inst):
    r = launch(inst, launch_params("1005", "Learner", "ctx-intro"), key="another-lms")
    assert r.status_code == 401
    assert "unknown oauth_consumer_key" in r.text


@pytest.mark.parametrize("skew", [-120, 120])
def test_timestamp_outside_the_window_is_refused(inst, skew):
    r = launch(inst, launch_params("1005", "Learner", "ctx-intro"), timestamp=now() + skew)
    assert r.status_code == 401
    assert "Timestamp" in r.text


def test_replayed_launch_is_refused_also_after_a_hub_restart(inst):
    body = signed_launch(
        launch_url(inst), KEY, SECRET, launch_params("1002", "Learner", "ctx-intro")
    )
    assert post_launch(requests.Session(), launch_url(inst), body).status_code == 302
    r = post_launch(requests.Session(), launch_url(inst), body)
    # ltiauthenticator's own in-memory cache sees this one first
    assert r.status_code == 401 and "already used" in r.text
    # a second launch to replay after the restart, used once before it; stamped 25 s
    # ahead (inside the window) so that the timestamp check alone cannot refuse the
    # replay while a loaded machine takes long to restart the hub
    body2 = signed_launch(
        launch_url(inst),
        KEY,
        SECRET,
        launch_params("1002", "Learner", "ctx-intro"),
        timestamp=now() + 25,
    )
    assert post_launch(requests.Session(), launch_url(inst), body2).status_code == 302
    pid_before = inst.hub_pid()
    os.kill(pid_before, 9)  # the supervisor starts a new hub
    wait_for(
        lambda: inst.hub_pid(missing_ok=True) not in (None, pid_before) and _hub_up(inst),
        60,
        "the new hub",
    )
    r = post_launch(requests.Session(), launch_url(inst), body2)
    assert r.status_code == 401, "a replay after a hub restart was accepted"
    assert "This launch was used already" in r.text  # coursehub's durable store


def test_instructor_first_launch_creates_the_course(inst):
    """Live: the hub that took the launch loads the course; it never restarts and the
    instructor's session answers all along."""
    hub_before = inst.hub_pid()
    s = requests.Session()
    params = launch_params("2001", "Instructor", "ctx-bio-2025", context_label="BIO 2")
    r = launch(inst, params, session=s)
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == "/hub/lti/preparing/bio-2"
    data = site_data(inst)
    assert data["auth"]["contexts"]["ctx-bio-2025"] == "bio-2"
    assert course(inst, "bio-2")["instructors"] == ["2001"]
    page = s.get(inst.url.rstrip("/") + r.headers["Location"], timeout=30)
    assert page.status_code == 200 and "Setting up your course bio-2" in page.text

    # what the page's script does: ask until ready, same cookie; every answer is an answer
    def ready():
        answer = s.get(f"{inst.url}hub/lti/preparing/bio-2?ready=1", timeout=10)
        assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        assert answer.headers.get("Content-Type", "").startswith("application/json")
        return answer.json()["ready"] and answer.json()

    state = wait_for(ready, 150, "the new course", interval=1.5)
    assert inst.hub_pid() == hub_before, "the hub restarted to create the course"
    assert "hub restarted" not in (inst.data_dir / "logs" / "lti-apply.log").read_text()
    r = s.get(inst.url.rstrip("/") + state["url"], timeout=60)
    assert r.status_code == 200 and r.url.startswith(f"{inst.url}services/bio-2/formgrader"), r.url
    # a student of the new context now gets in
    r = launch(inst, launch_params("2002", "Learner", "ctx-bio-2025"))
    assert r.status_code == 302 and r.headers["Location"].startswith("/hub/spawn/2002")
    assert "2002" in course(inst, "bio-2")["students"]


def test_login_page_says_to_open_coursehub_from_the_lms(inst):
    r = requests.get(f"{inst.url}hub/login", timeout=10)
    assert r.status_code == 200 and "Open coursehub from your LMS" in r.text
    assert "<form" not in r.text
    r = requests.get(inst.url, timeout=10)  # no session: the same page, not an error
    assert r.url.startswith(f"{inst.url}hub/login") and "Open coursehub" in r.text


HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_LABEL = "BIO'; $(id) `x`\n"  # the course id is made of it: bio-id-x


def test_coursehub_pages_show_text_and_run_no_inline_script(inst):
    """Every page coursehub serves here: the LMS's and the site's text shown as text, and
    a Content-Security-Policy under which no inline script runs."""
    r = requests.get(f"{inst.url}hub/login", timeout=10)
    assert_strict_policy(r.headers["Content-Security-Policy"])
    assert_safe_page(r.text, f"{SITE['org']} logs you in to coursehub")
    # the LTI 1.1 configuration XML names the tool after the org, as text
    r = requests.get(f"{inst.url}hub/lti11/config", timeout=10)
    assert r.status_code == 200 and "default-src 'none'" in r.headers["Content-Security-Policy"]
    title = ET.fromstring(r.text).find("{http://www.imsglobal.org/xsd/imsbasiclti_v1p0}title")  # noqa: S314 - the hub's answer
    assert title.text == SITE["org"]
    # a refusal shows the LMS's course title as text
    r = launch(inst, launch_params("1010", "Learner", "ctx-hostile-1", context_title=HOSTILE_TITLE))
    assert r.status_code == 403
    assert_strict_policy(r.headers["Content-Security-Policy"])
    assert_safe_page(r.text, "403", f"The course '{HOSTILE_TITLE}' is not set up in coursehub")
    assert HOSTILE_TITLE not in r.text
    # so does every other error of a launch
    r = launch(inst, launch_params("1011", "Learner", "ctx-intro"), secret="not-the-secret-000")
    assert r.status_code == 401
    assert_strict_policy(r.headers["Content-Security-Policy"])
    assert_safe_page(r.text, "Invalid oauth_signature")
    # the preparing page never shows its URL's text as markup
    s = requests.Session()
    assert (
        launch(inst, launch_params("ines", "Instructor", "ctx-intro"), session=s).status_code == 302
    )
    r = s.get(f"{inst.url}hub/lti/preparing/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", timeout=10)
    assert r.status_code == 404 and "<img" not in r.text
    assert_strict_policy(r.headers["Content-Security-Policy"])
    assert_safe_page(r.text, "There is no such course.")
    # its script is a file of the hub's
    r = requests.get(f"{inst.url}hub/coursehub/static/preparing.js", timeout=10)
    assert r.status_code == 200 and "javascript" in r.headers["Content-Type"]
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "?ready=1" not in r.text


def test_a_hostile_lms_course_is_made_and_shown_as_text_in_a_real_browser(inst):
    """An instructor's first launch from a context titled `<script>alert(1)</script>` with a
    hostile label: the course gets a safe id and its title as text everywhere; in Chromium
    the preparing page polls under its policy (no inline script, no violation) and opens
    the formgrader when the course is ready; the home page shows the title as text while
    JupyterHub's own scripts run with the response's nonce."""
    from browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    s = requests.Session()
    params = launch_params(
        "2101",
        "Instructor",
        "ctx-hostile-2",
        context_label=HOSTILE_LABEL,
        context_title=HOSTILE_TITLE,
    )
    r = launch(inst, params, session=s)
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == "/hub/lti/preparing/bio-id-x"
    assert course(inst, "bio-id-x")["title"] == HOSTILE_TITLE

    base = inst.url.rstrip("/")
    violations: list[tuple[str, str]] = []
    dialogs: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies(
                [
                    {"name": c.name, "value": c.value, "url": base + (c.path or "/")}
                    for c in s.cookies
                ]
            )
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    violations.append((page.url, m.text))
                    if "Content Security Policy" in m.text
                    else None
                ),
            )
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            answer = page.goto(base + r.headers["Location"], timeout=60_000)
            assert_strict_policy(answer.headers["content-security-policy"])
            expect(page.locator("h1")).to_have_text("Setting up your course bio-id-x")
            page.wait_for_url("**/services/bio-id-x/formgrader**", timeout=180_000)
            answer = page.goto(f"{base}/hub/home", timeout=60_000)
            assert_strict_policy(answer.headers["content-security-policy"], nonce=True)
            title = page.locator(".coursehub-course[data-course='bio-id-x'] .coursehub-title")
            expect(title).to_have_text(HOSTILE_TITLE)
            # JupyterHub's inline scripts ran (with the nonce); its home.js loaded
            assert page.evaluate("typeof window.jhdata") == "object"
            page.wait_for_function("typeof window.require === 'function'")
            page.screenshot(path=str(SHOTS / "lti11-hostile-course-home.png"))

            # a student of the new course lands through JupyterHub's spawn pages, under
            # the policy with their nonce, in their Lab
            student = requests.Session()
            r = launch(inst, launch_params("2102", "Learner", "ctx-hostile-2"), session=student)
            assert r.status_code == 302 and r.headers["Location"].startswith("/hub/spawn/2102")
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies(
                [
                    {"name": c.name, "value": c.value, "url": base + (c.path or "/")}
                    for c in student.cookies
                ]
            )
            page = context.new_page()
            hub_pages: list[tuple[str, str]] = []
            page.on(
                "console",
                lambda m: (
                    violations.append((page.url, m.text))
                    if "Content Security Policy" in m.text
                    else None
                ),
            )
            page.on(
                "response",
                lambda a: (
                    hub_pages.append((a.url, a.headers.get("content-security-policy", "")))
                    if "/hub/spawn" in a.url and a.status == 200
                    else None
                ),
            )
            page.goto(base + r.headers["Location"], timeout=120_000)
            page.wait_for_url("**/user/2102/lab/**", timeout=180_000)
            for url, header in hub_pages:
                assert_strict_policy(header, nonce=True), url
        finally:
            browser.close()
    assert violations == [] and dialogs == []
    # every server's nbgrader config has the title in a comment, as a Python string
    layer1 = (inst.data_dir / "etc" / "jupyter" / "nbgrader_config.py").read_text()
    ast.parse(layer1)
    assert f"#   bio-id-x: {HOSTILE_TITLE!r}" in layer1.splitlines()
    for log in (inst.data_dir / "logs").rglob("*.log"):  # JupyterHub logs each report
        assert "Content security violation" not in log.read_text(errors="replace"), log


def test_no_secret_in_any_log(inst):
    found = []
    logs = list((inst.data_dir / "logs").rglob("*.log"))
    assert logs, "no log to look into"
    for log in logs:
        text = log.read_text(errors="replace")
        if SECRET in text:
            found.append(str(log))
    assert not found, f"the shared secret is in {found}"


def _hub_up(inst) -> bool:
    try:
        return requests.get(f"{inst.url}hub/health", timeout=2).ok
    except requests.RequestException:
        return False


def test_launch_takes_seconds_not_minutes(inst):
    t0 = time.monotonic()
    r = launch(inst, launch_params("1001", "Learner", "ctx-intro"))
    assert r.status_code == 302
    assert time.monotonic() - t0 < 10


RIGHT = "def square(x):\n    return x * x"


@pytest.fixture
def lms():
    service = OutcomeService(KEY, SECRET)
    yield service
    service.close()


def launched(inst, user_id: str, roles: str, **extra) -> Person:
    """A person whose session comes from an LMS launch (followed to its landing)."""
    person = Person(inst.url, user_id)
    r = launch(inst, launch_params(user_id, roles, "ctx-intro", **extra), session=person.s)
    assert r.status_code == 302, r.text[:300]
    return person


def test_autograded_score_goes_back_to_the_lms(inst, lms):
    ines = launched(inst, "ines", "Instructor")
    create_and_release(ines, "intro", "ps1")
    student = launched(
        inst,
        "3001",
        "Learner",
        custom_assignment="ps1",
        lis_outcome_service_url=lms.url,
        lis_result_sourcedid="sourced-3001-ps1",
    )
    student.start_server()
    fetch(student, "intro", "ps1")
    answer(student, "intro", "ps1", RIGHT, "because")
    submit(student, "intro", "ps1")
    inst.cli("nbgrader", "intro", "--", "collect", "ps1")
    inst.cli("nbgrader", "intro", "--", "autograde", "ps1")

    # no command: the supervisor sends the new autograded score (2 of 3 points: the
    # written answer is graded by hand)
    wait_for(lambda: "sourced-3001-ps1" in lms.scores, 90, "the automatic push")
    assert lms.scores == {"sourced-3001-ps1": pytest.approx(0.6667, abs=1e-4)}
    lms.scores.clear()

    # the LMS is down: the score waits in the outbox, reported, not lost
    lms.fail_next = 1000
    out = inst.cli("grades", "push", "intro", "ps1", check=False)
    assert out.returncode == 1
    assert "FAILED ps1 3001: 0.6667: the LMS answered HTTP 500; kept in the outbox" in out.stdout
    pending = inst.cli("grades", "pending", check=False)
    assert "intro ps1 3001: 0.6667 (1 tries" in pending.stdout
    assert lms.scores == {}

    status = inst.cli("status", check=False).stdout
    assert "grades: 1 score(s) waiting in the outbox" in status, status

    # back up: retry sends it (before the supervisor's first retry, 10 s after the failure)
    lms.fail_next = 0
    out = inst.cli("grades", "retry")
    assert "sent ps1 3001: 0.6667" in out.stdout
    assert lms.scores == {"sourced-3001-ps1": pytest.approx(0.6667, abs=1e-4)}
    assert lms.refused == []
    assert inst.cli("grades", "pending").stdout.strip().endswith("0 score(s) waiting in the outbox")

    # a push by hand prints what it sent, and who never opened the link
    out = inst.cli("grades", "push", "intro", "ps1")
    assert "sent ps1 3001: 0.6667" in out.stdout


def test_an_lms_user_id_never_takes_a_name_the_site_has_for_someone_else(inst):
    """The LMS's user id 'pat' is not the site's hand-written pat: that LMS person gets a
    name of their own, kept for their next launch."""
    r = launch(inst, launch_params("pat", "Learner", "ctx-intro"))
    assert r.status_code == 302, r.text[:500]
    name = r.headers["Location"].split("/hub/spawn/", 1)[1].split("?", 1)[0]
    assert name != "pat" and name.startswith("lti-"), name
    intro = course(inst, "intro")
    assert name in intro["students"] and "pat" not in intro["students"]
    again = launch(inst, launch_params("pat", "Learner", "ctx-intro"))
    assert again.headers["Location"].startswith(f"/hub/spawn/{name}?")
    # a plain new id keeps its plain name, and the record of whose it is is root's alone
    r = launch(inst, launch_params("5150", "Learner", "ctx-intro"))
    assert r.headers["Location"].startswith("/hub/spawn/5150?")
    record = inst.data_dir / "state" / "lti-people.json"
    assert record.stat().st_mode & 0o777 == 0o600
    owners = __import__("json").loads(record.read_text())
    assert name in owners and "5150" in owners and "pat" not in owners
