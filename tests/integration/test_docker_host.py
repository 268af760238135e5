"""The Docker host for real: the rendered folder built and started with its own
start.sh on a Docker engine, then a term's course cycle through the published
port only: release, fetch, submit, collect, autograde in each course's grader
container (in its grading sandbox), feedback.

Irene teaches chem110 and phys120; kai takes both, lea only chem110. Everything
goes through http://127.0.0.1:PORT (the proxy's container): logins, each
person's server (a container of their role's image, under their own uid),
the formgrader of each course's grader container through the hub's OAuth.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from dockerengine import docker
from exchange_privacy import attack, attack_targets
from term import (
    answer,
    create_and_release,
    feedback_shows_score,
    fetch,
    grade_manually,
    ok,
    release_feedback,
    scores,
    submit,
)

from conftest import coursehub, free_port_block, wait_for
from hubclient import Person
from kernel import Kernel

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("a Docker host is prepared and started as root", allow_module_level=True)

COURSES = {"chem110": ["kai", "lea"], "phys120": ["kai"]}
NETWORK = "coursehub-test-net"
RIGHT = "def square(x):\n    return x * x"
WRONG = "def square(x):\n    return x + x"
# lea's chem110 answer: right only if one of the ways out of the grading sandbox that a
# grader container offers got through (a user namespace of its own, the grader's token in
# /proc, the gradebook, the hub on the compose network); each failing, she scores zero.
ESCAPE = """\
import ctypes, os, socket
got = []
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) == 0:
    got.append("userns")
for pid in ("1", "self", "thread-self"):
    try:
        if b"TOKEN" in open(f"/proc/{{pid}}/environ", "rb").read():
            got.append("token")
    except OSError:
        pass
if any("TOKEN" in k for k in os.environ):
    got.append("token in env")
for path in ({gradebook!r}, {source!r}):
    if os.path.exists(path):
        got.append(path)
try:
    socket.create_connection(("jupyterhub", 8081), 3).close()
    got.append("hub")
except OSError:
    pass
if got:
    def square(x):
        return x * x
"""


def site(port: int, base: str) -> dict:
    return {
        "org": "Harbor College",
        "auth": {"type": "first-use"},
        "hub": {"ip": "127.0.0.1", "port": port, "base_url": "/"},
        "courses": [
            {"id": c, "title": c.upper(), "instructors": ["irene"], "students": students}
            for c, students in COURSES.items()
        ],
        "docker": {
            "base_images": {"notebook": base, "hub": base, "proxy": base},
            "network": {"name": NETWORK, "external": True},
        },
    }


class Stack:
    """A rendered folder on this Docker host and the host folders under `root`."""

    def __init__(self, work: Path, port: int, base: str):
        self.work = work
        self.root = work / "root"
        self.data_dir = self.root  # named in the logs of a failed test
        self.out = work / "compose"
        self.site_file = work / "site.yaml"
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.site_file.write_text(yaml.safe_dump(site(port, base), sort_keys=False))

    def render(self) -> subprocess.CompletedProcess:
        return coursehub(
            "render", "compose", "--site", str(self.site_file),
            "--out", str(self.out), "--root", str(self.root),
        )  # fmt: skip

    def run(self, *argv: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            list(argv), cwd=self.out, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "COMPOSE": "docker-compose", "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{argv} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
        return proc

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run("docker-compose", *args, timeout=timeout)

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "hub/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def plan(self) -> dict:
        return json.loads((self.root / "srv/jupyterhub/state/plan.json").read_text())

    def logs(self) -> str:
        proc = subprocess.run(
            ["docker-compose", "logs", "--no-color", "--tail", "60"],
            cwd=self.out, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        people = docker(
            "ps", "-a", "--filter", "name=jupyter-", "--format", "{{.Names}}", check=False
        )
        out = [proc.stdout, proc.stderr]
        for name in people.stdout.split():
            logs = docker("logs", "--tail", "40", name, check=False)
            out.append(f"----- {name}\n{logs.stdout}{logs.stderr}")
        return "\n".join(out)

    def remove(self) -> None:
        subprocess.run(
            ["docker-compose", "down", "--volumes", "--remove-orphans", "--timeout", "5"],
            cwd=self.out, capture_output=True, timeout=300,
        )  # fmt: skip
        people = docker("ps", "-aq", "--filter", f"network={NETWORK}", check=False).stdout.split()
        if people:
            docker("rm", "--force", *people, check=False)
        docker("network", "rm", NETWORK, check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], check=False)


@pytest.fixture(scope="module")
def stack(docker_engine, docker_base, request):
    work = Path(tempfile.mkdtemp(prefix="coursehub-dockerhost-", dir="/tmp"))
    work.chmod(0o755)  # the servers' uids traverse it to their folders
    s = Stack(work, free_port_block(23000), docker_base)
    try:
        s.render()
        started = time.monotonic()
        s.run("./start.sh")
        wait_for(s.healthy, 180, "the hub through the proxy container")
        s.start_seconds = time.monotonic() - started
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        for tag in _rendered_images(s):
            docker_engine.images.append(tag)
        s.remove()


def _rendered_images(s: Stack) -> list[str]:
    compose = yaml.safe_load((s.out / "docker-compose.yml").read_text()) if s.out.exists() else {}
    tags = {svc["image"] for svc in (compose or {}).get("services", {}).values()}
    starter = (s.out / "start.sh").read_text() if s.out.exists() else ""
    tags |= {w for line in starter.splitlines() for w in line.split() if "/notebook:" in w}
    return sorted(t.strip("'") for t in tags)


@pytest.fixture(autouse=True)
def _stack_logs(request, show_logs):
    """The containers' logs, printed when a test of the stack fails."""
    if "stack" in request.fixturenames:
        show_logs(request.getfixturevalue("stack"))


@pytest.fixture(scope="module")
def people(stack):
    link = stack.compose(
        "exec", "-T", "jupyterhub", "coursehub", "password-link", "irene",
        "--data-dir", str(stack.root / "srv/jupyterhub"),
    ).stdout  # fmt: skip
    url = next(w for w in link.split() if "set-password" in w)
    irene = Person(stack.url, "irene")
    assert irene.set_password(url, "irene-password-9").status_code == 200
    logged = {"irene": irene}
    for name in ("irene", "kai", "lea"):
        p = logged.get(name) or Person(stack.url, name)
        p.login(f"{name}-password-9")
        assert p.logged_in(), name
        logged[name] = p
    for name in ("kai", "lea"):
        logged[name].start_server(timeout=180)
    return logged


def test_each_persons_server_is_a_container_of_their_role_under_their_uid(stack, people):
    plan = stack.plan()
    for name in ("kai", "lea"):
        info = json.loads(docker("inspect", f"jupyter-{name}").stdout)[0]
        account = plan["people"][name]["account"]
        assert info["Config"]["User"] == f"{account['uid']}:{account['gid']}"
        assert info["Config"]["Image"].endswith(":learner")
        assert info["HostConfig"]["CapDrop"] == ["ALL"]
        mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
        assert mounts[account["home"]] is True
        ex = plan["paths"]["exchange"]
        for course, students in COURSES.items():
            if name in students:
                assert mounts[f"{ex}/{course}/outbound"] is False
                assert mounts[f"{ex}/{course}/inbound/{name}"] is True
        assert not any(p.startswith(plan["paths"]["secrets"]) for p in mounts)
        assert not any(p.startswith(plan["paths"]["state"]) for p in mounts)


def submitted(irene: Person, course: str) -> set[str]:
    return {
        s["student"]
        for s in ok(irene.service("GET", course, "formgrader/api/submissions/hw1"))
        if s["submitted"]
    }


def test_the_course_cycle_across_containers(stack, people):
    """Release in each course's grader container, fetch and submit from each student's
    container, collect back in the grader's: every step crosses containers through the
    host folders the Plan gives each of them."""
    irene, kai, lea = people["irene"], people["kai"], people["lea"]
    for course in COURSES:
        create_and_release(irene, course, "hw1")
    for course, students in COURSES.items():
        for name in students:
            listed = ok(people[name].server("GET", "assignments", params={"course_id": course}))
            assert [a["status"] for a in listed["value"]] == ["released"], (name, course)
            fetch(people[name], course, "hw1")
    answer(kai, "chem110", "hw1", RIGHT, "minus times minus")
    answer(kai, "phys120", "hw1", RIGHT, "plus")
    answer(lea, "chem110", "hw1", WRONG, "?")
    for course, students in COURSES.items():
        for name in students:
            submit(people[name], course, "hw1")
    assert ok(lea.server("GET", "courses"))["value"] == ["chem110"]
    for course, students in COURSES.items():
        ok(irene.service("POST", course, "formgrader/api/assignment/hw1/collect"))
        assert submitted(irene, course) == set(students), course
    # what each student submitted is theirs, in their course's grader folder
    plan = stack.plan()
    for course, students in COURSES.items():
        root = Path(plan["courses"][course]["course_root"])
        for name in students:
            nb = root / "submitted" / name / "hw1" / "hw1.ipynb"
            assert nb.is_file() and "def square" in nb.read_text(), nb


def test_the_exchange_stays_private_from_inside_a_students_container(stack, people):
    """From kai's own container, every way into lea's chem110 work and the grader's
    fails: what is not mounted is not there, what is mounted keeps the Plan's modes
    (the same attacks as on one machine, tests/integration/exchange_privacy.py)."""
    plan = stack.plan()
    ex = Path(plan["paths"]["exchange"])
    lea_before = {p.name for p in (ex / "chem110" / "inbound" / "lea").iterdir()}
    results = attack(people["kai"], attack_targets(plan, "chem110", "hw1", "lea"))
    # The engine makes the folders that hold a container's mount points (root's, 0755): kai
    # may list them, and they hold his own mount points alone, never another's folder.
    stubs = {"list inbound", "list exchange root"}
    allowed = {name: how for name, how in results.items() if how == "ALLOWED"}
    assert set(allowed) <= stubs, f"kai got through from his container: {allowed}"
    k = Kernel(people["kai"])
    try:
        seen = json.loads(
            k.run(
                "import json, os\n"
                f"ex = {str(ex)!r}\n"
                "print(json.dumps({p: sorted(os.listdir(os.path.join(ex, p)))"
                " for p in ('', 'chem110', 'chem110/inbound', '.feedback')}))"
            )
            .strip()
            .splitlines()[-1]
        )
    finally:
        k.close()
    assert seen == {
        "": [".feedback", "chem110", "phys120"],  # his courses, his feedback
        "chem110": ["inbound", "outbound"],
        "chem110/inbound": ["kai"],
        ".feedback": ["kai"],
    }, seen
    assert "You can only submit as yourself (kai)" in results["nbgrader submit as the other"]
    assert "pwned" not in (ex / "chem110" / "outbound" / "hw1" / "hw1.ipynb").read_text()
    assert {p.name for p in (ex / "chem110" / "inbound" / "lea").iterdir()} == lea_before
    # and kai's own submission still goes where it belongs
    before = {p.name for p in (ex / "chem110" / "inbound" / "kai").iterdir()}
    submit(people["kai"], "chem110", "hw1")
    new = {p.name for p in (ex / "chem110" / "inbound" / "kai").iterdir()} - before
    assert len(new) == 1 and next(iter(new)).startswith("kai+hw1+")


def test_autograde_and_feedback_in_the_grader_containers(stack, people):
    """Each course's grader container grades in its grading sandbox (bubblewrap, with no
    /proc there and nested user namespaces refused by seccomp): kai's right answers score,
    lea's escape attempts from chem110's sandbox get nothing; feedback goes back to each
    student's container."""
    irene, kai, lea = people["irene"], people["kai"], people["lea"]
    plan = stack.plan()
    root = plan["courses"]["chem110"]["course_root"]
    escape = ESCAPE.format(gradebook=f"{root}/gradebook.db", source=f"{root}/source/hw1")
    answer(lea, "chem110", "hw1", escape, "I tried.")
    submit(lea, "chem110", "hw1")
    ok(irene.service("POST", "chem110", "formgrader/api/assignment/hw1/collect"))
    for course, students in COURSES.items():
        for name in students:
            r = ok(irene.service("POST", course, f"formgrader/api/submission/hw1/{name}/autograde"))
            assert r["success"], (course, name, r)
    assert scores(irene, "chem110", "hw1") == {"kai": 2.0, "lea": 0.0}
    assert scores(irene, "phys120", "hw1") == {"kai": 2.0}
    logs = stack.compose("logs", "--no-color", "chem110").stdout
    assert "grading sandboxes run without /proc" in logs, logs[-3000:]
    for course, students in COURSES.items():
        for name in students:
            grade_manually(irene, course, "hw1", name, 1 if name == "kai" else 0)
        release_feedback(irene, course, "hw1")
    for student, course, score in [
        (kai, "chem110", "3"),
        (kai, "phys120", "3"),
        (lea, "chem110", "0"),
    ]:
        assert feedback_shows_score(student, course, "hw1", score), (student.name, course)


def test_users_stay_connected_while_the_hub_container_is_killed(stack, people):
    kai = people["kai"]
    docker("kill", _container(stack, "jupyterhub"))
    # the proxy's container keeps routing to kai's server with the hub down
    r = kai.server("GET", "api/contents/chem110")
    assert r.status_code == 200, r.text[:300]
    stack.compose("up", "-d", "jupyterhub")
    wait_for(stack.healthy, 120, "the hub after it was killed")
    model = kai.hub_api("GET", "users/kai").json()
    assert model["servers"][""]["ready"], model  # the restarted hub found kai's container
    assert kai.server("GET", "api/status").status_code == 200


def test_a_grader_container_restarts_and_the_formgrader_answers(stack, people):
    irene = people["irene"]
    docker("restart", "--time", "5", _container(stack, "phys120"))
    wait_for(
        lambda: irene.service("GET", "phys120", "formgrader/api/assignments").status_code == 200,
        120,
        "phys120's formgrader after its container restarted",
    )
    assert submitted(irene, "phys120") == {"kai"}


def test_down_and_up_keep_users_passwords_files_and_gradebooks(stack, people):
    env_before = (stack.out / "env.jhub").read_bytes()
    stack.compose("down", "--timeout", "10")
    leftovers = docker("ps", "-aq", "--filter", f"network={NETWORK}").stdout.split()
    if leftovers:  # people's servers are the hub's to stop; down leaves none running
        docker("rm", "--force", *leftovers)
    stack.run("./start.sh")
    wait_for(stack.healthy, 180, "the hub after down and up")
    assert (stack.out / "env.jhub").read_bytes() == env_before  # the same secrets
    for name in ("irene", "kai"):
        again = Person(stack.url, name)
        again.login(f"{name}-password-9")
        assert again.logged_in(), name
    kai = Person(stack.url, "kai")
    kai.login("kai-password-9")
    kai.start_server(timeout=180)
    names = {f["name"] for f in kai.server("GET", "api/contents/chem110/hw1").json()["content"]}
    assert "hw1.ipynb" in names
    irene = Person(stack.url, "irene")
    irene.login("irene-password-9")
    assert irene.visit("services/chem110/lab").status_code == 200
    assert submitted(irene, "chem110") == {"kai", "lea"}


def test_a_changed_site_file_is_applied_to_the_running_stack(stack, people):
    """A course and a student added: render again says what restarts, start.sh applies it,
    and what did not change keeps running."""
    grader_before = _container(stack, "chem110")
    data = yaml.safe_load(stack.site_file.read_text())
    data["courses"].append(
        {"id": "bio130", "title": "BIO", "instructors": ["irene"], "students": ["kai", "max"]}
    )
    stack.site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    said = stack.render().stdout
    assert "bio130: new, starts" in said and "bio130-receipts: new, starts" in said, said
    assert "jupyterhub: starts again (the Plan changed" in said, said  # and its new token
    assert "chem110: starts again" not in said, said
    stack.run("./start.sh")
    wait_for(stack.healthy, 180, "the hub after the change")
    assert _container(stack, "chem110") == grader_before  # left running
    newcomer = Person(stack.url, "max")
    newcomer.login("max-password-9")
    assert newcomer.logged_in()
    newcomer.start_server(timeout=180)
    irene = Person(stack.url, "irene")
    irene.login("irene-password-9")
    wait_for(
        lambda: irene.visit("services/bio130/lab").status_code == 200,
        120,
        "bio130's grader service through the hub",
    )
    create_and_release(irene, "bio130", "hw1")
    fetch(newcomer, "bio130", "hw1")
    names = {f["name"] for f in newcomer.server("GET", "api/contents/bio130/hw1").json()["content"]}
    assert "hw1.ipynb" in names


def _container(stack: Stack, service: str) -> str:
    return stack.compose("ps", "-q", service).stdout.strip()


def test_ansible_provisions_this_docker_host(docker_engine, docker_base):
    """The playbook's Docker tasks for real, against this machine and its engine (beside
    the stack above): Debian's docker.io and docker-compose, coursehub in its venv, the
    site file, render, prepare-host.sh and start.sh; the hub answers on its port; a
    second run changes nothing. Only the systemd task is left out (no systemd runs here:
    the engine was started by the tests)."""
    from test_ansible import Host, _source_snapshot, provision, recap, task_results

    work = Path(tempfile.mkdtemp(prefix="coursehub-ansible-docker-", dir="/tmp"))
    work.chmod(0o755)  # the graders' uids traverse it to their folders
    host = Host(work)
    port = free_port_block(24000)
    site = {
        "org": "Dock Academy",
        "auth": {"type": "first-use"},
        "hub": {"ip": "127.0.0.1", "port": port, "base_url": "/"},
        "courses": [{"id": "geo101", "title": "Geology", "instructors": ["uma"], "students": ["ola"]}],
        "docker": {"base_images": {"notebook": docker_base, "hub": docker_base, "proxy": docker_base}},
    }  # fmt: skip
    extra = {
        "org_name": "dockacademy",
        "coursehub_docker_source": "distribution",
        # a project of its own beside the stack above (compose names it after the folder)
        "coursehub_compose_dir": str(host.install / "ansible-stack"),
        "coursehub_network": "coursehub-ansible-net",
    }
    host.units.mkdir(parents=True)
    source = _source_snapshot(work / "source")
    try:
        first = provision(host, "compose", source, site, skip_tags="systemd", **extra)
        results = task_results(first)
        assert results["docker_host : Install the distribution's Docker engine and docker-compose"]
        assert results["compose_stack : Build the images and start the stack (start.sh)"] == {
            "changed"
        }
        assert "docker_host : Add Docker's apt repository" not in results or results[
            "docker_host : Add Docker's apt repository"
        ] == {"skipping"}
        url = f"http://127.0.0.1:{port}/hub/api/"
        wait_for(lambda: _answers(url), 180, "the hub the playbook started")
        again = provision(host, "compose", source, site, skip_tags="systemd", **extra)
        assert recap(again)["changed"] == 0, again[-6000:]
        assert task_results(again)[
            "compose_stack : Build the images and start the stack (start.sh)"
        ] == {"ok"}
        assert _answers(url)
    finally:
        folder = host.install / "ansible-stack"
        if (folder / "docker-compose.yml").exists():
            compose = yaml.safe_load((folder / "docker-compose.yml").read_text())
            docker_engine.images.extend(
                sorted({svc["image"] for svc in compose["services"].values()})
            )
            docker_engine.images.extend(
                f"dockacademy/notebook:{tag}"
                for tag in ("base", "learner", "instructor", "grader", "standard")
            )
            subprocess.run(
                ["docker-compose", "down", "--timeout", "5"], cwd=folder, capture_output=True,
                timeout=300, check=False,
            )  # fmt: skip
        docker("network", "rm", "coursehub-ansible-net", check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False
