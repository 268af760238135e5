"""What an LMS launch may make coursehub do, through the real hub (LTI 1.1):

- create at most auth.course_creation.per_hour new courses an hour (the next one gets a
  refusal page, also after a hub restart) and at most max_courses in all, while launches
  into courses that exist go on as before;
- send grades only to the hosts auth.outcome_hosts lists: a launch whose outcome URL
  names another host logs in as usual, but nothing is ever posted there, and the outbox
  says why.
"""

from __future__ import annotations

import os
import re

import pytest
import requests
import yaml
from term import answer, create_and_release, fetch, submit

from conftest import wait_for
from hubclient import Person
from ltiplatform import OutcomeService, launch_params, post_launch, signed_launch
from pagecheck import assert_safe_page, assert_strict_policy

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("servers run under their own uids: needs root", allow_module_level=True)

KEY = "coursehub-limits-lms"
SECRET = "lti-shared-secret-limits-0123456789"
PER_HOUR = 2
SITE = {
    "org": "Limits University",
    "auth": {
        "type": "lti11",
        "consumer_key": KEY,
        "shared_secret": SECRET,
        "contexts": {"ctx-intro": "intro"},
        "course_creation": {"per_hour": PER_HOUR, "max_courses": 50},
        "outcome_hosts": ["127.0.0.1"],  # the tests' LMS, and nothing else
    },
    "people": ["ines"],
    "courses": [{"id": "intro", "title": "Intro", "instructors": ["ines"], "students": []}],
}


def launch(inst, params, session=None):
    url = f"{inst.url}hub/lti/launch"
    return post_launch(session or requests.Session(), url, signed_launch(url, KEY, SECRET, params))


def site_data(inst) -> dict:
    return yaml.safe_load(inst.site_file.read_text())


def course_ids(inst) -> set[str]:
    return {c["id"] for c in site_data(inst)["courses"]}


def _hub_up(inst) -> bool:
    try:
        return requests.get(f"{inst.url}hub/health", timeout=2).ok
    except requests.RequestException:
        return False


def test_new_courses_over_the_hourly_rate_get_a_refusal_page(inst):
    for n in range(1, PER_HOUR + 1):
        r = launch(inst, launch_params("5001", "Instructor", f"ctx-new-{n}"))
        assert r.status_code == 302, r.text[:500]
        assert r.headers["Location"] == f"/hub/lti/preparing/ctx-new-{n}"
    r = launch(inst, launch_params("5001", "Instructor", "ctx-new-3"))
    assert r.status_code == 429, r.text[:500]
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    assert_strict_policy(r.headers["Content-Security-Policy"])
    assert_safe_page(
        r.text,
        "429 : Too Many Requests",
        "coursehub did not create the course 'Course ctx-new-3': this LMS has created "
        f"{PER_HOUR} new course(s) in the last hour, the most this hub allows "
        f"(auth.course_creation.per_hour: {PER_HOUR}).",
        "'coursehub course add'",
        "context ctx-new-3",
    )
    data = site_data(inst)
    assert "ctx-new-3" not in course_ids(inst) and "ctx-new-3" not in data["auth"]["contexts"]
    record = inst.data_dir / "state" / "lti-course-creations.sqlite"
    assert record.stat().st_mode & 0o777 == 0o600

    # courses that exist are never limited: their instructor, a new student, and the
    # instructor of a course a launch made an hour ago
    r = launch(inst, launch_params("ines", "Instructor", "ctx-intro"))
    assert r.status_code == 302 and r.headers["Location"] == "/services/intro/formgrader"
    r = launch(inst, launch_params("5101", "Learner", "ctx-intro"))
    assert r.status_code == 302 and r.headers["Location"].startswith("/hub/spawn/5101?")
    r = launch(inst, launch_params("5001", "Instructor", "ctx-new-1"))
    assert r.status_code == 302 and r.headers["Location"] == "/services/ctx-new-1/formgrader"

    # a hub restart does not reset the count (once the new courses are in, so that
    # their own `coursehub up` does not meet the restart)
    for n in range(1, PER_HOUR + 1):
        wait_for(
            lambda n=n: inst.process_pid(f"grader-ctx-new-{n}", missing_ok=True),
            180,
            f"the grader server of ctx-new-{n}",
            interval=1.5,
        )
    pid_before = inst.hub_pid()
    os.kill(pid_before, 9)  # the supervisor starts a new hub
    wait_for(
        lambda: inst.hub_pid(missing_ok=True) not in (None, pid_before) and _hub_up(inst),
        90,
        "the new hub",
    )
    r = launch(inst, launch_params("5002", "Instructor", "ctx-new-3"))
    assert r.status_code == 429, r.text[:300]
    assert "ctx-new-3" not in course_ids(inst)


def test_the_cap_on_courses_from_launches_and_raising_it(inst):
    """The operator lowers max_courses to what launches made: the next new context is
    refused (403); the page says what to do."""
    original = inst.site_file.read_text()
    try:
        data = site_data(inst)
        data["auth"]["course_creation"] = {"per_hour": 100, "max_courses": PER_HOUR}
        inst.site_file.write_text(yaml.safe_dump(data, sort_keys=False))
        inst.up()
        r = launch(inst, launch_params("5001", "Instructor", "ctx-new-4"))
        assert r.status_code == 403, r.text[:500]
        assert_strict_policy(r.headers["Content-Security-Policy"])
        assert_safe_page(
            r.text,
            f"this hub has {PER_HOUR} course(s) created from LMS launches, its limit "
            f"(auth.course_creation.max_courses: {PER_HOUR})",
            "they can raise the limit (auth.course_creation in the site file, then 'coursehub up')",
        )
        assert "ctx-new-4" not in course_ids(inst)
        # existing courses still open
        r = launch(inst, launch_params("5001", "Instructor", "ctx-new-2"))
        assert r.status_code == 302, r.text[:300]
    finally:
        inst.site_file.write_text(original)
        inst.up()


RIGHT = "def square(x):\n    return x * x"


@pytest.fixture
def lms():
    service = OutcomeService(KEY, SECRET)  # on 127.0.0.1: listed in auth.outcome_hosts
    yield service
    service.close()


@pytest.fixture
def inside():
    """A service on the inside (another loopback address, not listed) that would take
    the score if it were sent to it."""
    service = OutcomeService(KEY, SECRET, host="127.0.0.2")
    yield service
    service.close()


def launched(inst, user_id: str, roles: str, **extra) -> Person:
    person = Person(inst.url, user_id)
    r = launch(inst, launch_params(user_id, roles, "ctx-intro", **extra), session=person.s)
    assert r.status_code == 302, r.text[:300]
    return person


def test_grades_go_only_to_the_listed_hosts(inst, lms, inside):
    ines = launched(inst, "ines", "Instructor")
    create_and_release(ines, "intro", "ps1")
    allowed = launched(
        inst,
        "6001",
        "Learner",
        custom_assignment="ps1",
        lis_outcome_service_url=lms.url,
        lis_result_sourcedid="sourced-6001",
    )
    # a launch pointing its grades inside: still a login, into the student's server
    refused = launched(
        inst,
        "6002",
        "Learner",
        custom_assignment="ps1",
        lis_outcome_service_url=inside.url,
        lis_result_sourcedid="sourced-6002",
    )
    for student in (allowed, refused):
        student.start_server()
        fetch(student, "intro", "ps1")
        answer(student, "intro", "ps1", RIGHT, "because")
        submit(student, "intro", "ps1")
    inst.cli("nbgrader", "intro", "--", "collect", "ps1")
    inst.cli("nbgrader", "intro", "--", "autograde", "ps1")

    # the supervisor sends the listed LMS its score, and the other one waits, saying why
    wait_for(lambda: "sourced-6001" in lms.scores, 90, "the automatic push")
    assert lms.scores == {"sourced-6001": pytest.approx(0.6667, abs=1e-4)}
    where = f"127.0.0.2:{inside.server.server_port}"
    reason = (
        f"not sent: {where} is not a host that auth.outcome_hosts allows (127.0.0.1); "
        "the hub's operator adds it there if this LMS really is there"
    )

    def pending():
        out = inst.cli("grades", "pending", check=False).stdout
        return "intro ps1 6002" in out and out

    out = wait_for(pending, 60, "the refused score in the outbox")
    assert re.search(rf"intro ps1 6002: 0\.6667 \(\d+ tries; {re.escape(reason)}\)", out), out
    assert "6001" not in out
    # a push by hand says so too, and sends nothing there either
    out = inst.cli("grades", "push", "intro", "ps1", check=False)
    assert out.returncode == 1
    assert f"FAILED ps1 6002: 0.6667: {reason}; kept in the outbox" in out.stdout
    assert inside.requests == 0 and inside.scores == {}
    # the launch's refusal is in the hub's log, the automatic push's in the supervisor's
    logs = "\n".join(p.read_text(errors="replace") for p in (inst.data_dir / "logs").rglob("*.log"))
    assert f"6002's scores for ps1 of intro will not be sent: {where} is not a host" in logs
    assert f"grades: ps1 6002: 0.6667 did not arrive ({reason}); kept in the outbox" in logs
