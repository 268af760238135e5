"""plandiff: what differs between two Plans, and what of it needs a hub restart and why."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys

from sites import DATA_DIR, two_course_data

from coursehub.plan import Role, derive
from coursehub.plandiff import hub_changes, hub_restart_reasons, loadable_changes, plan_differences
from coursehub.site import parse_site

EX = f"{DATA_DIR}/exchange"


def test_plandiff_imports_neither_the_targets_nor_the_hub():
    code = (
        "import sys, coursehub.plandiff; "
        "print(sorted(m for m in sys.modules if m.startswith(('coursehub.targets', 'coursehub.hub'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def plans(change, auth=None):
    """The Plan of the two-course site, and the Plan after `change` edits the site."""
    before = two_course_data(auth)
    after = copy.deepcopy(before)
    change(after)
    old = derive(parse_site(before), DATA_DIR, isolated=True)
    new = derive(parse_site(after), DATA_DIR, isolated=True, ids=old.ids)
    return old, new


def add_course(data):
    data["courses"].append(
        {"id": "chem", "title": "Chemistry", "instructors": ["ines"], "students": ["tom", "pat"]}
    )


# ---------------------------------------------------------------- the running hub


def test_identical_plans_differ_in_nothing():
    old, new = plans(lambda d: None)
    assert not hub_changes(old, new)
    assert not loadable_changes(old, new)
    assert hub_restart_reasons(old, new) == []
    assert plan_differences(old, new) == []


def test_a_new_course_is_loaded_live():
    old, new = plans(add_course)
    assert loadable_changes(old, new)  # its roles, groups and grader service
    assert hub_changes(old, new)
    assert hub_restart_reasons(old, new) == []


def test_a_new_member_changes_no_role():
    """A student added to a course is a roster change: the course's group and the
    course's students differ, and nothing the hub loads itself or at a start."""
    for name, student in (("someone already listed", "tom"), ("someone new", "zoe")):
        old, new = plans(lambda d, s=student: d["courses"][0]["students"].append(s))
        assert not hub_changes(old, new), name
        assert not loadable_changes(old, new), name
        assert hub_restart_reasons(old, new) == [], name
        diffs = plan_differences(old, new)
        assert "course algebra: students differ" in diffs, name
        assert "group nbgrader-algebra differs" in diffs, name
        assert f"folder {EX}/algebra/inbound/{student} is missing" in diffs, name


def test_what_a_hub_reads_at_start_only_restarts_it():
    def drop_biology(d):
        d["courses"] = d["courses"][:1]

    def new_admin(d):
        d["admins"] = ["ada", "pat"]

    def new_login(d):
        d["auth"] = {"type": "first-use", "min_password_length": 12}

    for change, reason in [
        (drop_biology, "courses removed: biology"),
        (new_admin, "admins changed"),
        (new_login, "the login changed"),
    ]:
        old, new = plans(change)
        assert reason in hub_restart_reasons(old, new), change.__name__
        assert hub_changes(old, new)


def test_a_new_login_is_the_one_reason_to_restart():
    def longer_passwords(d):
        d["auth"] = {"type": "first-use", "min_password_length": 12}

    def shared_passwords(d):
        d["auth"] = {
            "type": "shared-password",
            "user_password": "open-sesame-user-7419",
            "admin_password": "admin-passphrase-0123456789-abcdefghij",
        }

    for change in (longer_passwords, shared_passwords):
        old, new = plans(change)
        assert hub_restart_reasons(old, new) == ["the login changed"], change.__name__
        assert not loadable_changes(old, new), change.__name__  # no role or course changes
        assert hub_changes(old, new), change.__name__
        assert plan_differences(old, new) == ["auth differs"], change.__name__


def test_a_course_removed_also_removes_its_roles_so_the_hub_restarts():
    old, new = plans(lambda d: d["courses"].pop())
    reasons = hub_restart_reasons(old, new)
    assert "role instructor-biology removed" in reasons
    assert "role grader-biology removed" in reasons


def test_an_lms_context_mapped_to_a_course_is_read_at_launch_not_at_start():
    lti = {"type": "lti11", "consumer_key": "key", "shared_secret": "s" * 32}

    def map_context(d):
        d["auth"]["contexts"] = {"ctx-1": "algebra"}

    old, new = plans(map_context, auth=lti)
    assert hub_restart_reasons(old, new) == []


# ---------------------------------------------------------------- plan.json against the derived Plan


def test_plan_drift_names_the_role_and_the_folder(plan):
    roles = tuple(
        dataclasses.replace(r, scopes=(*r.scopes, "read:users"))
        if r.name == "grader-algebra"
        else r
        for r in plan.roles
    )
    folders = tuple(
        dataclasses.replace(f, mode=0o755) if f.path == f"{EX}/algebra" else f for f in plan.folders
    )
    extra = Role("everything", "x", ("admin:servers",), services=("algebra",))
    drifted = dataclasses.replace(plan, roles=(*roles, extra), folders=folders)
    diffs = plan_differences(drifted, plan)
    assert "role grader-algebra has extra scopes read:users" in diffs
    assert f"folder {EX}/algebra: mode differ" in diffs
    assert "role everything is not planned" in diffs
