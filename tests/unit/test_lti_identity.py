"""A name from the LMS never takes over a name the site file has for someone else."""

from __future__ import annotations

import pytest

from coursehub.lti.identity import (
    ANY_LMS,
    LmsPeople,
    NameTakenError,
    hashed_name,
    identity_key,
    own_name,
)
from coursehub.lti.launch import lti11_launch
from coursehub.names import username_problem

KEY = identity_key("42", "lti11:lms")


def test_a_new_lms_person_keeps_their_plain_name():
    assert own_name("42", KEY, "lti-x", {"ada", "pat"}, {"ada"}, {}) == "42"


def test_an_admins_name_is_never_an_lms_persons():
    # an LMS whose user id is 'ada' does not log in as the admin ada
    assert own_name("ada", KEY, "lti-x", {"ada"}, {"ada"}, {}) == "lti-x"
    assert own_name("ada", KEY, "lti-x", {"ada"}, {"ada"}, {"ada": KEY}) == "lti-x"


def test_a_hand_written_name_is_not_taken_by_a_launch():
    assert own_name("pat", KEY, "lti-x", {"pat"}, set(), {}) == "lti-x"


def test_a_name_a_launch_made_stays_its_persons_and_nobody_elses():
    owners = {"42": KEY}
    assert own_name("42", KEY, "lti-x", {"42"}, set(), owners) == "42"
    other = identity_key("42", "lti11:another-lms")
    assert own_name("42", other, "lti-y", {"42"}, set(), owners) == "lti-y"


def test_both_names_taken_is_a_refusal():
    with pytest.raises(NameTakenError, match="belongs to someone else"):
        own_name("pat", KEY, "lti-x", {"pat", "lti-x"}, set(), {})


def test_before_any_record_course_members_count_as_earlier_launches(tmp_path):
    people = LmsPeople(tmp_path / "lti-people.json")
    seed = people.owners_or_seed({"42", "ada", "ines"}, {"ada"})
    assert seed == {"42": ANY_LMS, "ines": ANY_LMS}
    assert own_name("ines", KEY, "lti-x", {"ines", "ada", "42"}, {"ada"}, seed) == "ines"
    people.claim("ines", KEY, seed)
    owners = people.owners()
    assert owners == {"42": ANY_LMS, "ines": KEY}
    assert (tmp_path / "lti-people.json").stat().st_mode & 0o777 == 0o600
    # now the name is that person's: another LMS person gets the hashed one
    other = identity_key("ines", "lti11:x")
    assert own_name("ines", other, "lti-y", {"ines"}, set(), owners) == "lti-y"


def test_the_taken_form_is_a_safe_name_and_differs_per_lms():
    a, b = hashed_name("ada", "lti11:one"), hashed_name("ada", "lti11:two")
    assert a != b and username_problem(a) is None and a.startswith("lti-")
    launch = lti11_launch({"user_id": "ada", "oauth_consumer_key": "one", "roles": "Learner"})
    assert launch.name == "ada" and launch.taken_name == a
    assert launch.identity == identity_key("ada", "lti11:one")
