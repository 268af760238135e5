"""derive(): users, groups, roles, scopes, uids, folders and files of one site."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

import pytest
from sites import ADMIN_PASSWORD, DATA_DIR, HUB_PORT, USER_PASSWORD, shared_password_data
from sites import two_course_data as sample_data

from coursehub.ids import COURSE_GID_BASE, GRADER_UID_BASE, PERSON_UID_BASE
from coursehub.plan import Plan, PlanAuth, derive, server_config_json
from coursehub.site import parse_site

COURSES = ("algebra", "biology")
PEOPLE = ("ada", "ines", "sam", "tom", "pat")


def folder(plan: Plan, path: str):
    (found,) = [f for f in plan.folders if f.path == path]
    return found


def file(plan: Plan, path: str):
    (found,) = [f for f in plan.files if f.path == path]
    return found


def course_gid(plan: Plan, course_id: str) -> int:
    return plan.courses[course_id].account.groups[0]


# Groups.


def test_groups_hold_students_and_instructors_plus_grader(plan):
    assert plan.groups == {
        "nbgrader-algebra": ("sam",),
        "formgrade-algebra": ("ines", "grader-algebra"),
        "nbgrader-biology": ("sam", "tom"),
        "formgrade-biology": ("ines", "grader-biology"),
    }


# Accounts and ids.


def test_every_account_has_a_distinct_uid(plan):
    accounts = [p.account for p in plan.people.values()] + [
        g.account for g in plan.courses.values()
    ]
    assert len(accounts) == len(PEOPLE) + len(COURSES)
    assert len({a.uid for a in accounts}) == len(accounts)


def test_graders_get_uids_from_10001_and_people_from_20001(plan):
    assert sorted(g.account.uid for g in plan.courses.values()) == [
        GRADER_UID_BASE,
        GRADER_UID_BASE + 1,
    ]
    assert GRADER_UID_BASE == 10001
    assert PERSON_UID_BASE == 20001
    assert sorted(p.account.uid for p in plan.people.values()) == list(
        range(20001, 20001 + len(PEOPLE))
    )
    assert plan.courses["algebra"].account.name == "grader-algebra"


def test_each_grader_primary_gid_is_its_uid_and_it_is_in_its_course_group(plan):
    for cid, g in plan.courses.items():
        assert g.account.gid == g.account.uid
        assert g.account.groups == (course_gid(plan, cid),)
    assert {course_gid(plan, c) for c in COURSES} == {COURSE_GID_BASE, COURSE_GID_BASE + 1}


def test_people_get_exactly_the_gids_of_their_courses(plan):
    algebra, biology = course_gid(plan, "algebra"), course_gid(plan, "biology")
    assert set(plan.people["sam"].account.groups) == {algebra, biology}
    assert plan.people["tom"].account.groups == (biology,)
    assert set(plan.people["ines"].account.groups) == {algebra, biology}
    assert plan.people["pat"].account.groups == ()
    assert plan.people["ada"].account.groups == ()
    for p in plan.people.values():
        assert p.account.gid == p.account.uid


def test_people_homes_and_admin_flag(plan):
    assert plan.people["sam"].account.home == f"{DATA_DIR}/homes/sam"
    assert plan.people["ada"].admin is True
    assert not any(plan.people[n].admin for n in ("ines", "sam", "tom", "pat"))
    assert plan.admins == ("ada",)


# Environments and extensions.


def test_environments_follow_the_course_roles(plan):
    assert plan.people["ines"].environment == "instructor"
    assert plan.people["sam"].environment == "student"
    assert plan.people["tom"].environment == "student"
    assert plan.people["pat"].environment == "standard"
    assert plan.people["ada"].environment == "standard"
    assert plan.people["sam"].config_dir == f"{DATA_DIR}/etc/jupyter/roles/student"
    assert plan.people["tom"].courses == {"biology": "student"}


def test_student_extensions(plan):
    student = plan.extensions["student"]
    ext = student["jpserver_extensions"]
    assert ext["nbgrader.server_extensions.formgrader"] is False
    assert ext["nbgrader.server_extensions.course_list"] is False
    assert ext["nbgrader.server_extensions.assignment_list"] is True
    assert ext["nbgrader.server_extensions.validate_assignment"] is True
    # the Assignments panel opens on the launched course; it sorts before nbgrader, so
    # Jupyter Server (alphabetical load order) routes GET /courses to it first
    assert ext["coursehub.launched_course"] is True
    assert "coursehub.launched_course" < "nbgrader.server_extensions.assignment_list"
    disabled = student["disabled_lab_plugins"]
    assert "@jupyter/nbgrader:formgrader" in disabled
    assert "@jupyter/nbgrader:create-assignment" in disabled
    assert "@jupyter/nbgrader:assignment-list" not in disabled


def test_instructor_extensions(plan):
    ext = plan.extensions["instructor"]["jpserver_extensions"]
    assert ext["nbgrader.server_extensions.course_list"] is True
    assert ext["nbgrader.server_extensions.formgrader"] is False
    assert "@jupyter/nbgrader:formgrader" in plan.extensions["instructor"]["disabled_lab_plugins"]


def test_grader_extensions(plan):
    grader = plan.extensions["grader"]
    ext = grader["jpserver_extensions"]
    assert ext["nbgrader.server_extensions.formgrader"] is True
    assert ext["nbgrader.server_extensions.assignment_list"] is False
    assert ext["coursehub.launched_course"] is False
    assert "@jupyter/nbgrader:formgrader" not in grader["disabled_lab_plugins"]
    assert "@jupyter/nbgrader:create-assignment" not in grader["disabled_lab_plugins"]


def test_standard_environment_has_every_nbgrader_piece_off(plan):
    standard = plan.extensions["standard"]
    assert not any(standard["jpserver_extensions"].values())
    assert len(standard["disabled_lab_plugins"]) == 6  # nbgrader's five and Lab's news


# Scopes and roles.


def test_student_token_scopes_cannot_see_services_or_act_as_admin(plan):
    scopes = plan.people["sam"].server_token_scopes
    assert not any(s.startswith(("list:services", "read:services")) for s in scopes)
    assert not any(s.startswith("admin") for s in scopes)
    assert "inherit" not in scopes


def test_instructor_token_scopes_name_their_grader_services(plan):
    scopes = plan.people["ines"].server_token_scopes
    assert "list:services!service=algebra" in scopes
    assert "read:services!service=algebra" in scopes
    assert "list:services!service=biology" in scopes
    assert "read:services!service=biology" in scopes
    assert not any(s.startswith("admin") or s == "inherit" for s in scopes)
    # only filtered service scopes, never all services
    assert "list:services" not in scopes
    assert "read:services" not in scopes


def test_no_role_has_admin_or_inherit(plan):
    """No admin scope anywhere, but admin:users on coursehub's own token: roster
    changes create hub users (JupyterHub refuses it the grant of admin rights)."""
    for role in plan.roles:
        for scope in role.scopes:
            if role.name == "coursehub-automation" and scope == "admin:users":
                continue
            assert not scope.startswith("admin"), (role.name, scope)
            assert scope != "inherit", role.name


def test_grader_service_role_has_only_filtered_scopes(plan):
    (role,) = [r for r in plan.roles if r.services == ("algebra",)]
    assert role.name == "grader-algebra"
    assert role.scopes
    assert all("!" in s for s in role.scopes), role.scopes
    assert "groups!group=nbgrader-algebra" in role.scopes
    assert not any("biology" in s for s in role.scopes)


def test_instructor_role_is_given_to_the_formgrade_group(plan):
    (role,) = [r for r in plan.roles if r.name == "instructor-biology"]
    assert role.groups == ("formgrade-biology",)
    assert "access:services!service=biology" in role.scopes
    assert role.users == ()
    assert role.services == ()


def test_role_to_hub_gives_lists(plan):
    hub = plan.roles[-1].to_hub()
    assert set(hub) == {"name", "description", "scopes", "users", "groups", "services"}
    assert isinstance(hub["scopes"], list)
    assert isinstance(hub["services"], list)


# Ports and URLs.


def test_ports(plan):
    assert plan.ports.public == HUB_PORT
    ports = [g.port for g in plan.courses.values()]
    assert len(set(ports)) == len(ports)
    assert all(port > HUB_PORT + 2 for port in ports)
    used = [plan.ports.public, plan.ports.proxy_api, plan.ports.hub, *ports]
    assert len(set(used)) == len(used)
    assert plan.courses["algebra"].url == f"http://127.0.0.1:{plan.courses['algebra'].port}"
    assert plan.courses["algebra"].prefix == "/services/algebra/"
    assert plan.hub_api_url == f"http://127.0.0.1:{plan.ports.hub}/hub/api"


def test_port_purposes(plan):
    ports = plan.port_purposes()
    assert ports[plan.ports.hub] == "the hub (hub.port + 2)"
    assert ports[plan.courses["biology"].port] == "the grader server of biology"
    assert len(ports) == 3 + len(plan.courses)


# Folders.


def test_private_folders(plan):
    assert folder(plan, f"{DATA_DIR}/homes").mode == 0o711
    assert folder(plan, f"{DATA_DIR}/secrets").mode == 0o700
    for g in plan.courses.values():
        home = folder(plan, g.account.home)
        assert home.mode == 0o700
        assert (home.uid, home.gid) == (g.account.uid, g.account.gid)


def test_exchange_folders_belong_to_the_course_group(plan):
    for cid in COURSES:
        grader = plan.courses[cid].account
        inbound = folder(plan, f"{DATA_DIR}/exchange/{cid}/inbound")
        outbound = folder(plan, f"{DATA_DIR}/exchange/{cid}/outbound")
        assert inbound.mode == 0o710  # members traverse; nobody but the grader lists
        assert outbound.mode == 0o750
        for f in (inbound, outbound):
            assert f.gid == course_gid(plan, cid)
            assert f.uid == grader.uid


def test_each_student_submits_into_a_folder_of_their_own(plan):
    """inbound/{student}: owned by the student, readable by the grader's group only."""
    for cid, g in plan.courses.items():
        per_student = {
            f.path.rsplit("/", 1)[1]: f
            for f in plan.folders
            if f.path.startswith(f"{DATA_DIR}/exchange/{cid}/inbound/")
        }
        assert sorted(per_student) == sorted(g.students)
        for name, f in per_student.items():
            assert f.uid == plan.people[name].account.uid
            assert f.gid == g.account.gid  # the grader's private group, nobody else's
            assert f.mode == 0o2750


def test_no_folder_is_world_writable(plan):
    for f in plan.folders:
        assert f.mode & 0o002 == 0, (f.path, oct(f.mode))


def test_nothing_under_graders_is_reachable_by_others(plan):
    """No folder under graders/ can be read by others.

    A folder that is itself world-readable (the root-owned config folder, so the
    grader can read but not change it) must sit inside a grader home that others
    cannot enter.
    """
    graders = f"{DATA_DIR}/graders/"
    modes = {f.path: f.mode for f in plan.folders}
    for f in plan.folders:
        if not f.path.startswith(graders):
            continue
        if f.mode & 0o004 == 0:
            continue
        parents = []
        p = posixpath.dirname(f.path)
        while p.startswith(graders):
            parents.append(p)
            p = posixpath.dirname(p)
        assert any(p in modes and modes[p] & 0o001 == 0 for p in parents), (
            f"{f.path} ({oct(f.mode)}) is readable by others"
        )


def test_folders_come_outermost_first(plan):
    seen: set[str] = set()
    for f in plan.folders:
        parent = posixpath.dirname(f.path)
        if parent.startswith(DATA_DIR):
            assert parent in seen, f"{f.path} comes before its parent"
        seen.add(f.path)


# Files.


def test_nbgrader_layer1_names_no_course(plan):
    (layer1,) = [f for f in plan.files if f.path.endswith("etc/jupyter/nbgrader_config.py")]
    assert layer1.path == f"{DATA_DIR}/etc/jupyter/nbgrader_config.py"
    assert "JupyterHubAuthPlugin" in layer1.content
    assert "path_includes_course = True" in layer1.content
    assert f"c.Exchange.root = '{DATA_DIR}/exchange'" in layer1.content
    assert "course_id" not in layer1.content
    assert layer1.mode == 0o644
    compile(layer1.content, layer1.path, "exec")


def test_nbgrader_layer2_sets_the_course_of_each_grader(plan):
    for cid, g in plan.courses.items():
        layer2 = file(plan, f"{g.account.home}/.jupyter/nbgrader_config.py")
        assert f"c.CourseDirectory.root = '{g.course_root}'" in layer2.content
        assert f"c.CourseDirectory.course_id = '{cid}'" in layer2.content
        assert layer2.overwrite is True
        compile(layer2.content, layer2.path, "exec")


def test_nbgrader_layer3_is_written_once_and_owned_by_the_grader(plan):
    for g in plan.courses.values():
        layer3 = file(plan, f"{g.course_root}/nbgrader_config.py")
        assert layer3.overwrite is False
        assert layer3.uid == g.account.uid
        compile(layer3.content, layer3.path, "exec")


def test_passwd_file_has_one_line_per_account(plan):
    passwd = file(plan, f"{DATA_DIR}/etc/passwd")
    lines = passwd.content.splitlines()
    by_name = {line.split(":")[0]: line.split(":") for line in lines}
    assert len(lines) == len(by_name) == len(PEOPLE) + len(COURSES)
    for name, person in plan.people.items():
        assert int(by_name[name][2]) == person.account.uid
        assert by_name[name][5] == person.account.home
    for g in plan.courses.values():
        assert int(by_name[g.account.name][2]) == g.account.uid


def test_group_file_lists_course_members(plan):
    group = file(plan, f"{DATA_DIR}/etc/group")
    (line,) = [x for x in group.content.splitlines() if x.startswith("course-biology:")]
    assert line == f"course-biology:x:{course_gid(plan, 'biology')}:grader-biology,ines,sam,tom"


def test_environment_config_files(plan):
    server = file(plan, f"{DATA_DIR}/etc/jupyter/roles/student/jupyter_server_config.json")
    on_off = json.loads(server.content)["ServerApp"]["jpserver_extensions"]
    assert on_off == plan.extensions["student"]["jpserver_extensions"]
    page = file(plan, f"{DATA_DIR}/etc/jupyter/roles/student/labconfig/page_config.json")
    assert set(json.loads(page.content)["disabledExtensions"]) == set(
        plan.extensions["student"]["disabled_lab_plugins"]
    )


# Stability of ids.


def test_ids_stay_when_people_and_courses_are_added(plan):
    data = sample_data()
    data["people"].insert(0, "aaron")
    data["courses"].insert(0, {"id": "chemistry", "instructors": ["ines"], "students": ["aaron"]})
    again = derive(parse_site(data), DATA_DIR, isolated=True, ids=plan.ids)
    for name in PEOPLE:
        assert again.people[name].account.uid == plan.people[name].account.uid
    for cid in COURSES:
        assert again.ids.courses[cid] == plan.ids.courses[cid]
        assert again.courses[cid].account.uid == plan.courses[cid].account.uid
        assert again.courses[cid].port == plan.courses[cid].port
        assert course_gid(again, cid) == course_gid(plan, cid)
    assert again.people["aaron"].account.uid == PERSON_UID_BASE + len(PEOPLE)
    assert again.ids.courses["chemistry"] == len(COURSES)
    assert again.courses["chemistry"].account.uid == GRADER_UID_BASE + len(COURSES)


def test_removed_course_keeps_its_slot_reserved(plan):
    data = sample_data()
    data["courses"] = [c for c in data["courses"] if c["id"] != "algebra"]
    without = derive(parse_site(data), DATA_DIR, isolated=True, ids=plan.ids)
    assert "algebra" not in without.courses
    assert without.ids.courses["algebra"] == plan.ids.courses["algebra"]
    assert without.courses["biology"].port == plan.courses["biology"].port

    data["courses"].append({"id": "chemistry", "instructors": ["ines"]})
    later = derive(parse_site(data), DATA_DIR, isolated=True, ids=without.ids)
    assert later.ids.courses["chemistry"] not in plan.ids.courses.values()
    assert later.courses["chemistry"].port not in {g.port for g in plan.courses.values()}
    assert later.courses["chemistry"].account.uid not in {
        g.account.uid for g in plan.courses.values()
    }


def test_removed_person_keeps_their_uid_reserved(plan):
    data = sample_data()
    data["people"].remove("pat")
    without = derive(parse_site(data), DATA_DIR, isolated=True, ids=plan.ids)
    data["people"].append("zoe")
    later = derive(parse_site(data), DATA_DIR, isolated=True, ids=without.ids)
    assert later.people["zoe"].account.uid != plan.people["pat"].account.uid


# Not isolated.


def test_not_isolated_every_account_is_the_owner(site):
    plan = derive(site, DATA_DIR, isolated=False, owner=(1234, 1234))
    assert plan.isolated is False
    accounts = [p.account for p in plan.people.values()] + [
        g.account for g in plan.courses.values()
    ]
    assert {a.uid for a in accounts} == {1234}
    assert {a.gid for a in accounts} == {1234}
    assert plan.passwd_file("sam") != plan.passwd_file("tom")
    sam_passwd = file(plan, plan.passwd_file("sam"))
    assert sam_passwd.content.startswith("sam:x:1234:1234:")
    for f in plan.folders:
        if f.path.startswith(f"{DATA_DIR}/exchange/"):
            assert f.gid == 1234


def test_each_account_resolves_only_whom_it_needs(plan):
    """No server reads the roster: a student resolves themselves and their courses'
    graders, a grader its course's members; each file is readable by its account alone."""

    def names(path: str) -> list[str]:
        return [line.split(":")[0] for line in file(plan, path).content.splitlines()]

    sam, tom = plan.people["sam"].account, plan.people["tom"].account
    assert names(plan.passwd_file("sam")) == ["sam", "grader-algebra", "grader-biology"]
    assert names(plan.passwd_file("tom")) == ["tom", "grader-biology"]
    assert names(plan.passwd_file("grader-algebra")) == ["grader-algebra", "ines", "sam"]
    assert "tom" not in names(plan.passwd_file("grader-algebra"))
    group = file(plan, plan.group_file("sam")).content.splitlines()
    assert f"course-biology:x:{course_gid(plan, 'biology')}:sam" in group
    assert not any("tom" in line for line in group)
    for name, account in (("sam", sam), ("tom", tom)):
        for path in (plan.passwd_file(name), plan.group_file(name)):
            f = file(plan, path)
            assert (f.uid, f.gid, f.mode) == (0, account.gid, 0o640)
    # the whole roster is the operator's alone, and the names of the files are not listable
    assert file(plan, f"{DATA_DIR}/etc/passwd").mode == 0o600
    assert file(plan, f"{DATA_DIR}/etc/group").mode == 0o600
    nss = next(f for f in plan.folders if f.path == f"{DATA_DIR}/etc/nss")
    assert nss.mode == 0o711


# Serialisation and input checks.


def test_plan_json_round_trip(plan):
    assert Plan.from_json(plan.to_json()) == plan


def test_plan_json_round_trip_not_isolated(site):
    plan = derive(site, DATA_DIR, isolated=False, owner=(1234, 1234))
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("data_dir", ["srv/ch-test", "./data", "", "~/data"])
def test_relative_data_dir_is_refused(site, data_dir):
    with pytest.raises(ValueError, match="absolute"):
        derive(site, data_dir, isolated=True)


def test_trailing_slash_of_data_dir_is_dropped(site):
    plan = derive(site, DATA_DIR + "/", isolated=True)
    assert plan.paths.data_dir == DATA_DIR
    assert plan.paths.homes == f"{DATA_DIR}/homes"


def test_derive_is_deterministic(site, plan):
    assert derive(site, DATA_DIR, isolated=True).to_json() == plan.to_json()


def test_plan_json_holds_no_shared_password():
    site = parse_site(shared_password_data())
    plan = derive(site, DATA_DIR, isolated=True)
    text = plan.to_json()
    assert USER_PASSWORD not in text
    assert ADMIN_PASSWORD not in text
    assert plan.auth == PlanAuth("shared-password")


def test_no_environment_asks_about_news_or_checks_for_updates(plan):
    for settings in plan.extensions.values():
        assert "@jupyterlab/apputils-extension:announcements" in settings["disabled_lab_plugins"]
        lab = json.loads(server_config_json(settings))["LabApp"]
        assert lab == {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        }


def test_each_environment_lands_on_its_workspace():
    from coursehub.workspaces import COURSE_LIST, PANELS, lab_workspace, landing_url

    assert landing_url("student") == "/lab/workspaces/coursehub-assignments"
    assert landing_url("instructor") == "/lab/workspaces/coursehub-courses"
    assert landing_url("standard") == "/lab"
    ws = lab_workspace("coursehub-courses", PANELS["coursehub-courses"])
    assert ws["data"]["layout-restorer:data"]["main"]["current"] == COURSE_LIST


def test_a_server_writes_its_own_landing_workspaces(tmp_path):
    """What coursehub.launched_course does at server start, as the person: the
    Assignments workspace always, the Courses one where the course list is on;
    a link the person left at the temporary file's name is not followed."""
    from coursehub.launched_course import COURSE_LIST_EXTENSION, landing_workspaces
    from coursehub.workspaces import write_own_workspaces

    assert landing_workspaces({}) == ["coursehub-assignments"]
    names = landing_workspaces({COURSE_LIST_EXTENSION: True})
    assert names == ["coursehub-assignments", "coursehub-courses"]
    folder = tmp_path / "workspaces"
    written = write_own_workspaces(str(folder), names)
    assert len(written) == 2
    for path in written:
        ws = json.loads(Path(path).read_text())
        assert ws["metadata"]["id"] in names
    victim = tmp_path / "victim"
    victim.write_text("keep")
    tmp = folder / f".{os.path.basename(written[0])}.tmp"
    tmp.symlink_to(victim)
    with pytest.raises(OSError):
        write_own_workspaces(str(folder), names)
    assert victim.read_text() == "keep"
