"""The system layout: the POC's places under a root prefix, the same Plan otherwise."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from sites import DATA_DIR, two_course_data

from coursehub.doctor import reference_plan
from coursehub.plan import LOCAL, SYSTEM, Layout, Plan, derive
from coursehub.site import parse_site

ROOT = "/tmp/ch-root"


@pytest.fixture
def system_plan(site) -> Plan:
    return derive(site, ROOT, isolated=True, layout=SYSTEM)


def paths_of(plan: Plan, kind: str) -> list[str]:
    return [f.path for f in getattr(plan, kind)]


def test_system_paths_are_the_pocs_places_under_the_root(system_plan):
    p = system_plan.paths
    assert p.data_dir == f"{ROOT}/srv/jupyterhub"
    assert p.secrets == f"{ROOT}/srv/jupyterhub/secrets"
    assert p.state == f"{ROOT}/srv/jupyterhub/state"
    assert p.etc == f"{ROOT}/etc/jupyterhub"
    assert p.logs == f"{ROOT}/var/log/coursehub"
    assert p.exchange == f"{ROOT}/srv/nbgrader/exchange"
    assert p.homes == f"{ROOT}/srv/jupyterhub/homes"
    assert p.passwd == f"{ROOT}/etc/jupyterhub/passwd"


def test_root_slash_gives_the_hosts_own_paths(site):
    plan = derive(site, "/", isolated=True, layout=SYSTEM)
    assert plan.paths.etc == "/etc/jupyterhub"
    assert plan.courses["algebra"].account.home == "/home/grader-algebra"
    assert plan.layout == Layout(SYSTEM, "/")
    assert not any(path.startswith("//") for path in paths_of(plan, "folders"))


def test_grader_homes_and_course_roots_are_the_pocs(system_plan):
    g = system_plan.courses["biology"]
    assert g.account.home == f"{ROOT}/home/grader-biology"
    assert g.course_root == f"{ROOT}/home/grader-biology/biology"
    assert g.config_dir == f"{ROOT}/home/grader-biology/.jupyter"


def test_nbgrader_layers_sit_at_the_pocs_paths(system_plan):
    files = {f.path: f for f in system_plan.files}
    layer1 = files[f"{ROOT}/etc/jupyterhub/nbgrader_config.py"]
    assert f"c.Exchange.root = '{ROOT}/srv/nbgrader/exchange'" in layer1.content
    layer2 = files[f"{ROOT}/home/grader-algebra/.jupyter/nbgrader_config.py"]
    assert f"c.CourseDirectory.root = '{ROOT}/home/grader-algebra/algebra'" in layer2.content
    layer3 = files[f"{ROOT}/home/grader-algebra/algebra/nbgrader_config.py"]
    assert layer3.overwrite is False  # the course's own after the first write


def test_people_homes_are_never_host_homes(site):
    data = two_course_data()
    data["people"].append("ubuntu")  # a person named like the host's own account
    plan = derive(parse_site(data), "/", isolated=True, layout=SYSTEM)
    assert plan.people["ubuntu"].account.home == "/srv/jupyterhub/homes/ubuntu"
    assert plan.home_folder("ubuntu").path == "/srv/jupyterhub/homes/ubuntu"


def test_host_folders_outside_coursehub_are_not_planned(system_plan):
    """/home, /srv, /etc and /var/log belong to the host: their modes are never changed."""
    planned = set(paths_of(system_plan, "folders"))
    for host_folder in ("", "/home", "/srv", "/etc", "/var/log", "/srv/nbgrader"):
        assert f"{ROOT}{host_folder}" not in planned
    assert len(planned) == len(system_plan.folders)  # no folder twice


def test_folders_are_listed_outermost_first(system_plan):
    seen: set[str] = set()
    for path in paths_of(system_plan, "folders"):
        parent = path.rsplit("/", 1)[0]
        if parent in {f.path for f in system_plan.folders}:
            assert parent in seen, f"{path} is listed before its parent {parent}"
        seen.add(path)


def test_same_owners_and_modes_as_the_local_layout(site, plan, system_plan):
    """Only the places move: every folder keeps its owner and mode."""

    def relative(p: Plan, path: str) -> str:
        for local, system in (
            (p.courses["algebra"].account.home, "GRADER:algebra"),
            (p.courses["biology"].account.home, "GRADER:biology"),
            (p.paths.exchange, "EXCHANGE"),
            (p.paths.homes, "HOMES"),
            (p.paths.jupyter_config, "JUPYTER"),
        ):
            if path == local or path.startswith(local + "/"):
                return system + path[len(local) :]
        return path

    local = {relative(plan, f.path): (f.uid, f.gid, f.mode) for f in plan.folders}
    system = {relative(system_plan, f.path): (f.uid, f.gid, f.mode) for f in system_plan.folders}
    shared = set(local) & set(system)
    assert {k for k in shared if k.startswith(("GRADER", "EXCHANGE", "HOMES"))}
    for key in shared:
        assert local[key] == system[key], key
    assert system["EXCHANGE/algebra/inbound/sam"][2] == 0o2750


def test_roles_groups_and_scopes_do_not_depend_on_the_layout(plan, system_plan):
    assert system_plan.roles == plan.roles
    assert system_plan.groups == plan.groups
    assert system_plan.extensions == plan.extensions
    for name, person in plan.people.items():
        assert system_plan.people[name].server_token_scopes == person.server_token_scopes
        assert system_plan.people[name].account.uid == person.account.uid


def test_layout_is_recorded_in_plan_json_and_read_back(system_plan):
    data = json.loads(system_plan.to_json())
    assert data["layout"] == {"kind": SYSTEM, "root": ROOT}
    again = Plan.from_json(system_plan.to_json())
    assert again == system_plan
    assert again.base_dir == ROOT


def test_plan_json_without_a_layout_is_the_local_layout(plan):
    data = json.loads(plan.to_json())
    del data["layout"]  # as written before the system layout existed
    old = Plan.from_json(json.dumps(data))
    assert old.layout == Layout(LOCAL, "")
    assert old.base_dir == DATA_DIR
    assert old == plan


def test_local_layout_is_unchanged(plan):
    assert plan.layout.kind == LOCAL
    assert plan.paths.data_dir == DATA_DIR
    assert plan.courses["algebra"].account.home == f"{DATA_DIR}/graders/algebra"
    assert f"{DATA_DIR}/graders" in paths_of(plan, "folders")


def test_doctor_re_derives_a_system_plan_in_its_own_layout(system_plan, tmp_path):
    again = reference_plan(system_plan)
    assert again.layout == system_plan.layout
    assert asdict(again.paths) == asdict(system_plan.paths)
    assert again.folders == system_plan.folders


def test_unknown_layout_is_refused(site):
    with pytest.raises(ValueError, match="layout must be one of"):
        derive(site, ROOT, isolated=True, layout="cloud")


def test_system_services_answer_on_the_container_network(system_plan, plan):
    """Each part in its own container: the hub, the proxy's API and the graders by name."""
    assert system_plan.hub_api_url == "http://jupyterhub:8081/hub/api"
    assert system_plan.ports.proxy_api == 8001
    assert system_plan.ports.public == plan.ports.public  # published on the host as before
    g = system_plan.courses["algebra"]
    assert (g.url, g.port) == ("http://algebra:8888", 8888)
    env = system_plan.grader_env("algebra")
    assert env["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081/hub/api"
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://algebra:8888"
    assert env["JUPYTERHUB_USER"] == "grader-algebra"
    # the local target keeps loopback
    assert plan.hub_api_url.startswith("http://127.0.0.1:")
    assert plan.courses["algebra"].url.startswith("http://127.0.0.1:")
