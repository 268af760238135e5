"""CourseDockerSpawner: the exact requests its start() and stop() send to the Docker Engine.

No Docker engine runs here. The spawner runs its real start() (DockerSpawner's
own code and docker-py's real APIClient); only the HTTP transport under the
client is replaced by FakeEngine, which records every request and answers as
the Engine API does (201 with an Id on create, 204 on start, 404 for a
container that does not exist, the container's networks on inspect). The
tests assert the JSON the engine would receive.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import docker
import pytest
import requests
from jupyterhub.objects import Hub
from sites import two_course_data
from tornado import web
from traitlets import TraitError
from traitlets.config import Config

from coursehub.folders import make_folder
from coursehub.plan import SYSTEM, Plan, derive
from coursehub.site import parse_site
from coursehub.spawners import CourseDockerSpawner

IMAGES = {
    "student": "myedu/notebook:student",
    "instructor": "myedu/notebook:instructor",
    "standard": "myedu/notebook:standard",
}
NETWORK = "jupyter-network"
API_VERSION = "1.45"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the spawner makes each home with the person's uid, as the hub does as root on a Docker host",
)


@dataclass
class Call:
    method: str
    path: str  # without the /v1.xx prefix, unquoted
    query: dict[str, list[str]]
    body: Any


class FakeEngine(requests.adapters.BaseAdapter):
    """The Docker Engine API, in memory: records requests, answers like the engine."""

    def __init__(self, images: list[str]):
        super().__init__()
        self.images = set(images)
        self.calls: list[Call] = []
        self.containers: dict[str, dict[str, Any]] = {}  # id -> inspect answer

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        path = unquote(re.sub(r"^/v[0-9.]+", "", url.path))
        body = json.loads(request.body) if request.body else None
        call = Call(request.method, path, parse_qs(url.query), body)
        self.calls.append(call)
        status, payload = self.answer(call)
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found"}[status]
        response._content = b"" if payload is None else json.dumps(payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self):
        pass

    def find(self, name_or_id: str) -> dict[str, Any] | None:
        for cid, c in self.containers.items():
            if name_or_id in (cid, c["Name"].lstrip("/")):
                return c
        return None

    def answer(self, call: Call) -> tuple[int, Any]:
        m, p = call.method, call.path
        if m == "GET" and (found := re.fullmatch(r"/images/(.+)/json", p)):
            image = found.group(1)
            if image in self.images:
                return 200, {"Id": "sha256:" + "ab" * 32, "RepoTags": [image]}
            return 404, {"message": f"No such image: {image}"}
        if m == "POST" and p == "/containers/create":
            cid = f"{len(self.containers) + 1:064x}"
            body = call.body
            self.containers[cid] = {
                "Id": cid,
                "Name": "/" + call.query["name"][0],
                "Config": {"Env": body["Env"], "Image": body["Image"]},
                "State": {"Running": False, "ExitCode": 0, "Error": "", "FinishedAt": ""},
                "NetworkSettings": {
                    "Networks": {body["HostConfig"]["NetworkMode"]: {"IPAddress": "172.18.0.7"}}
                },
            }
            return 201, {"Id": cid, "Warnings": []}
        if found := re.fullmatch(r"/containers/([^/]+)(/json|/start|/stop)?", p):
            c = self.find(found.group(1))
            if c is None:
                return 404, {"message": f"No such container: {found.group(1)}"}
            action = found.group(2)
            if m == "GET" and action == "/json":
                return 200, c
            if m == "POST" and action == "/start":
                c["State"]["Running"] = True
                return 204, None
            if m == "POST" and action == "/stop":
                c["State"]["Running"] = False
                return 204, None
            if m == "DELETE" and action is None:
                del self.containers[c["Id"]]
                return 204, None
        raise AssertionError(f"the spawner made an unexpected request: {m} {p}")

    def creates(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/containers/create"]


@pytest.fixture
def data_dir(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def live_plan(data_dir) -> Plan:
    return derive(parse_site(two_course_data()), data_dir, isolated=True)


@pytest.fixture
def plan_file(tmp_path, live_plan) -> str:
    return write_plan(live_plan, tmp_path / "plan.json")


def write_plan(plan: Plan, path) -> str:
    path.write_text(plan.to_json())
    # what the host's preparation makes before the hub starts: the folder of homes
    os.makedirs(os.path.dirname(plan.paths.data_dir), exist_ok=True)
    for folder in plan.folders:
        if folder.path in (plan.paths.data_dir, plan.paths.homes):
            make_folder(folder)
    return str(path)


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    engine = FakeEngine(list(IMAGES.values()))
    # docker-py's real client; only the transport under it is the fake engine
    client = docker.APIClient(base_url="unix:///var/run/docker.sock", version=API_VERSION)
    client.mount("http+docker://", engine)
    monkeypatch.setattr(CourseDockerSpawner, "_client", client)
    return engine


def make_spawner(name: str, plan_file: str, **options) -> CourseDockerSpawner:
    c = Config()
    c.CourseDockerSpawner.plan_file = plan_file
    c.CourseDockerSpawner.images = IMAGES
    c.CourseDockerSpawner.network_name = NETWORK
    for key, value in options.items():
        setattr(c.CourseDockerSpawner, key, value)
    user = SimpleNamespace(name=name, escaped_name=name, url=f"/user/{name}/")
    spawner = CourseDockerSpawner(
        user=user, hub=Hub(ip="jupyterhub", port=8081, base_url="/hub/"), config=c
    )
    spawner.api_token = f"server-token-of-{name}"
    return spawner


def start(spawner: CourseDockerSpawner):
    return asyncio.run(spawner.start())


def env_of(call: Call) -> dict[str, str]:
    return dict(line.split("=", 1) for line in call.body["Env"])


def mounts_of(call: Call) -> list[tuple[str, str, bool]]:
    mounts = call.body["HostConfig"]["Mounts"]
    for m in mounts:
        assert m["Type"] == "bind"  # a missing source fails; never a folder made by Docker
    return [(m["Source"], m["Target"], m["ReadOnly"]) for m in mounts]


@needs_root
def test_a_student_container_as_the_engine_receives_it(
    engine, plan_file, live_plan, data_dir, monkeypatch
):
    # the hub's own environment carries secrets (env.jhub): none may reach a server
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "crypt-key-of-the-hub")
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "token-of-the-proxy")
    spawner = make_spawner("sam", plan_file, mem_limit="1G", cpu_limit=1.5)
    assert start(spawner) == ("172.18.0.7", 8888)

    sam = live_plan.people["sam"].account
    home = f"{data_dir}/homes/sam"
    ex = f"{data_dir}/exchange"
    # pull_policy 'never': the image is looked up, never pulled from a registry
    assert [(c.method, c.path) for c in engine.calls] == [
        ("GET", "/images/myedu/notebook:student/json"),
        ("GET", "/containers/jupyter-sam/json"),
        ("POST", "/containers/create"),
        ("POST", f"/containers/{spawner.container_id}/start"),
        ("GET", f"/containers/{spawner.container_id}/json"),
    ]
    (create,) = engine.creates()
    assert create.query == {"name": ["jupyter-sam"]}
    body = create.body
    assert body["Image"] == "myedu/notebook:student"
    assert body["User"] == f"{sam.uid}:{sam.gid}" == "20003:20003"
    assert body["WorkingDir"] == home
    assert body["Cmd"] == ["jupyterhub-singleuser"]
    assert body["ExposedPorts"] == {"8888/tcp": None}
    host = body["HostConfig"]
    assert host["GroupAdd"] == [str(g) for g in sam.groups] == ["30001", "30002"]
    assert mounts_of(create) == [
        (home, home, False),
        (f"{data_dir}/etc", f"{data_dir}/etc", True),
        (f"{ex}/algebra/outbound", f"{ex}/algebra/outbound", True),
        (f"{ex}/algebra/inbound/sam", f"{ex}/algebra/inbound/sam", False),
        (f"{ex}/biology/outbound", f"{ex}/biology/outbound", True),
        (f"{ex}/biology/inbound/sam", f"{ex}/biology/inbound/sam", False),
        (f"{ex}/.feedback/sam", f"{ex}/.feedback/sam", True),
    ]
    assert host["Binds"] == []
    assert host["NetworkMode"] == NETWORK
    assert "PortBindings" not in host  # reached on the network, no port on the host
    assert host["Memory"] == 1024**3
    assert (host["CpuPeriod"], host["CpuQuota"]) == (100_000, 150_000)
    assert host["AutoRemove"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert "Privileged" not in host or host["Privileged"] is False

    env = env_of(create)
    assert env["USER"] == "sam" and env["HOME"] == home
    assert env["LD_PRELOAD"] == "libnss_wrapper.so"
    assert env["NSS_WRAPPER_PASSWD"] == f"{data_dir}/etc/nss/sam.passwd"
    assert env["NSS_WRAPPER_GROUP"] == f"{data_dir}/etc/nss/sam.group"
    assert env["JUPYTER_CONFIG_DIR"] == f"{data_dir}/etc/jupyter/roles/student"
    assert env["JUPYTER_CONFIG_PATH"] == f"{data_dir}/etc/jupyter"
    assert env["JUPYTERHUB_USER"] == "sam"
    assert env["JUPYTERHUB_API_URL"] == "http://jupyterhub:8081/hub/api"
    assert env["JUPYTERHUB_ROOT_DIR"] == home
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab/workspaces/coursehub-assignments"
    assert env["JUPYTERHUB_API_TOKEN"] == "server-token-of-sam"  # the server's own token only
    assert env["MEM_LIMIT"] == str(1024**3)
    assert "JUPYTERHUB_CRYPT_KEY" not in env and "CONFIGPROXY_AUTH_TOKEN" not in env
    assert not {"crypt-key-of-the-hub", "token-of-the-proxy"} & set(env.values())

    # the home was made before the container started, the person's own and private
    st = os.stat(home)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (sam.uid, sam.gid, 0o700)


@needs_root
def test_in_the_system_layout_the_student_container_mounts_the_pocs_places(engine, tmp_path):
    root = str(tmp_path / "root")
    plan = derive(parse_site(two_course_data()), root, isolated=True, layout=SYSTEM)
    start(make_spawner("tom", write_plan(plan, tmp_path / "plan.json")))
    (create,) = engine.creates()
    ex = f"{root}/srv/nbgrader/exchange"
    home = f"{root}/srv/jupyterhub/homes/tom"
    assert mounts_of(create) == [
        (home, home, False),
        (f"{root}/etc/jupyterhub", f"{root}/etc/jupyterhub", True),
        (f"{ex}/biology/outbound", f"{ex}/biology/outbound", True),
        (f"{ex}/biology/inbound/tom", f"{ex}/biology/inbound/tom", False),
        (f"{ex}/.feedback/tom", f"{ex}/.feedback/tom", True),
    ]
    tom = plan.people["tom"].account
    assert create.body["User"] == f"{tom.uid}:{tom.gid}"
    env = env_of(create)
    assert env["NSS_WRAPPER_PASSWD"] == f"{root}/etc/jupyterhub/nss/tom.passwd"
    assert env["JUPYTER_CONFIG_PATH"] == f"{root}/etc/jupyterhub"
    assert os.stat(home).st_uid == tom.uid


@needs_root
def test_an_instructor_container_reads_outbound_of_their_courses_only(
    engine, plan_file, live_plan, data_dir
):
    start(make_spawner("ines", plan_file))
    (create,) = engine.creates()
    ines = live_plan.people["ines"].account
    ex = f"{data_dir}/exchange"
    assert create.body["Image"] == "myedu/notebook:instructor"
    assert create.body["User"] == f"{ines.uid}:{ines.gid}"
    assert create.body["HostConfig"]["GroupAdd"] == [
        str(live_plan.ids.course_gid("algebra")),
        str(live_plan.ids.course_gid("biology")),
    ]
    assert mounts_of(create) == [
        (f"{data_dir}/homes/ines", f"{data_dir}/homes/ines", False),
        (f"{data_dir}/etc", f"{data_dir}/etc", True),
        (f"{ex}/algebra/outbound", f"{ex}/algebra/outbound", True),
        (f"{ex}/biology/outbound", f"{ex}/biology/outbound", True),
    ]
    assert env_of(create)["JUPYTER_CONFIG_DIR"] == f"{data_dir}/etc/jupyter/roles/instructor"


@needs_root
def test_a_person_in_no_course_gets_the_standard_image_and_no_exchange(
    engine, plan_file, live_plan, data_dir
):
    start(make_spawner("pat", plan_file))
    (create,) = engine.creates()
    pat = live_plan.people["pat"].account
    assert create.body["Image"] == "myedu/notebook:standard"
    assert create.body["User"] == f"{pat.uid}:{pat.gid}"
    assert "GroupAdd" not in create.body["HostConfig"]  # docker-py sends none for no group
    assert mounts_of(create) == [
        (f"{data_dir}/homes/pat", f"{data_dir}/homes/pat", False),
        (f"{data_dir}/etc", f"{data_dir}/etc", True),
    ]


@needs_root
def test_no_container_ever_runs_as_root_or_jovyan_nor_shares_a_uid(engine, plan_file, live_plan):
    for name in live_plan.people:
        start(make_spawner(name, plan_file))
    users = [c.body["User"] for c in engine.creates()]
    assert len(users) == len(set(users)) == len(live_plan.people)
    for user in users:
        uid, gid = (int(x) for x in user.split(":"))
        assert uid not in (0, 1000) and gid not in (0, 100)


@needs_root
def test_stop_removes_the_container(engine, plan_file):
    spawner = make_spawner("tom", plan_file)
    start(spawner)
    cid = spawner.container_id
    asyncio.run(spawner.stop())
    assert [(c.method, c.path) for c in engine.calls[-2:]] == [
        ("POST", f"/containers/{cid}/stop"),
        ("DELETE", f"/containers/{cid}"),
    ]
    assert engine.containers == {}
    assert spawner.get_state() == {}


@needs_root
def test_configuration_adds_to_a_container_and_never_changes_its_identity(
    engine, plan_file, live_plan, tmp_path
):
    shared = str(tmp_path / "datasets")
    spawner = make_spawner(
        "tom",
        plan_file,
        extra_create_kwargs={"user": "1000:100", "labels": {"site": "test"}},
        extra_host_config={"group_add": ["0"], "cap_drop": [], "shm_size": "256m"},
        mounts=[{"type": "bind", "source": shared, "target": "/datasets", "read_only": True}],
    )
    start(spawner)
    (create,) = engine.creates()
    tom = live_plan.people["tom"].account
    assert create.body["User"] == f"{tom.uid}:{tom.gid}"
    assert create.body["Labels"] == {"site": "test"}
    host = create.body["HostConfig"]
    assert host["GroupAdd"] == [str(live_plan.ids.course_gid("biology"))]
    assert host["CapDrop"] == ["ALL"]
    assert host["ShmSize"] == 256 * 1024**2
    assert mounts_of(create)[0] == (shared, "/datasets", True)
    assert len(mounts_of(create)) == 1 + 5  # tom's own five follow


def test_grader_accounts_and_unknown_names_are_refused_before_anything_is_made(
    engine, plan_file, live_plan
):
    for name, message in [
        ("grader-algebra", "'grader-algebra' is a course's grader account"),
        ("mallory", "'mallory' is not in the site file"),
    ]:
        with pytest.raises(ValueError, match=message):
            start(make_spawner(name, plan_file))
    assert engine.calls == []
    assert os.listdir(live_plan.paths.homes) == []


def test_the_server_token_scopes_come_from_the_plan(plan_file, live_plan):
    for name in ("ines", "sam", "pat"):
        spawner = make_spawner(name, plan_file)
        scopes = spawner.server_token_scopes
        assert callable(scopes)  # read at each spawn, so a roster change applies at the next
        assert scopes(spawner) == list(live_plan.people[name].server_token_scopes)
    ines = make_spawner("ines", plan_file)
    assert "list:services!service=algebra" in ines.server_token_scopes(ines)
    grader = make_spawner("grader-biology", plan_file)
    with pytest.raises(ValueError, match="grader account"):
        grader.server_token_scopes(grader)


def test_users_cannot_choose_an_image(engine, plan_file):
    spawner = make_spawner("sam", plan_file, allowed_images=list(IMAGES.values()))
    spawner.user_options = {"image": IMAGES["instructor"]}
    with pytest.raises(web.HTTPError) as raised:
        start(spawner)
    assert raised.value.status_code == 400
    assert engine.creates() == []


def test_defaults_remove_containers_pull_nothing_and_open_lab(plan_file):
    spawner = make_spawner("sam", plan_file)
    assert spawner.remove is True
    assert spawner.pull_policy == "never"
    assert spawner.default_url == "/lab/workspaces/coursehub-assignments"  # a student
    assert make_spawner("ines", plan_file).default_url == "/lab/workspaces/coursehub-courses"
    assert make_spawner("pat", plan_file).default_url == "/lab"  # in no course
    assert spawner.nss_wrapper == "libnss_wrapper.so"


def test_images_must_name_known_environments(plan_file):
    with pytest.raises(TraitError, match="unknown environment.*learner"):
        make_spawner("sam", plan_file, images={**IMAGES, "learner": "x"})
    with pytest.raises(TraitError, match="no image given for student"):
        make_spawner("sam", plan_file, images={**IMAGES, "student": ""})
