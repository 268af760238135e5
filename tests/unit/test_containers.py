"""person_container() and grader_container(): who a container runs as and what it sees.

Pure builders: no Docker engine runs here. The specs are checked against the
Plan itself: every read-write mount is a folder the account owns, every
mount is a folder its uid may enter, and nothing private is ever mounted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sites import DATA_DIR

from coursehub.containers import (
    JOVYAN_UID,
    ContainerPlanError,
    Mount,
    grader_container,
    person_container,
)
from coursehub.plan import SYSTEM, Account, Folder, Plan, derive

IMAGES = {
    "student": "myedu/notebook:student",
    "instructor": "myedu/notebook:instructor",
    "standard": "myedu/notebook:standard",
}
GRADER_IMAGE = "myedu/notebook:grader"
EX = f"{DATA_DIR}/exchange"
ETC = f"{DATA_DIR}/etc"


@pytest.fixture
def system_plan(site) -> Plan:
    """The compose target's layout: the POC's places, the same on the host and inside."""
    return derive(site, "/", isolated=True, layout=SYSTEM)


def ro(path: str) -> Mount:
    return Mount(path, path, True)


def rw(path: str) -> Mount:
    return Mount(path, path, False)


def folder(plan: Plan, path: str) -> Folder:
    """A folder the Plan makes: its layout, or a person's home (made before spawn)."""
    homes = [plan.home_folder(name) for name in plan.people]
    return next(f for f in (*plan.folders, *homes) if f.path == path)


def may(f: Folder, account: Account, bits: int) -> bool:
    """Whether the account's uid has every permission in `bits` (0o4 r, 0o2 w, 0o1 x)
    on a folder with the Plan's owner and mode, as the kernel decides it."""
    if f.uid == account.uid:
        granted = (f.mode >> 6) & 0o7
    elif f.gid == account.gid or f.gid in account.groups:
        granted = (f.mode >> 3) & 0o7
    else:
        granted = f.mode & 0o7
    return granted & bits == bits


def private_paths(plan: Plan) -> list[str]:
    p = plan.paths
    return [p.secrets, p.state, p.logs, p.run]


def test_a_student_of_two_courses_sees_only_their_own_folders(plan):
    spec = person_container(plan, "sam", IMAGES)
    assert spec.image == "myedu/notebook:student"
    assert spec.mounts == (
        rw(f"{DATA_DIR}/homes/sam"),
        ro(ETC),
        ro(f"{EX}/algebra/outbound"),
        rw(f"{EX}/algebra/inbound/sam"),
        ro(f"{EX}/biology/outbound"),
        rw(f"{EX}/biology/inbound/sam"),
        ro(f"{EX}/.feedback/sam"),
    )
    assert spec.working_dir == f"{DATA_DIR}/homes/sam"
    assert spec.command == ("jupyterhub-singleuser",)


def test_a_student_never_sees_another_students_folders_or_other_courses(plan):
    tom = person_container(plan, "tom", IMAGES)
    sources = [m.source for m in tom.mounts]
    assert sources == [
        f"{DATA_DIR}/homes/tom",
        ETC,
        f"{EX}/biology/outbound",
        f"{EX}/biology/inbound/tom",
        f"{EX}/.feedback/tom",
    ]
    for path in sources:
        assert "sam" not in path  # a classmate: neither inbound, feedback nor home
        assert "/algebra" not in path  # a course tom is not in
    # not the exchange root, a course's whole folder, inbound or nbgrader's shared feedback
    for path in (EX, f"{EX}/biology", f"{EX}/biology/inbound", f"{EX}/biology/feedback"):
        assert path not in sources
    assert f"{EX}/.feedback" not in sources


def test_an_instructor_reads_released_assignments_and_nothing_else_of_the_exchange(plan):
    spec = person_container(plan, "ines", IMAGES)
    assert spec.image == "myedu/notebook:instructor"
    assert spec.mounts == (
        rw(f"{DATA_DIR}/homes/ines"),
        ro(ETC),
        ro(f"{EX}/algebra/outbound"),
        ro(f"{EX}/biology/outbound"),
    )
    # instructors grade in the course's grader service, never with its files
    assert not any(m.source.startswith(plan.paths.graders) for m in spec.mounts)


def test_people_in_no_course_get_the_standard_image_home_and_config_only(plan):
    for name in ("pat", "ada"):
        spec = person_container(plan, name, IMAGES)
        assert spec.image == "myedu/notebook:standard"
        assert spec.mounts == (rw(f"{DATA_DIR}/homes/{name}"), ro(ETC))
        assert spec.group_add == ()


def test_no_container_takes_privileges(plan):
    specs = [person_container(plan, n, IMAGES) for n in plan.people]
    specs += [grader_container(plan, cid, GRADER_IMAGE) for cid in plan.courses]
    for spec in specs:
        assert spec.cap_drop == ("ALL",)
        assert spec.security_opt == ("no-new-privileges:true",)


def test_everyone_runs_as_their_own_uid_with_exactly_their_course_groups(plan):
    gid = {cid: plan.courses[cid].account.groups[0] for cid in plan.courses}
    expected_groups = {
        "sam": (gid["algebra"], gid["biology"]),
        "ines": (gid["algebra"], gid["biology"]),
        "tom": (gid["biology"],),
        "pat": (),
        "ada": (),
    }
    users = set()
    for name, person in plan.people.items():
        spec = person_container(plan, name, IMAGES)
        a = person.account
        assert spec.user == f"{a.uid}:{a.gid}"
        assert spec.group_add == expected_groups[name]
        uid, primary = (int(x) for x in spec.user.split(":"))
        assert uid not in (0, JOVYAN_UID) and primary != 0
        users.add(uid)
    assert len(users) == len(plan.people)  # no shared uid


@pytest.mark.parametrize("layout", ["local", "system"])
def test_every_mount_is_one_the_accounts_uid_may_use_as_the_plan_decides(layout, request):
    """Read-write only where the account owns the folder; every mounted folder
    is one its uid may at least enter; nothing private, ever."""
    plan = request.getfixturevalue("plan" if layout == "local" else "system_plan")
    etc = plan.paths.etc
    specs = [(p.account, person_container(plan, n, IMAGES)) for n, p in plan.people.items()]
    specs += [
        (g.account, grader_container(plan, cid, GRADER_IMAGE)) for cid, g in plan.courses.items()
    ]
    for account, spec in specs:
        for m in spec.mounts:
            assert m.source == m.target  # the same paths on the host and inside
            for private in private_paths(plan):
                assert not (m.source + "/").startswith(private + "/")
                assert not (private + "/").startswith(m.source + "/")
            if m.source == etc:
                continue
            f = folder(plan, m.source)
            assert may(f, account, 0o1), (account.name, m)
            if not m.read_only:
                assert f.uid == account.uid, (account.name, m)
        assert all(m.read_only for m in spec.mounts if m.source == etc)


def test_nss_wrapper_and_role_config_in_the_environment_and_no_secret(plan, fake_secrets):
    spec = person_container(plan, "sam", IMAGES)
    env = spec.environment
    assert env["USER"] == env["LOGNAME"] == "sam"
    assert env["HOME"] == f"{DATA_DIR}/homes/sam"
    assert env["LD_PRELOAD"] == "libnss_wrapper.so"
    assert env["NSS_WRAPPER_PASSWD"] == plan.passwd_file("sam") == f"{ETC}/nss/sam.passwd"
    assert env["NSS_WRAPPER_GROUP"] == plan.group_file("sam") == f"{ETC}/nss/sam.group"
    assert env["JUPYTER_CONFIG_DIR"] == plan.people["sam"].config_dir
    assert env["JUPYTER_CONFIG_DIR"] == f"{ETC}/jupyter/roles/student"
    assert env["JUPYTER_CONFIG_PATH"] == f"{ETC}/jupyter"
    # the files nss_wrapper and Jupyter read are inside a read-only mount
    for path in (env["NSS_WRAPPER_PASSWD"], env["NSS_WRAPPER_GROUP"], env["JUPYTER_CONFIG_DIR"]):
        assert any(m.read_only and path.startswith(m.source + "/") for m in spec.mounts)
    assert not set(fake_secrets.values()) & set(env.values())
    assert not any("TOKEN" in k or "SECRET" in k for k in env)


def test_the_grader_sees_its_own_course_and_its_students_feedback_only(plan, fake_secrets):
    g = plan.courses["biology"]
    spec = grader_container(plan, "biology", GRADER_IMAGE)
    assert spec.image == GRADER_IMAGE
    assert spec.user == f"{g.account.uid}:{g.account.gid}"
    assert spec.group_add == g.account.groups == (plan.ids.course_gid("biology"),)
    home = f"{DATA_DIR}/graders/biology"
    assert spec.mounts == (
        rw(home),
        ro(f"{home}/.jupyter"),  # its config is coursehub's: read-only inside too
        ro(ETC),
        rw(f"{EX}/biology"),
        rw(f"{EX}/.feedback/sam/biology"),
        rw(f"{EX}/.feedback/tom/biology"),
    )
    assert not any("algebra" in m.source for m in spec.mounts)
    assert spec.working_dir == home
    env = spec.environment
    assert env["JUPYTERHUB_USER"] == env["USER"] == "grader-biology"
    assert env["JUPYTERHUB_SERVICE_NAME"] == "biology"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/biology/"
    assert env["JUPYTER_CONFIG_DIR"] == f"{home}/.jupyter"
    assert env["NSS_WRAPPER_PASSWD"] == f"{ETC}/nss/grader-biology.passwd"
    # its token is a secret: the compose target passes it from env.service, never here
    assert "JUPYTERHUB_API_TOKEN" not in env
    assert not set(fake_secrets.values()) & set(env.values())
    assert spec.command[0] == "jupyterhub-singleuser"
    assert "--ServerApp.ip=0.0.0.0" in spec.command
    assert f"--ServerApp.port={g.port}" in spec.command  # the port of the service's URL
    assert f"--ServerApp.root_dir={home}" in spec.command


def test_the_grader_listens_on_the_port_of_its_service_url(plan):
    g = plan.courses["algebra"]
    moved = replace(
        plan, courses={**plan.courses, "algebra": replace(g, url="http://algebra:8888")}
    )
    spec = grader_container(moved, "algebra", GRADER_IMAGE)
    assert "--ServerApp.port=8888" in spec.command


def test_grader_accounts_and_unknown_names_are_refused(plan):
    with pytest.raises(ContainerPlanError, match="'grader-algebra' is a course's grader account"):
        person_container(plan, "grader-algebra", IMAGES)
    with pytest.raises(ContainerPlanError, match="'mallory' is not in the site file"):
        person_container(plan, "mallory", IMAGES)
    with pytest.raises(ContainerPlanError, match="'chemistry' is not a course"):
        grader_container(plan, "chemistry", GRADER_IMAGE)


def test_a_missing_image_names_the_environment_to_set(plan):
    images = {k: v for k, v in IMAGES.items() if k != "instructor"}
    with pytest.raises(ContainerPlanError, match=r"set images\['instructor'\]"):
        person_container(plan, "ines", images)
    assert person_container(plan, "sam", images).image == IMAGES["student"]


def test_a_plan_without_one_uid_per_account_is_refused(site):
    shared = derive(site, DATA_DIR, isolated=False, owner=(1000, 1000))
    with pytest.raises(ContainerPlanError, match="one uid per account"):
        person_container(shared, "sam", IMAGES)
    with pytest.raises(ContainerPlanError, match="one uid per account"):
        grader_container(shared, "algebra", GRADER_IMAGE)


def test_the_jovyan_uid_is_refused(plan):
    sam = plan.people["sam"]
    as_jovyan = replace(sam, account=replace(sam.account, uid=JOVYAN_UID))
    bad = replace(plan, people={**plan.people, "sam": as_jovyan})
    with pytest.raises(ContainerPlanError, match="uid 1000"):
        person_container(bad, "sam", IMAGES)


def test_a_layout_that_would_mount_a_private_folder_is_refused(plan):
    # secrets inside the configuration folder every server mounts
    bad = replace(plan, paths=replace(plan.paths, secrets=f"{ETC}/secrets"))
    with pytest.raises(ContainerPlanError, match=f"would show {ETC}/secrets"):
        person_container(bad, "pat", IMAGES)
    with pytest.raises(ContainerPlanError, match=f"would show {ETC}/secrets"):
        grader_container(bad, "algebra", GRADER_IMAGE)


def test_a_folder_the_plan_does_not_make_is_never_mounted(plan):
    # an exchange folder missing from the Plan (Plan and host out of step)
    without = tuple(f for f in plan.folders if f.path != f"{EX}/biology/inbound/tom")
    with pytest.raises(ContainerPlanError, match="is not a folder of the Plan"):
        person_container(replace(plan, folders=without), "tom", IMAGES)


def test_in_the_system_layout_containers_see_the_pocs_places(system_plan):
    sam = person_container(system_plan, "sam", IMAGES)
    ex = "/srv/nbgrader/exchange"
    assert sam.mounts == (
        rw("/srv/jupyterhub/homes/sam"),
        ro("/etc/jupyterhub"),
        ro(f"{ex}/algebra/outbound"),
        rw(f"{ex}/algebra/inbound/sam"),
        ro(f"{ex}/biology/outbound"),
        rw(f"{ex}/biology/inbound/sam"),
        ro(f"{ex}/.feedback/sam"),
    )
    assert sam.environment["NSS_WRAPPER_PASSWD"] == "/etc/jupyterhub/nss/sam.passwd"
    assert sam.environment["JUPYTER_CONFIG_PATH"] == "/etc/jupyterhub"
    assert sam.environment["JUPYTER_CONFIG_DIR"] == "/etc/jupyterhub/roles/student"
    # the hub's runtime folder holds homes beside secrets and state: only a home is mounted
    assert not any(m.source == "/srv/jupyterhub" for m in sam.mounts)

    grader = grader_container(system_plan, "algebra", GRADER_IMAGE)
    assert grader.mounts == (
        rw("/home/grader-algebra"),
        ro("/home/grader-algebra/.jupyter"),
        ro("/etc/jupyterhub"),
        rw(f"{ex}/algebra"),
        rw(f"{ex}/.feedback/sam/algebra"),
    )
    assert "--ServerApp.port=8888" in grader.command  # http://algebra:8888, the compose service
    assert grader.environment["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081/hub/api"
