"""Courses created from LMS launches: the durable record, its limits per LMS and in all,
and the site file's auth.course_creation."""

from __future__ import annotations

import stat

import pytest
from sites import DATA_DIR, two_course_data

from coursehub.lti.limits import CourseCreations, CreationLimits, CreationRefused
from coursehub.plan import PlanAuth, derive
from coursehub.site import SiteError, parse_site, site_to_data

T0 = 1_800_000_000.0
CANVAS, MOODLE = "canvas-key", "https://moodle.example.edu client-1"


def admit(store, lms, course, limits, existing=(), now=T0):
    store.admit(lms, f"ctx-{course}", course, f"Course {course}", limits, set(existing), now=now)


def test_the_record_is_private_and_outlives_the_store(tmp_path):
    path = tmp_path / "creations.sqlite"
    store = CourseCreations(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admit(store, CANVAS, "bio-1", CreationLimits(2, 10))
    # a new store on the same file (a hub restart) knows what the old one recorded
    again = CourseCreations(path)
    assert again.recent(CANVAS, now=T0 + 1) == 1
    assert again.courses() == {"bio-1": CANVAS}
    admit(again, CANVAS, "bio-2", CreationLimits(2, 10), now=T0 + 2)
    with pytest.raises(CreationRefused) as refused:
        admit(CourseCreations(path), CANVAS, "bio-3", CreationLimits(2, 10), now=T0 + 3)
    assert refused.value.status == 429


def test_the_rate_is_per_lms_and_per_hour(tmp_path):
    store = CourseCreations(tmp_path / "c.sqlite")
    limits = CreationLimits(per_hour=3, max_courses=100)
    for i in range(3):
        admit(store, CANVAS, f"c{i}", limits, now=T0 + i * 60)
    with pytest.raises(CreationRefused) as refused:
        admit(store, CANVAS, "c3", limits, now=T0 + 600)
    err = refused.value
    assert err.status == 429
    assert err.retry_after == 3000  # when the first of the hour's three leaves the window
    assert "created 3 new course(s) in the last hour" in err.message
    assert "auth.course_creation.per_hour: 3" in err.message
    assert "Try again in about 50 minute(s)" in err.message
    assert "'coursehub course add'" in err.message and "context ctx-c3" in err.message
    assert "c3" not in store.courses()  # a refusal records nothing
    # another LMS has a rate of its own
    admit(store, MOODLE, "m0", limits, now=T0 + 600)
    # an hour after the first one, the first LMS may create again
    admit(store, CANVAS, "c3", limits, now=T0 + 3601)
    assert store.recent(CANVAS, now=T0 + 3601) == 3


def test_the_cap_counts_the_courses_launches_made_that_still_exist(tmp_path):
    store = CourseCreations(tmp_path / "c.sqlite")
    limits = CreationLimits(per_hour=100, max_courses=2)
    admit(store, CANVAS, "a", limits, existing={"intro"})
    admit(store, MOODLE, "b", limits, existing={"intro", "a"})
    with pytest.raises(CreationRefused) as refused:
        # the operator's own course (intro) does not count, both launch-made ones do
        admit(store, CANVAS, "c", limits, existing={"intro", "a", "b"})
    assert refused.value.status == 403 and refused.value.retry_after is None
    assert "2 course(s) created from LMS launches" in refused.value.message
    assert "auth.course_creation.max_courses: 2" in refused.value.message
    # the operator removed course a: there is room again
    admit(store, CANVAS, "c", limits, existing={"intro", "b"})


def test_the_same_course_counts_once(tmp_path):
    """Two launches from the same new context at once make one course: one record."""
    store = CourseCreations(tmp_path / "c.sqlite")
    limits = CreationLimits(per_hour=1, max_courses=1)
    admit(store, CANVAS, "bio", limits)
    admit(store, CANVAS, "bio", limits, now=T0 + 1)
    assert store.courses() == {"bio": CANVAS}


def test_a_creation_that_did_not_happen_is_forgotten(tmp_path):
    store = CourseCreations(tmp_path / "c.sqlite")
    admit(store, CANVAS, "bio", CreationLimits(1, 5))
    store.forget("bio")
    admit(store, CANVAS, "chem", CreationLimits(1, 5), now=T0 + 1)


@pytest.mark.parametrize("limits", [CreationLimits(0, 10), CreationLimits(10, 0)])
def test_zero_turns_creation_from_launches_off(tmp_path, limits):
    with pytest.raises(CreationRefused) as refused:
        admit(CourseCreations(tmp_path / "c.sqlite"), CANVAS, "bio", limits)
    assert refused.value.status == 403
    assert "creates no courses from LMS launches" in refused.value.message


def test_the_limits_from_the_plan_with_defaults():
    assert CreationLimits.of(PlanAuth("lti11")) == CreationLimits(10, 200)
    assert CreationLimits.of(PlanAuth("lti11", courses_per_hour=3)) == CreationLimits(3, 200)
    # a plan.json written before the typed auth section reads the same
    old = PlanAuth.from_dict({"type": "lti11", "course_creation": {"per_hour": 3}})
    assert CreationLimits.of(old) == CreationLimits(3, 200)


# -- the site file


def lti11(**auth):
    return two_course_data({"type": "lti11", "consumer_key": "k", **auth})


def problems(data) -> list[str]:
    with pytest.raises(SiteError) as err:
        parse_site(data)
    return err.value.problems


def test_course_creation_in_the_site_and_the_plan():
    site = parse_site(lti11(course_creation={"per_hour": 3, "max_courses": 40}))
    assert (site.auth.courses_per_hour, site.auth.max_launch_courses) == (3, 40)
    assert parse_site(site_to_data(site)).auth == site.auth
    plan = derive(site, DATA_DIR, isolated=True)
    assert (plan.auth.courses_per_hour, plan.auth.max_launch_courses) == (3, 40)
    default = parse_site(lti11())
    assert (default.auth.courses_per_hour, default.auth.max_launch_courses) == (10, 200)
    assert "course_creation" not in site_to_data(default)["auth"]  # defaults are not written


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"per_hour": -1}, "auth.course_creation.per_hour: -1 is out of range"),
        ({"max_courses": "many"}, "auth.course_creation.max_courses: must be an integer, got str"),
        ({"per_hour": True}, "auth.course_creation.per_hour: must be an integer, got bool"),
        ({"per_hour": 2.5}, "auth.course_creation.per_hour: must be an integer, got float"),
        ({"per_day": 3}, "auth.course_creation: unknown key 'per_day'; allowed keys here are"),
    ],
)
def test_course_creation_mistakes_are_named(value, expected):
    found = problems(lti11(course_creation=value))
    assert any(p.startswith(expected) for p in found), found


def test_course_creation_is_for_lms_launches_only():
    data = two_course_data({"type": "first-use", "course_creation": {"per_hour": 3}})
    [problem] = problems(data)
    assert problem.startswith("auth.course_creation: belongs to auth type")
