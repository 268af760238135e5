"""The hub's config for LMS launches, and the authenticator built from it."""

from __future__ import annotations

import json
import stat

import pytest
from sites import DATA_DIR, two_course_data

from coursehub.hub.config import hub_config
from coursehub.hub.lti import CourseLTI11Authenticator
from coursehub.lti.credentials import (
    CredentialsError,
    load_lti_credentials,
    lti11_credentials,
    store_lti_credentials,
)
from coursehub.plan import PlanAuth, derive
from coursehub.site import parse_site

SECRET = "lms-shared-secret-0123456789abcdef"


def lti11_site(**auth):
    return parse_site(two_course_data({"type": "lti11", **auth}))


def test_authenticator_from_the_hub_config(tmp_path, fake_secrets):
    site = lti11_site(consumer_key="lms", shared_secret=SECRET, contexts={"c1": "algebra"})
    plan = derive(site, DATA_DIR, isolated=True)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    creds = {"consumer_key": "lms", "shared_secret": SECRET}
    c = hub_config(plan, str(plan_file), fake_secrets, "/opt/env", lti_credentials=creds)
    assert c.JupyterHub.authenticator_class == "coursehub.hub.lti.CourseLTI11Authenticator"
    auth = CourseLTI11Authenticator(config=c)
    assert auth.consumers == {"lms": SECRET}
    assert auth.username_key == "user_id"  # never a custom parameter
    assert auth.nonce_db == f"{DATA_DIR}/state/lti-nonces.sqlite"
    assert auth.plan_file == str(plan_file)
    assert auth.creations_db == f"{DATA_DIR}/state/lti-course-creations.sqlite"
    assert plan.auth == PlanAuth("lti11", contexts={"c1": "algebra"})  # creation: the defaults
    assert (plan.auth.courses_per_hour, plan.auth.max_launch_courses) == (10, 200)
    assert SECRET not in plan.to_json()
    # outside a launch, only the site file's people are allowed
    assert auth.check_allowed("sam")
    assert not auth.check_allowed("mallory")
    assert auth.check_allowed("mallory", {"name": "mallory"})  # a verified launch
    paths = {route for route, *_ in auth.get_handlers(None)}
    assert paths == {
        "/lti/launch",
        "/lti11/config",
        r"/lti/preparing/([^/]+)",
        "/login",
        "/coursehub/courses",  # new courses into the running hub (coursehub's token only)
        "/home",  # JupyterHub's home page, sent under coursehub's page policy
        "/spawn",  # and its pages where a student's launch lands
        "/spawn/([^/]+)",
        "/spawn/([^/]+)/([^/]+)",
        "/spawn-pending/([^/]+)",
        "/spawn-pending/([^/]+)/([^/]+)",
        "/coursehub/static/(.*)",  # the pages' own script and style sheet
    }


def test_credentials_from_the_site_file_win_over_the_environment():
    env = {"LTI_CONSUMER_KEY": "env-key", "LTI_SHARED_SECRET": "env-secret"}
    assert lti11_credentials(lti11_site(consumer_key="k", shared_secret=SECRET), env) == (
        "k",
        SECRET,
    )
    assert lti11_credentials(lti11_site(), env) == ("env-key", "env-secret")


def test_missing_credentials_name_both_places():
    with pytest.raises(CredentialsError, match=r"auth.shared_secret \(or LTI_SHARED_SECRET\)"):
        lti11_credentials(lti11_site(consumer_key="k"), {})


def test_credentials_are_stored_private(tmp_path):
    store_lti_credentials(
        lti11_site(), tmp_path, {"LTI_CONSUMER_KEY": "k", "LTI_SHARED_SECRET": SECRET}
    )
    path = tmp_path / "lti.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"consumer_key": "k", "shared_secret": SECRET}
    assert load_lti_credentials(tmp_path, {}) == {"consumer_key": "k", "shared_secret": SECRET}


def test_docker_host_hub_reads_its_environment(tmp_path):
    env = {"LTI_CONSUMER_KEY": "k", "LTI_SHARED_SECRET": SECRET}
    assert load_lti_credentials(tmp_path, env)["shared_secret"] == SECRET
    with pytest.raises(CredentialsError, match="LTI_CONSUMER_KEY"):
        load_lti_credentials(tmp_path, {})


def test_plan_json_keeps_the_auth_section_in_the_shape_every_version_reads():
    """A hub still running the coursehub before an upgrade reads the new plan.json: the
    auth section keeps its shape (course_creation as one mapping), and reads back the same."""
    from coursehub.plan import Plan

    site = lti11_site(consumer_key="lms", shared_secret=SECRET, contexts={"c1": "algebra"})
    text = derive(site, DATA_DIR, isolated=True).to_json()
    assert json.loads(text)["auth"] == {
        "type": "lti11",
        "contexts": {"c1": "algebra"},
        "course_creation": {"per_hour": 10, "max_courses": 200},
    }
    assert Plan.from_json(text).auth == PlanAuth("lti11", contexts={"c1": "algebra"})
