"""decide(): what a verified launch does to the site; apply_to_site(): the site file edit."""

from __future__ import annotations

import pytest
from sites import two_course_data

from coursehub.lti.launch import (
    LaunchRefused,
    apply_to_site,
    decide,
    landing_path,
    lti11_launch,
)
from coursehub.site import parse_site


def site_data():
    return two_course_data({"type": "lti11", "contexts": {"ctx-alg": "algebra"}})


def launch(user_id, roles, context="ctx-alg", **extra):
    return lti11_launch(
        {
            "user_id": user_id,
            "roles": roles,
            "context_id": context,
            "context_label": "BIO 2",
            **extra,
        }
    )


def test_new_student_joins_a_pinned_course():
    data = site_data()
    d = decide(launch("42", "Learner"), parse_site(data))
    assert (d.course_id, d.role, d.join, d.create_course) == ("algebra", "student", True, False)
    apply_to_site(data, d)
    site = parse_site(data)
    # a course member may log in: not repeated under people
    assert "42" in site.everyone and "42" not in site.people
    assert "42" in site.course("algebra").students
    assert landing_path("/", d) == (
        "/hub/spawn/42?next=%2Fuser%2F42%2Flab%2Fworkspaces%2Fcoursehub-assignments"
    )


def test_known_member_changes_nothing():
    d = decide(launch("sam", "Learner"), parse_site(site_data()))
    assert not d.join


def test_instructor_lands_in_the_formgrader():
    d = decide(launch("ines", "Instructor"), parse_site(site_data()))
    assert landing_path("/base/", d) == "/base/services/algebra/formgrader"


def test_role_changed_in_the_lms_moves_them():
    data = site_data()
    d = decide(launch("sam", "TeachingAssistant"), parse_site(data))
    apply_to_site(data, d)
    algebra = parse_site(data).course("algebra")
    assert "sam" in algebra.instructors and "sam" not in algebra.students


def test_custom_role_is_no_role():
    with pytest.raises(LaunchRefused, match="gives you no role"):
        decide(launch("42", "", custom_roles="Instructor"), parse_site(site_data()))


def test_student_into_unknown_course_is_refused():
    with pytest.raises(LaunchRefused, match="not set up in coursehub yet"):
        decide(launch("42", "Learner", context="ctx-new"), parse_site(site_data()))


def test_instructor_creates_the_course_and_pins_it():
    data = site_data()
    d = decide(launch("77", "Instructor", context="ctx-new"), parse_site(data))
    assert (d.course_id, d.create_course) == ("bio-2", True)
    apply_to_site(data, d)
    site = parse_site(data)
    assert site.course("bio-2").instructors == ("77",)
    assert dict(site.auth.contexts)["ctx-new"] == "bio-2"
    # the next launch from that context is the same course, known now
    again = decide(launch("78", "Learner", context="ctx-new"), site)
    assert (again.course_id, again.create_course, again.join) == ("bio-2", False, True)
