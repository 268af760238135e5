"""LTI 1.1 Basic Outcomes: the replaceResult request, its signature, the stores and the outbox.

The LMS is the tests' outcome service (tests/ltiplatform.py) on loopback: it
checks the OAuth signature and the body hash with the shared secret, as an LMS does.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from coursehub.lti.grades import PushReport, _send, fraction
from coursehub.lti.hosts import policy_for
from coursehub.lti.launch import Outcome, lti11_launch
from coursehub.lti.outcomes import (
    OutcomeError,
    OutcomeStore,
    Target,
    outcome_succeeded,
    replace_result_xml,
    send_lti11_score,
)
from coursehub.plan import PlanAuth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ltiplatform import OutcomeService  # noqa: E402

KEY, SECRET = "lms", "outcome-secret-0123456789"
# the tests' LMS is on loopback: listed, as a site file lists it (auth.outcome_hosts)
LOOPBACK = policy_for(PlanAuth("lti11", outcome_hosts=("127.0.0.1",)))


@pytest.fixture
def lms():
    service = OutcomeService(KEY, SECRET)
    yield service
    service.close()


def lti11(key, secret):
    """A sender as grades.sender_for makes it for an LTI 1.1 site."""
    return lambda t, value, _maximum: send_lti11_score(t, value, key, secret, policy=LOOPBACK)


def target(lms, sourcedid="src-ana-ps1") -> Target:
    return Target("intro", "ana", "ps1", KEY, Outcome(lms.url, sourcedid))


def test_replace_result_xml_escapes_and_bounds():
    xml = replace_result_xml("a<b&c", 0.5, "m1")
    assert "<sourcedId>a&lt;b&amp;c</sourcedId>" in xml
    assert "<textString>0.5000</textString>" in xml
    with pytest.raises(ValueError, match="between 0 and 1"):
        replace_result_xml("x", 1.5, "m1")


def test_a_signed_score_arrives(lms):
    send_lti11_score(target(lms), 0.75, KEY, SECRET, policy=LOOPBACK)
    assert lms.scores == {"src-ana-ps1": 0.75}
    assert lms.refused == []


def test_a_wrong_secret_is_refused_by_the_lms(lms):
    with pytest.raises(OutcomeError, match="HTTP 401"):
        send_lti11_score(target(lms), 0.75, KEY, "not-the-secret-at-all", policy=LOOPBACK)
    assert lms.refused == ["bad signature"]
    assert lms.scores == {}


def test_an_lms_that_does_not_answer(lms):
    t = Target("intro", "ana", "ps1", KEY, Outcome("http://127.0.0.1:9/outcomes", "s"))
    with pytest.raises(OutcomeError, match="did not answer"):
        send_lti11_score(t, 0.5, KEY, SECRET, timeout=2, policy=LOOPBACK)


def test_success_is_read_from_the_answer():
    assert not outcome_succeeded("<not xml")
    assert not outcome_succeeded("<a/>")


def test_failed_score_waits_in_the_outbox_then_goes(lms, tmp_path):
    store = OutcomeStore(tmp_path / "outcomes.sqlite")
    assert stat.S_IMODE((tmp_path / "outcomes.sqlite").stat().st_mode) == 0o600
    t = target(lms)
    store.remember("intro", "ana", "ps1", KEY, t.outcome)
    lms.fail_next = 3  # every try of this push fails
    report = PushReport()
    _send(store, t, 0.5, report, lti11(KEY, SECRET))
    assert report.sent == [] and report.failed[0][:3] == ("ana", "ps1", 0.5)
    assert store.pending("intro") == [("intro", "ana", "ps1", 0.5, 1, "the LMS answered HTTP 500")]
    # the next try gets through and empties the outbox
    report = PushReport()
    _send(store, t, 0.5, report, lti11(KEY, SECRET))
    assert report.sent == [("ana", "ps1", 0.5)]
    assert store.pending() == []
    assert lms.scores == {"src-ana-ps1": 0.5}


def test_a_flaky_lms_is_retried_within_one_push(lms, tmp_path):
    store = OutcomeStore(tmp_path / "outcomes.sqlite")
    lms.fail_next = 2
    report = PushReport()
    _send(store, target(lms), 1.0, report, lti11(KEY, SECRET))
    assert report.sent == [("ana", "ps1", 1.0)] and store.pending() == []


def test_targets_come_from_launches_and_the_latest_wins(tmp_path):
    store = OutcomeStore(tmp_path / "outcomes.sqlite")
    store.remember("intro", "ana", "ps1", KEY, Outcome("http://lms/o", "old"))
    store.remember("intro", "ana", "ps1", KEY, Outcome("http://lms/o", "new"))
    store.remember("intro", "bob", "ps2", KEY, Outcome("http://lms/o", "b"))
    found = store.targets("intro", "ps1")
    assert list(found) == ["ana"] and found["ana"].outcome.sourcedid == "new"


def test_launch_carries_the_outcome_and_the_assignment():
    launch = lti11_launch(
        {
            "user_id": "42",
            "roles": "Learner",
            "context_id": "c",
            "oauth_consumer_key": KEY,
            "custom_assignment": "PS 1",
            "lis_outcome_service_url": "https://lms/outcomes",
            "lis_result_sourcedid": "abc",
        }
    )
    assert launch.assignment == "ps-1"
    assert launch.outcome == Outcome("https://lms/outcomes", "abc")
    assert launch.issuer == KEY


@pytest.mark.parametrize(
    "score, max_score, expected", [(2, 3, 2 / 3), (3, 3, 1.0), (0, 0, 0.0), (4, 3, 1.0)]
)
def test_fraction(score, max_score, expected):
    assert fraction(score, max_score) == pytest.approx(expected)


def test_assignment_from_the_link_title_when_no_custom_parameter():
    launch = lti11_launch({"user_id": "42", "roles": "Learner", "resource_link_title": "ps1"})
    assert launch.assignment == "ps1"
