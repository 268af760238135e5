"""doctor's pure helpers: folders, secrets, versions, scopes, services and plan drift."""

from __future__ import annotations

import dataclasses
import os

import pytest
from sites import DATA_DIR, two_course_data

from coursehub.doctor import reference_plan
from coursehub.doctor.checks import Context, check_instructors, seen
from coursehub.doctor.compare import (
    IMPLICIT_SERVICE_SCOPES,
    Names,
    Seen,
    check_secret_file,
    compare_file,
    compare_folder,
    compare_scopes,
    compare_services,
    compare_versions,
    creator_of,
    expand_scopes,
    exposed,
    missing_secrets,
    planned_scopes,
    site_from_plan,
)
from coursehub.plan import Plan, derive
from coursehub.plandiff import plan_differences
from coursehub.site import parse_site

EX = f"{DATA_DIR}/exchange"


def folder(plan: Plan, path: str):
    return next(f for f in plan.folders if f.path == path)


def as_planned(f) -> Seen:
    return Seen(f.uid, f.gid, f.mode, "folder")


# ---------------------------------------------------------------- folders


def test_a_folder_as_planned_is_no_problem(plan):
    names = Names(plan)
    for f in plan.folders:
        assert compare_folder(f, as_planned(f), names, "x") == []


def test_grader_home_open_to_others_names_mode_and_fix(plan):
    home = folder(plan, f"{DATA_DIR}/graders/algebra")
    [p] = compare_folder(home, Seen(home.uid, home.gid, 0o755, "folder"), Names(plan), "")
    assert p.check == "folders"
    assert home.path in p.what and "755 instead of 700" in p.what
    assert "everyone may list and enter it" in p.what
    assert p.fix.startswith(f"chmod 700 {home.path}")


def test_exchange_folder_owned_by_root_names_owners_and_fix(plan):
    ex = folder(plan, f"{EX}/algebra")
    [p] = compare_folder(ex, Seen(0, 0, ex.mode, "folder"), Names(plan), "")
    assert "owned by root:root instead of grader-algebra:course-algebra" in p.what
    assert p.fix.startswith(f"chown {ex.uid}:{ex.gid} {ex.path}")
    assert "chmod" not in p.fix


def test_owner_and_mode_both_wrong_give_one_problem_with_both_fixes(plan):
    home = plan.home_folder("sam")
    [p] = compare_folder(home, Seen(0, 0, 0o755, "folder"), Names(plan), "", "the spawner")
    assert "root:root instead of sam:sam" in p.what and "755 instead of 700" in p.what
    assert p.fix.startswith(
        f"chown {home.uid}:{home.gid} {home.path} && chmod 700 {home.path}  (or the spawner)"
    )


def test_setgid_that_the_plan_lacks_is_cleared_with_a_leading_zero(plan):
    out = folder(plan, f"{EX}/algebra/outbound")
    [p] = compare_folder(out, Seen(out.uid, out.gid, 0o2750, "folder"), Names(plan), "")
    assert f"chmod 00750 {out.path}" in p.fix  # GNU chmod keeps setgid for 'chmod 750'
    inbound = folder(plan, f"{EX}/algebra/inbound/sam")
    [p] = compare_folder(inbound, Seen(inbound.uid, inbound.gid, 0o750, "folder"), Names(plan), "")
    assert f"chmod 2750 {inbound.path}" in p.fix


def test_missing_folder_names_who_would_make_it_and_how_to_make_it(plan):
    out = folder(plan, f"{EX}/algebra/outbound")
    creator = creator_of(plan, out.path)
    assert "grader-algebra" in creator and "2733" in creator
    [p] = compare_folder(out, None, Names(plan), creator)
    assert "missing" in p.what and creator in p.what
    assert p.fix.startswith(f"install -d -o {out.uid} -g {out.gid} -m 0750 {out.path}")


def test_creators_of_missing_folders():
    plan = derive(parse_site(two_course_data()), DATA_DIR, isolated=True)
    assert "cannot make it" in creator_of(plan, f"{EX}/biology")
    assert "tom's submissions to biology fail" in creator_of(plan, f"{EX}/biology/inbound/tom")
    assert "cannot start" in creator_of(plan, f"{DATA_DIR}/graders/biology")
    assert "default mode" in creator_of(plan, f"{DATA_DIR}/graders/biology/biology")
    assert "release_feedback" in creator_of(plan, f"{EX}/.feedback/tom/biology/feedback")


def test_a_file_where_a_folder_belongs(plan):
    f = folder(plan, f"{EX}/algebra")
    [p] = compare_folder(f, Seen(0, 0, 0o644, "symlink"), Names(plan), "")
    assert "is a symlink, not a folder" in p.what and p.fix.startswith("move it away")


def test_exposed():
    assert exposed(Seen(0, 0, 0o755, "folder"))
    assert exposed(Seen(0, 0, 0o711, "folder"))  # others may enter it
    assert not exposed(Seen(0, 0, 0o750, "folder"))
    assert exposed(Seen(0, 0, 0o644, "file"))
    assert not exposed(Seen(0, 0, 0o711, "file"))


def test_seen_reads_lstat(tmp_path):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(d)
    assert seen(d) == Seen(os.getuid(), os.getgid(), 0o700, "folder")
    assert seen(tmp_path / "link").kind == "symlink"
    assert seen(tmp_path / "nothing") is None


def test_planned_files(plan):
    names = Names(plan)
    passwd = next(f for f in plan.files if f.path == plan.passwd_file("sam"))
    gid = plan.people["sam"].account.gid
    assert compare_file(passwd, Seen(0, gid, 0o640, "file"), names) == []
    [p] = compare_file(passwd, Seen(0, gid, 0o666, "file"), names)
    assert p.check == "files" and "666 instead of 640" in p.what and "others may change" in p.what
    assert p.fix == f"chmod 640 {passwd.path}"
    [p] = compare_file(passwd, None, names)
    assert "missing" in p.what and "coursehub up" in p.fix


# ---------------------------------------------------------------- secrets


def test_secret_file_readable_by_others():
    [p] = check_secret_file("/d/secrets/secrets.json", Seen(0, 0, 0o644, "file"), 0)
    assert p.check == "secrets" and "mode 644" in p.what and "others can read it" in p.what
    assert p.fix.startswith("chmod 600 /d/secrets/secrets.json")
    assert check_secret_file("/d/secrets/secrets.json", Seen(0, 0, 0o600, "file"), 0) == []


def test_secret_file_of_another_owner():
    [p] = check_secret_file("/d/secrets/x", Seen(1000, 0, 0o600, "file"), 0)
    assert "uid 1000" in p.what and p.fix == "chown 0 /d/secrets/x"


def test_missing_secrets():
    assert missing_secrets({"cookie_secret": "x"}, ["a"]) == [
        "crypt_key",
        "proxy_auth_token",
        "automation_token",
        "service_token:a",
    ]


# ---------------------------------------------------------------- courses


def test_course_without_instructors():
    data = two_course_data()
    data["courses"][1]["instructors"] = []
    plan = derive(parse_site(data), DATA_DIR, isolated=True)
    ctx = Context(inst=None, plan=plan, stored=plan, running=False, note=print)
    [p] = check_instructors(ctx)
    assert p.check == "instructors" and "'biology'" in p.what and "instructors" in p.fix


# ---------------------------------------------------------------- versions


def test_versions_equal_are_no_problem():
    ours = {"jupyterhub": "6.1.1", "nbgrader": "0.9.6"}
    assert compare_versions(ours, dict(ours), "/env") == []


def test_versions_that_differ_or_are_missing():
    ours = {"jupyterhub": "6.1.1", "nbgrader": "0.9.6"}
    problems = compare_versions(ours, {"jupyterhub": "5.0.0", "nbgrader": None}, "/env")
    assert [p.check for p in problems] == ["versions", "versions"]
    assert "jupyterhub is 5.0.0 in the servers' environment /env and 6.1.1" in problems[0].what
    assert "nbgrader is missing from the servers' environment /env" in problems[1].what
    assert all("make setup" in p.fix for p in problems)


# ---------------------------------------------------------------- scopes

# What JupyterHub 6.1 answered on GET /hub/api/user for grader service 'algebra'.
GRADER_ALGEBRA_SCOPES = [
    "groups!group=nbgrader-algebra",
    "list:groups!group=nbgrader-algebra",
    "read:groups!group=nbgrader-algebra",
    "read:groups:name!group=nbgrader-algebra",
    "read:users:groups!user=grader-algebra",
]


def test_hub_adds_no_scope_of_its_own_to_service_tokens():
    # measured on JupyterHub 6.1: a service token holds exactly its roles' scopes
    assert not IMPLICIT_SERVICE_SCOPES


def test_planned_scopes_of_a_grader_service_expand_as_the_hub_does(plan):
    planned = planned_scopes(plan, "algebra")
    assert planned == {
        "read:users:groups!user=grader-algebra",
        "list:groups!group=nbgrader-algebra",
        "groups!group=nbgrader-algebra",
    }
    assert expand_scopes(planned) == set(GRADER_ALGEBRA_SCOPES)
    assert compare_scopes("algebra", GRADER_ALGEBRA_SCOPES, expand_scopes(planned), "r") == []


def test_automation_scopes_expand(plan):
    expanded = expand_scopes(planned_scopes(plan, "coursehub"))
    assert {"admin:users", "read:users", "delete:users", "list:services"} <= expanded
    assert "admin:servers" not in expanded and "inherit" not in expanded


def test_a_token_with_more_scopes_than_planned(plan):
    planned = expand_scopes(planned_scopes(plan, "algebra"))
    # the hub drops 'read:users:groups!user=grader-algebra': 'read:users' covers it
    observed = sorted(
        (set(GRADER_ALGEBRA_SCOPES) - {"read:users:groups!user=grader-algebra"})
        | expand_scopes({"read:users"})
    )
    [p] = compare_scopes("algebra", observed, planned, "grader-algebra")
    assert p.check == "tokens" and "'algebra'" in p.what and "beyond" in p.what
    assert "read:users, read:users:activity, read:users:groups, read:users:name" in p.what


def test_a_token_lacking_planned_scopes(plan):
    planned = expand_scopes(planned_scopes(plan, "algebra"))
    [p] = compare_scopes("algebra", GRADER_ALGEBRA_SCOPES[:-1], planned, "grader-algebra")
    assert "lacks" in p.what and "read:users:groups!user=grader-algebra" in p.what


# ---------------------------------------------------------------- services


def hub_services(plan: Plan) -> dict:
    out = {"coursehub": {"name": "coursehub", "url": "", "prefix": ""}}
    for cid, g in plan.courses.items():
        out[cid] = {"name": cid, "url": g.url, "prefix": g.prefix}
    return out


def test_services_as_planned(plan):
    assert compare_services(plan, hub_services(plan)) == []


def test_service_missing_misplaced_or_stray(plan):
    services = hub_services(plan)
    del services["algebra"]
    services["biology"]["url"] = "http://127.0.0.1:1"
    services["Biology"] = {"name": "Biology", "url": "http://x"}
    problems = compare_services(plan, services)
    assert [p.check for p in problems] == ["services"] * 3
    assert "no service named 'algebra'" in problems[0].what
    assert "'biology' points at 'http://127.0.0.1:1'" in problems[1].what
    assert "service 'Biology' that is neither a course" in problems[2].what


# ---------------------------------------------------------------- the plan


def test_a_plan_derives_again_to_itself_through_json(plan):
    stored = Plan.from_json(plan.to_json())  # plan.json sorts its keys
    again = derive(site_from_plan(stored), DATA_DIR, isolated=True, ids=stored.ids)
    assert plan_differences(stored, again) == []
    assert plan_differences(stored, reference_plan(stored)) == []


AUTH_SECTIONS = {
    "first-use": {"type": "first-use", "min_password_length": 11},
    "shared-password": {
        "type": "shared-password",
        "user_password": "open-sesame-user-7419",
        "admin_password": "admin-passphrase-0123456789-abcdefghij",
    },
    "lti11": {
        "type": "lti11",
        "consumer_key": "lms-key",
        "shared_secret": "lms-secret-0123456789abcdef",
        "contexts": {"ctx-1": "algebra"},
    },
    "lti13": {
        "type": "lti13",
        "issuer": "https://lms.example.edu",
        "client_id": "10000000000042",
        "jwks_url": "https://lms.example.edu/jwks",
        "authorize_url": "https://lms.example.edu/authorize",
        "token_url": "https://lms.example.edu/token",
        "contexts": {"ctx-1": "algebra", "ctx-2": "biology"},
        "deployment_ids": ["1:abc", "2:def"],
    },
}


@pytest.mark.parametrize("auth_type", sorted(AUTH_SECTIONS))
def test_every_auth_type_derives_again_to_itself_without_the_site_file(auth_type):
    """doctor without --site rebuilds the site from plan.json: a healthy installation of
    any auth type is not reported as drifted."""
    data = two_course_data(AUTH_SECTIONS[auth_type])
    # course members who are not repeated under people, as a site file may have them
    data["people"] = ["pat"]
    original = derive(parse_site(data), DATA_DIR, isolated=True)
    stored = Plan.from_json(original.to_json())
    again = derive(site_from_plan(stored), DATA_DIR, isolated=True, ids=stored.ids)
    assert stored.auth.type == auth_type
    assert plan_differences(stored, again) == []


def test_numbers_that_mean_two_things_are_problems(plan):
    from coursehub.doctor.compare import identity_overlaps

    assert identity_overlaps(plan, lambda n: False) == []
    sam = plan.people["sam"].account.uid
    [p] = identity_overlaps(plan, lambda n: n == sam)
    assert p.check == "ids" and f"number {sam} of person sam" in p.what
    clash = dataclasses.replace(
        plan, ids=dataclasses.replace(plan.ids, groups={**plan.ids.groups, "algebra": sam})
    )
    [p] = identity_overlaps(clash, lambda n: False)
    assert "person sam and group course-algebra" in p.what


def test_a_site_file_with_a_secret_readable_by_others_is_a_problem(tmp_path):
    from coursehub.doctor.checks import site_file_problems

    data = two_course_data(
        {"type": "lti11", "consumer_key": "k", "shared_secret": "0123456789abcdef0123"}
    )
    path = tmp_path / "site.yaml"
    path.write_text(__import__("yaml").safe_dump(data))
    path.chmod(0o644)
    [p] = site_file_problems(str(path))
    assert p.check == "site-file" and "mode 644" in p.what and p.fix.startswith("chmod 600")
    path.chmod(0o600)
    assert site_file_problems(str(path)) == []
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    [p] = site_file_problems(str(link))
    assert "symbolic link" in p.what
