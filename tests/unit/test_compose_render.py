"""The compose renderers, pure: a Plan and secrets in, file contents out; no Docker, no disk."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from sites import ADMIN_PASSWORD, USER_PASSWORD, shared_password_data, two_course_data

from coursehub import sandbox
from coursehub.containers import grader_container
from coursehub.plan import EXTENSIONS, GRADER, Plan
from coursehub.secrets import secret_names
from coursehub.site import DEFAULT_BASE_IMAGES, SiteError, parse_site
from coursehub.targets.compose.envfiles import (
    POC_JHUB_VARIABLES,
    POC_SERVICE_VARIABLES,
    complete_secrets,
    parse_env_file,
    secrets_from_env_files,
)
from coursehub.targets.compose.hubconfig import (
    HubEnvError,
    compose_hub_config,
    secrets_from_env,
)
from coursehub.targets.compose.render import (
    ComposeError,
    ComposeInput,
    compose_input,
    render_all,
)
from coursehub.targets.compose.versions import (
    ENV_PATH,
    PROXY_VERSION,
    PROXY_VERSION_OLD_NODE,
    installed_version,
    pinned_closure,
)

ROOT = "/tmp/ch-compose-root"
WHEEL = ("coursehub-0.1.0-py3-none-any.whl", b"PK-not-read-by-the-renderers")


REPO = Path(__file__).resolve().parents[2]


def make_input(data=None, secrets=None) -> ComposeInput:
    return compose_input(
        parse_site(data or two_course_data()),
        ROOT,
        ids=None,
        secrets=secrets or {},
        pins=pinned_closure(),
        wheel=WHEEL,
        site_file="/somewhere/site.yaml",
    )


@pytest.fixture(scope="module")
def inp() -> ComposeInput:
    return make_input()


@pytest.fixture(scope="module")
def files(inp):
    return render_all(inp)


@pytest.fixture(scope="module")
def compose(files):
    return yaml.safe_load(files["docker-compose.yml"].content)


def text(files, name: str) -> str:
    return files[name].content.decode()


# The site file's docker section.


def test_docker_defaults_are_the_pocs_images_and_network():
    d = parse_site(two_course_data()).docker_settings()
    assert dict(d.images) == {
        "student": "test-school/notebook:learner",
        "instructor": "test-school/notebook:instructor",
        "grader": "test-school/notebook:grader",
        "standard": "test-school/notebook:standard",
    }
    assert (d.network, d.network_external, d.memory, d.cpu) == (
        "jupyter-network",
        True,
        None,
        None,
    )


def test_docker_section_overrides_images_network_and_limits():
    data = two_course_data()
    data["docker"] = {
        "images": {"grader": "registry.example.org:5000/edu/grader:2025.1"},
        "network": {"name": "hubnet", "external": False},
        "limits": {"memory": "2G", "cpu": 1.5},
    }
    d = parse_site(data).docker
    assert d.image("grader") == "registry.example.org:5000/edu/grader:2025.1"
    assert d.image("student") == "test-school/notebook:learner"  # the rest keep defaults
    assert (d.network, d.network_external, d.memory, d.cpu) == ("hubnet", False, "2G", 1.5)


@pytest.mark.parametrize(
    ("docker", "field", "fix"),
    [
        ({"images": {"student": "edu/notebook"}}, "docker.images.student", "REPOSITORY:TAG"),
        ({"images": {"student": "Edu/Notebook:1"}}, "docker.images.student", "for example"),
        ({"images": {"learner": "edu/n:1"}}, "docker.images", "allowed keys"),
        ({"network": {"name": "bad name"}}, "docker.network.name", "for example"),
        ({"network": {"external": "yes"}}, "docker.network.external", "must be a boolean"),
        ({"limits": {"memory": "2 GB"}}, "docker.limits.memory", "for example '2G'"),
        ({"limits": {"memory": "0G"}}, "docker.limits.memory", "for example '2G'"),
        ({"limits": {"cpu": 0}}, "docker.limits.cpu", "more than 0"),
        ({"limits": {"cpu": -1}}, "docker.limits.cpu", "more than 0"),
        ({"limits": {"swap": "1G"}}, "docker.limits", "allowed keys"),
    ],
)
def test_docker_section_errors_name_the_field_and_the_fix(docker, field, fix):
    data = two_course_data()
    data["docker"] = docker
    with pytest.raises(SiteError) as info:
        parse_site(data)
    assert any(p.startswith(field) and fix in p for p in info.value.problems), info.value.problems


# docker-compose.yml


def servers(compose) -> dict[str, dict]:
    """The services that answer on the network (all but the receipts scans)."""
    return {k: v for k, v in compose["services"].items() if not k.endswith("-receipts")}


def test_services_are_proxy_hub_and_a_grader_and_a_receipts_scan_per_course(compose, inp):
    courses = list(inp.plan.courses)
    assert list(servers(compose)) == ["proxy", "jupyterhub", *courses]
    scans = [c for c in courses if inp.plan.courses[c].students]
    assert scans and set(compose["services"]) - set(servers(compose)) == {
        f"{c}-receipts" for c in scans
    }


def test_every_service_restarts_has_a_healthcheck_and_is_on_the_network(compose):
    for name, service in servers(compose).items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["healthcheck"]["retries"] >= 1
        assert service["networks"] == ["jupyter-network"], name


def test_each_receipts_scan_runs_as_the_grader_with_no_token_and_no_network(compose, inp):
    for course, g in inp.plan.courses.items():
        if not g.students:
            continue
        scan, grader = compose["services"][f"{course}-receipts"], compose["services"][course]
        assert scan["user"] == grader["user"] and scan["image"] == grader["image"]
        assert scan["volumes"] == grader["volumes"]
        assert scan["network_mode"] == "none" and "networks" not in scan
        assert "env_file" not in scan  # the grader's token is in its env file alone
        assert not any("TOKEN" in k for k in scan["environment"])
        assert scan["cap_drop"] == ["ALL"] and scan["security_opt"] == ["no-new-privileges:true"]
        cmd = scan["command"]
        assert cmd[:3] == ["python", "-m", "coursehub.exchange.receipts"]
        assert cmd[cmd.index("--inbound") + 1] == f"{inp.plan.paths.exchange}/{course}/inbound"
        assert cmd[cmd.index("--receipts") + 1] == g.receipts
        assert cmd[cmd.index("--every") + 1] == "15"


def test_a_course_named_like_another_courses_receipts_scan_is_refused():
    data = two_course_data()
    first = data["courses"][0]
    data["courses"].append({**first, "id": first["id"] + "-receipts"})
    with pytest.raises(ComposeError, match="receipts service of course"):
        render_all(make_input(data))


def test_network_is_external_by_default_and_configurable(compose):
    assert compose["networks"] == {"jupyter-network": {"name": "jupyter-network", "external": True}}
    data = two_course_data()
    data["docker"] = {"network": {"name": "hubnet", "external": False}}
    other = yaml.safe_load(render_all(make_input(data))["docker-compose.yml"].content)
    assert other["networks"] == {"hubnet": {"name": "hubnet"}}
    assert all(s["networks"] == ["hubnet"] for s in servers(other).values())


def test_proxy_runs_apart_built_here_as_nobody_on_the_public_port(compose, inp):
    proxy = compose["services"]["proxy"]
    assert proxy["build"] == {"context": ".", "dockerfile": "Dockerfile.proxy"}
    image, tag = proxy["image"].rsplit(":", 1)
    assert image == "test-school/proxy"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag)
    assert proxy["user"] == "65534:65534"
    assert proxy["ports"] == [f"127.0.0.1:{inp.plan.ports.public}:8000"]
    cmd = proxy["command"]
    assert cmd[cmd.index("--default-target") + 1] == "http://jupyterhub:8081"
    assert proxy["env_file"] == ["env.proxy"]
    assert proxy["cap_drop"] == ["ALL"]
    assert proxy["security_opt"] == ["no-new-privileges:true"]
    # the healthcheck names the token's variable, never its value
    assert "process.env.CONFIGPROXY_AUTH_TOKEN" in proxy["healthcheck"]["test"][-1]


def test_hub_builds_its_image_mounts_the_engine_and_reads_config_read_only(compose, inp):
    hub = compose["services"]["jupyterhub"]
    p = inp.plan.paths
    assert hub["build"] == {"context": ".", "dockerfile": "Dockerfile.hub"}
    assert hub["image"].endswith(f":{installed_version('jupyterhub')}")
    assert hub["command"] == ["jupyterhub", "-f", f"{ROOT}/etc/jupyterhub/jupyterhub_config.py"]
    assert hub["volumes"] == [
        "/var/run/docker.sock:/var/run/docker.sock",
        f"{p.data_dir}:{p.data_dir}",
        f"{p.etc}:{p.etc}:ro",
    ]
    assert hub["env_file"] == ["env.jhub"]
    assert "ports" not in hub  # only the proxy is published
    assert "http://127.0.0.1:8081/hub/health" in hub["healthcheck"]["test"][-1]


def test_grader_services_are_what_grader_container_builds(compose, inp):
    for course, g in inp.plan.courses.items():
        service = compose["services"][course]
        spec = grader_container(inp.plan, course, inp.docker.image(GRADER))
        assert service["image"] == "test-school/notebook:grader"
        assert service["user"] == f"{g.account.uid}:{g.account.gid}"
        assert service["group_add"] == [str(gid) for gid in g.account.groups]
        assert service["volumes"] == [
            f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in spec.mounts
        ]
        assert service["command"][:1] == ["jupyterhub-singleuser"]
        assert "--ServerApp.port=8888" in service["command"]
        assert service["env_file"] == [f"env.service.{course}"]
        assert service["cap_drop"] == ["ALL"] == list(spec.cap_drop)
        # its grading sandbox needs namespaces and mounts: the profile of the folder, no
        # AppArmor profile; never privileges or capabilities
        assert service["security_opt"] == [
            *spec.security_opt,
            "seccomp=./grader-seccomp.json",
            "apparmor=unconfined",
        ]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "privileged" not in service and "cap_add" not in service
        assert service["depends_on"] == ["jupyterhub"]
        assert f"http://127.0.0.1:8888/services/{course}/api" in service["healthcheck"]["test"][-1]
        # env file and environment together are the container's whole environment
        env = {**parse_env_file(text(render_all(inp), f"env.service.{course}"))}
        env.update(service["environment"])
        for key, value in spec.environment.items():
            assert env[key] == value, key


def test_the_graders_seccomp_profile_lets_the_sandbox_start_and_refuses_the_rest(inp):
    profile = json.loads(text(render_all(inp), "grader-seccomp.json"))
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    rule, clone3, *sockets = profile["syscalls"]
    assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == 1
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    # AF_ALG and AF_VSOCK, as the sandbox's own filter refuses them
    families = {s["args"][0]["value"] for s in sockets if s["names"] == ["socket"]}
    assert families == set(sandbox.DENIED_FAMILIES.values()) and len(sockets) == 2
    # what bubblewrap needs stays allowed; what no grader needs is refused
    for needed in ("clone", "clone3", "unshare", "mount", "umount2", "pivot_root"):
        assert needed not in rule["names"], needed
    for refused in ("setns", "keyctl", "bpf", "init_module", "kexec_load", "userfaultfd"):
        assert refused in rule["names"], refused
    # receipts scanners run no notebook: the engine's default profile
    for course in inp.plan.courses:
        compose = yaml.safe_load(text(render_all(inp), "docker-compose.yml"))
        assert compose["services"][f"{course}-receipts"]["security_opt"] == [
            "no-new-privileges:true"
        ]


def test_no_grader_sees_secrets_state_or_another_course(compose, inp):
    p = inp.plan.paths
    for course in inp.plan.courses:
        sources = [v.split(":")[0] for v in compose["services"][course]["volumes"]]
        for private in (p.secrets, p.state, p.logs, p.data_dir):
            assert all(not s.startswith(private) for s in sources), (course, private)
        for other in set(inp.plan.courses) - {course}:
            assert all(f"/{other}" not in s for s in sources), (course, other)


def test_a_course_named_like_a_service_is_refused():
    data = two_course_data()
    data["courses"][0]["id"] = "proxy"
    with pytest.raises(ComposeError, match=r"courses\[0\]\.id: 'proxy'.*use another id"):
        render_all(make_input(data))


def test_lms_launches_are_refused_on_a_docker_host_with_the_reason():
    data = two_course_data({"type": "lti11", "consumer_key": "k", "shared_secret": "s" * 32})
    with pytest.raises(ComposeError, match=r"auth.type: 'lti11' .*runs on one machine"):
        render_all(make_input(data))


# env files


def test_env_files_are_0600_and_hold_every_variable_of_the_pocs_tables(files, inp):
    assert files["env.jhub"].mode == 0o600 and files["env.jhub"].secret
    jhub = parse_env_file(text(files, "env.jhub"))
    assert set(POC_JHUB_VARIABLES) <= set(jhub)
    for course in inp.plan.courses:
        f = files[f"env.service.{course}"]
        assert f.mode == 0o600 and f.secret
        assert set(POC_SERVICE_VARIABLES) <= set(parse_env_file(f.content.decode()))


def test_env_values_come_from_the_plan_and_the_secrets(files, inp):
    jhub = parse_env_file(text(files, "env.jhub"))
    assert jhub["CONFIGURABLE_HTTP_PROXY"] == inp.secrets["proxy_auth_token"]
    assert jhub["JUPYTERHUB_CRYPT_KEY"] == inp.secrets["crypt_key"]
    assert jhub["DOCKER_LEARNER_IMAGE"] == "test-school/notebook:learner"
    assert jhub["DOCKER_NETWORK_NAME"] == "jupyter-network"
    assert jhub["EXCHANGE_DIR"] == inp.plan.paths.exchange
    assert jhub["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081"
    assert jhub["ORGANIZATION_NAME"] == "Test School"
    svc = parse_env_file(text(files, "env.service.biology"))
    g = inp.plan.courses["biology"]
    assert svc["JUPYTERHUB_API_TOKEN"] == inp.secrets["service_token:biology"]
    assert svc["JUPYTERHUB_USER"] == svc["NB_USER"] == "grader-biology"  # the DESIGN trap
    assert svc["NB_UID"] == str(g.account.uid)
    assert svc["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081/hub/api"
    assert svc["JUPYTERHUB_SERVICE_URL"] == "http://biology:8888"
    assert svc["JUPYTERHUB_SERVICE_PREFIX"] == "/services/biology/"
    assert svc["JUPYTERHUB_CLIENT_ID"] == "service-biology"
    # a grader gets its own course's token only
    assert inp.secrets["service_token:algebra"] not in text(files, "env.service.biology")


def test_no_secret_outside_the_env_files(files, inp):
    values = list(inp.secrets.values())
    for name, f in files.items():
        if f.secret:
            continue
        for value in values:
            assert value.encode() not in f.content, name


def test_shared_passwords_are_in_env_jhub_only():
    inp = make_input(shared_password_data())
    files = render_all(inp)
    jhub = parse_env_file(text(files, "env.jhub"))
    assert (jhub["COURSEHUB_USER_PASSWORD"], jhub["COURSEHUB_ADMIN_PASSWORD"]) == (
        USER_PASSWORD,
        ADMIN_PASSWORD,
    )
    for name, f in files.items():
        if name != "env.jhub":
            assert USER_PASSWORD.encode() not in f.content, name
            assert ADMIN_PASSWORD.encode() not in f.content, name


def test_secrets_read_back_from_env_files_are_the_same(files, inp):
    jhub = parse_env_file(text(files, "env.jhub"))
    services = {c: parse_env_file(text(files, f"env.service.{c}")) for c in inp.plan.courses}
    assert secrets_from_env_files(jhub, services) == inp.secrets


def test_complete_secrets_keeps_old_ones_and_makes_missing_ones():
    old = {"cookie_secret": "c" * 64, "service_token:algebra": "a" * 64}
    new = complete_secrets(old, ["algebra", "biology"])
    assert set(new) == set(secret_names(["algebra", "biology"]))
    assert new["cookie_secret"] == "c" * 64 and new["service_token:algebra"] == "a" * 64
    assert re.fullmatch(r"[0-9a-f]{64}", new["service_token:biology"])
    assert len(set(new.values())) == len(new)


# Dockerfiles and images


def test_images_build_on_the_default_bases_with_the_hubs_versions(files):
    base = text(files, "Dockerfile.base")
    assert re.findall(r"^FROM (\S+)$", base, re.M) == [DEFAULT_BASE_IMAGES["notebook"]]
    assert not DEFAULT_BASE_IMAGES["notebook"].endswith(":latest")
    assert "libnss-wrapper" in base
    constraints = text(files, "constraints.txt")
    assert f"jupyterhub=={installed_version('jupyterhub')}\n" in constraints
    assert f"nbgrader=={installed_version('nbgrader')}\n" in constraints
    assert re.search(r"^nbgrader==0\.9\.", constraints, re.M)
    assert f"/tmp/coursehub/{WHEEL[0]}" in base
    hub = text(files, "Dockerfile.hub")
    assert re.findall(r"^FROM (\S+)$", hub, re.M) == [DEFAULT_BASE_IMAGES["hub"]]
    assert f'"/tmp/coursehub/{WHEEL[0]}[docker]"' in hub and base
    assert "--constraint /tmp/coursehub/constraints.txt" in hub
    proxy = text(files, "Dockerfile.proxy")
    assert re.findall(r"^FROM (\S+)$", proxy, re.M) == [DEFAULT_BASE_IMAGES["proxy"]]


def test_images_need_nothing_of_a_base_but_python_or_node():
    """Any Debian or Ubuntu base serves: each Python environment is a venv the
    Dockerfile makes (no conda, no docker-stacks script), python3-venv is installed
    only where ensurepip is missing, and the proxy comes from npm."""
    data = two_course_data()
    data["docker"] = {
        "base_images": {
            "notebook": "registry.example.edu/debian:12",
            "hub": "registry.example.edu/debian:12",
            "proxy": "registry.example.edu/node:18",
        }
    }
    files = render_all(make_input(data))
    shared = []
    for name in ("Dockerfile.base", "Dockerfile.hub"):
        dockerfile, env = text(files, name), ENV_PATH
        assert "FROM registry.example.edu/debian:12\n" in dockerfile
        assert f"python3 -m venv {env}" in dockerfile
        assert f"{env}/bin/pip install" in dockerfile
        assert f"ENV PATH={env}/bin:$PATH" in dockerfile
        assert "python3-venv" in dockerfile and "import ensurepip" in dockerfile
        assert "conda" not in dockerfile.lower() and "fix-permissions" not in dockerfile
        steps = [ln for ln in dockerfile.splitlines() if ln and not ln.startswith("#")]
        shared.append(steps[: steps.index(f"ENV PATH={env}/bin:$PATH") + 1])
    # word for word the same steps: on one base, the engine builds them once for both
    assert shared[0] == shared[1]
    proxy = text(files, "Dockerfile.proxy")
    assert "FROM registry.example.edu/node:18\n" in proxy
    assert '"configurable-http-proxy@$v"' in proxy
    assert f"v={PROXY_VERSION}" in proxy and f"v={PROXY_VERSION_OLD_NODE}" in proxy
    for env in ("student", "instructor", "grader", "standard"):
        role = text(files, f"Dockerfile.{env}")
        assert f"{ENV_PATH}/etc/jupyter/jupyter_server_config.json" in role
        assert f"{ENV_PATH}/etc/jupyter/labconfig/page_config.json" in role
    # no image runs as root or as a shared user unless told: the last USER is nobody
    for name in ("Dockerfile.base", "Dockerfile.proxy"):
        assert re.findall(r"^USER (\S+)$", text(files, name), re.M)[-1] == "65534:65534"


def test_a_base_image_without_a_tag_is_refused_naming_the_field():
    data = two_course_data()
    data["docker"] = {"base_images": {"hub": "python"}}
    with pytest.raises(SiteError) as err:
        parse_site(data)
    assert "docker.base_images.hub: 'python' is not an image name with a tag" in str(err.value)
    data["docker"] = {"base_images": {"nodejs": "node:20"}}
    with pytest.raises(SiteError) as err:
        parse_site(data)
    assert "docker.base_images: unknown key 'nodejs'" in str(err.value)


def test_proxy_version_is_the_one_machine_s():
    package = json.loads((REPO / "package.json").read_text())
    assert package["dependencies"]["configurable-http-proxy"] == PROXY_VERSION


def test_role_images_carry_the_plans_extensions(files, inp):
    for env in ("student", "instructor", "grader", "standard"):
        dockerfile = text(files, f"Dockerfile.{env}")
        assert "FROM test-school/notebook:base\n" in dockerfile
        assert f"COPY images/{env}/jupyter_server_config.json" in dockerfile
        server = json.loads(text(files, f"images/{env}/jupyter_server_config.json"))
        lab = json.loads(text(files, f"images/{env}/page_config.json"))
        assert (
            server["ServerApp"]["jpserver_extensions"]
            == (inp.plan.extensions[env]["jpserver_extensions"])
        )
        assert set(lab["disabledExtensions"]) == set(
            inp.plan.extensions[env]["disabled_lab_plugins"]
        )
    grader = json.loads(text(files, "images/grader/jupyter_server_config.json"))
    on = grader["ServerApp"]["jpserver_extensions"]
    assert on["nbgrader.server_extensions.formgrader"] is True
    assert on["nbgrader.server_extensions.assignment_list"] is False
    assert on["nbgrader.server_extensions.course_list"] is False
    disabled = json.loads(text(files, "images/grader/page_config.json"))["disabledExtensions"]
    assert "@jupyter/nbgrader:create-assignment" not in disabled
    assert "@jupyter/nbgrader:assignment-list" in disabled
    assert EXTENSIONS[GRADER] == {"create_assignment", "formgrader", "validate_assignment"}


def test_the_build_context_leaves_the_env_files_out(files):
    ignore = text(files, ".dockerignore").splitlines()
    assert "*" in ignore  # everything out, then only what the Dockerfiles copy
    assert not any(line.startswith("!env") for line in ignore)


# Host files and scripts


def test_files_mirror_the_host_paths_of_the_plan(files, inp):
    for f in inp.plan.files:
        rel = f.path.removeprefix(ROOT + "/")
        assert files[f"files/{rel}"].content.decode() == f.content
    assert "files/etc/jupyterhub/nbgrader_config.py" in files
    assert "files/home/grader-algebra/.jupyter/nbgrader_config.py" in files
    assert "files/home/grader-algebra/algebra/nbgrader_config.py" in files
    plan = Plan.from_json(text(files, "files/srv/jupyterhub/state/plan.json"))
    assert plan == inp.plan


def test_prepare_host_makes_every_planned_folder_and_keeps_layer_3(files, inp):
    script = text(files, "prepare-host.sh")
    assert files["prepare-host.sh"].mode == 0o755
    assert 'exec python3 -I "$HERE/prepare_host.py"' in script
    layout = json.loads(text(files, "host-layout.json"))
    assert layout["folders"] == [[f.path, f.uid, f.gid, f.mode] for f in inp.plan.folders]
    layer3 = f"{ROOT}/home/grader-algebra/algebra/nbgrader_config.py"
    (entry,) = [f for f in layout["files"] if f[1] == layer3]
    assert entry[2:] == [10001, 10001, 0o644, True]  # kept: the course's own
    # the host's own folders are made when missing, never changed
    assert f"{ROOT}/home" in layout["parents"]
    assert f"{ROOT}/home" not in [f[0] for f in layout["folders"]]
    # the walk that follows no link is coursehub.safefs itself
    program = text(files, "prepare_host.py")
    compile(program, "prepare_host.py", "exec")
    assert "def ensure_folder(" in program and "O_NOFOLLOW" in program


def test_start_prepares_the_host_before_anything_docker(files):
    script = text(files, "start.sh")
    lines = script.splitlines()
    first_docker = next(
        i
        for i, line in enumerate(lines)
        if line.lstrip().startswith(("docker ", "$COMPOSE", "if ! docker"))
    )
    assert lines.index("./prepare-host.sh") < first_docker
    assert "docker network create jupyter-network" in script
    assert script.index("Dockerfile.base") < script.index("Dockerfile.student")
    assert script.rstrip().endswith("$COMPOSE ps")


def test_rendering_is_deterministic(inp, files):
    again = render_all(inp)
    assert {n: hashlib.sha256(f.content).hexdigest() for n, f in again.items()} == {
        n: hashlib.sha256(f.content).hexdigest() for n, f in files.items()
    }


# The hub's config inside its container


def hub_env(inp: ComposeInput, files) -> dict[str, str]:
    return parse_env_file(text(files, "env.jhub"))


def test_hub_config_takes_roles_groups_and_services_from_the_plan(inp, files):
    env = hub_env(inp, files)
    plan_file = f"{ROOT}/srv/jupyterhub/state/plan.json"
    c = compose_hub_config(inp.plan, plan_file, secrets_from_env(inp.plan, env), env)
    hub = c.JupyterHub
    assert hub.load_roles == [r.to_hub() for r in inp.plan.roles]
    assert hub.load_groups == {n: {"users": list(m)} for n, m in inp.plan.groups.items()}
    courses = {s["name"]: s for s in hub.services if s["name"] in inp.plan.courses}
    for course in inp.plan.courses:
        assert courses[course]["url"] == f"http://{course}:8888"
        assert courses[course]["api_token"] == inp.secrets[f"service_token:{course}"]
    # no admin token anywhere
    assert not any(s.get("admin") for s in hub.services)
    assert all(
        "admin:" not in scope or scope == "admin:users"
        for r in hub.load_roles
        for scope in r["scopes"]
    )
    assert hub.hub_connect_url == "http://jupyterhub:8081"
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy:8001"
    assert c.ConfigurableHTTPProxy.auth_token == inp.secrets["proxy_auth_token"]
    assert hub.cookie_secret == bytes.fromhex(inp.secrets["cookie_secret"])
    assert hub.spawner_class == "coursehub.spawners.CourseDockerSpawner"
    assert "CourseLocalSpawner" not in c
    sp = c.CourseDockerSpawner
    assert sp.plan_file == plan_file
    assert sp.images == {
        "student": "test-school/notebook:learner",
        "instructor": "test-school/notebook:instructor",
        "standard": "test-school/notebook:standard",
    }
    assert c.DockerSpawner.network_name == "jupyter-network"
    assert c.DockerSpawner.notebook_dir == f"{ROOT}/srv/jupyterhub/homes/{{username}}"


def test_hub_config_applies_limits():
    data = two_course_data()
    data["docker"] = {"limits": {"memory": "1G", "cpu": 2}}
    inp = make_input(data)
    env = parse_env_file(render_all(inp)["env.jhub"].content.decode())
    c = compose_hub_config(inp.plan, "/p.json", secrets_from_env(inp.plan, env), env)
    assert (c.DockerSpawner.mem_limit, c.DockerSpawner.cpu_limit) == ("1G", 2.0)


def test_hub_refuses_an_env_without_a_course_token(inp, files):
    env = hub_env(inp, files)
    broken = copy.copy(env)
    broken["COURSEHUB_SERVICE_TOKENS"] = broken["COURSEHUB_SERVICE_TOKENS"].split(",")[0]
    with pytest.raises(HubEnvError, match="no token for course 'biology'.*render compose"):
        secrets_from_env(inp.plan, broken)
    del broken["JUPYTERHUB_CRYPT_KEY"]
    with pytest.raises(HubEnvError, match="JUPYTERHUB_CRYPT_KEY is not set"):
        secrets_from_env(inp.plan, broken)


def test_rendered_jupyterhub_config_loads_the_plan_then_the_operators_own(files, inp):
    config = text(files, "jupyterhub_config.py")
    assert "from coursehub.targets.compose.hubconfig import configure" in config
    assert f"configure(c, '{ROOT}/srv/jupyterhub/state/plan.json')" in config
    # the escape hatch: /etc/jupyterhub/jupyterhub_config.d/*.py, after coursehub's
    config_d = f"{ROOT}/etc/jupyterhub/jupyterhub_config.d"
    lines = config.splitlines()
    load = lines.index(f"load_extra_config(load_subconfig, {config_d!r})  # noqa: F821")
    assert load > next(i for i, line in enumerate(lines) if line.startswith("configure("))
    # the host makes the folder root's alone, and the hub's container sees it (in /etc)
    [folder] = [f for f in inp.plan.folders if f.path == config_d]
    assert (folder.uid, folder.gid, folder.mode) == (0, 0, 0o700)


def test_every_spawner_setting_is_a_trait_of_the_docker_spawner(inp, files):
    """A misspelt setting would be ignored by traitlets with only a warning."""
    from coursehub.spawners import CourseDockerSpawner

    env = hub_env(inp, files)
    c = compose_hub_config(inp.plan, "/p.json", secrets_from_env(inp.plan, env), env)
    traits = CourseDockerSpawner.class_traits(config=True)
    for section in ("CourseDockerSpawner", "DockerSpawner"):
        for name in c[section]:
            assert name in traits, f"{section}.{name}"
