"""The pure pieces of an LMS launch: identity, role, course and replay protection."""

from __future__ import annotations

import os
import stat

import pytest

from coursehub.lti.courses import LaunchContextError, resolve_course, slug
from coursehub.lti.identity import LaunchIdentityError, hub_name
from coursehub.lti.nonces import NonceStore
from coursehub.lti.roles import INSTRUCTOR, STUDENT, course_role, lti11_roles, principal_role
from coursehub.names import course_id_problem, username_problem

LIS = "urn:lti:role:ims/lis/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"


# -- identity


@pytest.mark.parametrize("user_id", ["42", "535fa085f22b4655f48cd5a36a9215f", "ana.b"])
def test_lti11_safe_ids_are_kept(user_id):
    assert hub_name(user_id) == user_id


@pytest.mark.parametrize(
    "user_id",
    [
        "Ana",  # upper case
        "user@school.edu",
        "root",  # reserved
        "grader-intro",  # a grader account's prefix
        "course-x",
        "535fa085f22b4655f48cd5a36a9215f64c062838",  # Canvas's 40 characters: too long
        "-leading",
        "ünïcode",
        "../../etc",
    ],
)
def test_unsafe_ids_become_safe_names(user_id):
    name = hub_name(user_id)
    assert username_problem(name) is None, name
    assert name == hub_name(user_id)  # stable


def test_ids_differing_only_in_case_or_punctuation_stay_apart():
    names = {hub_name(u) for u in ["Ana", "ANA", "ana@x", "ana_x", "ana-x"]}
    assert len(names) == 5
    assert "ana" not in names  # 'Ana' never takes over the site file's 'ana'


def test_lti13_sub_is_scoped_by_issuer():
    a = hub_name("1234", issuer="https://canvas.example.edu")
    b = hub_name("1234", issuer="https://moodle.example.edu")
    assert a != b
    assert a.startswith("1234-")
    assert username_problem(a) is None and username_problem(b) is None
    assert a != "1234"  # a sub is never taken as a bare site name


@pytest.mark.parametrize("user_id", ["", "   ", None])
def test_no_user_id_is_refused(user_id):
    with pytest.raises(LaunchIdentityError, match="user id"):
        hub_name(user_id)


# -- roles


@pytest.mark.parametrize(
    "roles, expected",
    [
        ("Instructor", INSTRUCTOR),
        ("TeachingAssistant", INSTRUCTOR),
        ("ContentDeveloper", INSTRUCTOR),
        ("Learner", STUDENT),
        (f"{LIS}Instructor", INSTRUCTOR),
        (f"{LIS}TeachingAssistant", INSTRUCTOR),
        (f"{LIS}TeachingAssistant/TeachingAssistantSection", INSTRUCTOR),
        (f"{LIS}ContentDeveloper", INSTRUCTOR),
        (f"{LIS}Learner", STUDENT),
        (f"{LIS}Learner/NonCreditLearner", STUDENT),
        ("Learner,urn:lti:instrole:ims/lis/Student", STUDENT),
        ("Instructor,Learner", INSTRUCTOR),  # teaching wins
        ("Mentor", None),
        ("urn:lti:role:ims/lis/Mentor", None),
        ("urn:lti:instrole:ims/lis/Instructor", None),  # an institution role
        ("urn:lti:instrole:ims/lis/Administrator", None),
        ("urn:lti:sysrole:ims/lis/Administrator", None),
        ("", None),
        (None, None),
        ("learner", None),  # role names are case-sensitive in both specs
    ],
)
def test_lti11_roles(roles, expected):
    assert course_role(lti11_roles(roles)) == expected


@pytest.mark.parametrize(
    "roles, expected",
    [
        ([f"{MEMBERSHIP}#Instructor"], INSTRUCTOR),
        ([f"{MEMBERSHIP}#ContentDeveloper"], INSTRUCTOR),
        ([f"{MEMBERSHIP}/Instructor#TeachingAssistant"], INSTRUCTOR),
        ([f"{MEMBERSHIP}#Learner"], STUDENT),
        ([f"{MEMBERSHIP}/Learner#NonCreditLearner"], STUDENT),
        ([f"{MEMBERSHIP}#Mentor"], None),
        (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"], None),
        (["http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"], None),
        (
            [
                "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student",
                f"{MEMBERSHIP}#Learner",
            ],
            STUDENT,
        ),
        ([], None),
        ([42, None], None),  # not strings: ignored
    ],
)
def test_lti13_roles(roles, expected):
    assert course_role(roles) == expected


def test_principal_role_of_sub_roles():
    assert principal_role(f"{MEMBERSHIP}/Instructor#TeachingAssistant") == "Instructor"
    assert principal_role(f"{LIS}TeachingAssistant/TeachingAssistantOffering") == (
        "TeachingAssistant"
    )


# -- courses


def test_new_context_gets_its_label_as_id():
    ref = resolve_course("ctx-1", "BIO 101", "Biology", pins={}, existing=set())
    assert (ref.course_id, ref.known, ref.title) == ("bio-101", False, "Biology")


def test_pinned_context_is_its_course():
    ref = resolve_course("ctx-1", "whatever", "", pins={"ctx-1": "intro101"}, existing={"intro101"})
    assert (ref.course_id, ref.known) == ("intro101", True)


def test_pinned_but_missing_course_is_not_known():
    ref = resolve_course("ctx-1", "x", "", pins={"ctx-1": "intro101"}, existing=set())
    assert (ref.course_id, ref.known) == ("intro101", False)


def test_unpinned_context_never_joins_an_existing_course():
    # another term's context with the same label must not enter last term's course
    ref = resolve_course("ctx-2", "BIO 101", "", pins={"ctx-1": "bio-101"}, existing={"bio-101"})
    assert ref.course_id != "bio-101"
    assert not ref.known
    assert course_id_problem(ref.course_id) is None
    # a course made by hand with a matching id is not joined either
    ref = resolve_course("ctx-3", "stats", "", pins={}, existing={"stats"})
    assert ref.course_id != "stats" and not ref.known


@pytest.mark.parametrize(
    "context_id, label",
    [
        ("x" * 200, ""),
        ("ctx", "A very long course label that goes on and on"),
        ("ctx", "coursehub"),  # reserved
        ("ctx", "!!!"),
        ("ctx", "ÄÖÜ"),
    ],
)
def test_course_ids_are_always_safe(context_id, label):
    ref = resolve_course(context_id, label, "", pins={}, existing=set())
    assert course_id_problem(ref.course_id) is None, ref.course_id
    assert ref == resolve_course(context_id, label, "", pins={}, existing=set())


def test_no_context_is_refused():
    with pytest.raises(LaunchContextError, match="context"):
        resolve_course("", "BIO", "", pins={}, existing=set())


def test_slug():
    assert slug("  CS 101: Intro!  ") == "cs-101-intro"


# -- nonces


def test_nonce_is_refused_the_second_time(tmp_path):
    store = NonceStore(tmp_path / "nonces.sqlite")
    assert store.use("key", "n1", 1000, now=1000)
    assert not store.use("key", "n1", 1000, now=1001)
    assert store.use("other-key", "n1", 1000, now=1001)  # per consumer
    assert store.use("key", "n2", 1000, now=1001)


def test_nonces_survive_a_new_store(tmp_path):
    path = tmp_path / "nonces.sqlite"
    assert NonceStore(path).use("key", "n1", 1000, now=1000)
    assert not NonceStore(path).use("key", "n1", 1000, now=1010)  # a restarted hub


def test_store_is_private(tmp_path):
    path = tmp_path / "nonces.sqlite"
    old = os.umask(0)
    try:
        NonceStore(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_old_nonces_expire_with_the_window(tmp_path):
    store = NonceStore(tmp_path / "nonces.sqlite", window=30)
    store.use("key", "old", 1000, now=1000)
    store.use("key", "new", 1050, now=1050)
    assert len(store) == 2
    store.use("key", "later", 1100, now=1100)  # 'old' is past now - 2 * window
    assert len(store) == 2
    assert not store.use("key", "new", 1050, now=1100)
