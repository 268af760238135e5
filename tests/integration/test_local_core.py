"""The core, end to end: a site file with three courses becomes a running hub.

Real configurable-http-proxy, JupyterHub, grader servers and user servers on
loopback, started through the CLI, reached only through public interfaces.
The tests run in order against one installation; the last ones stop it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import requests

from conftest import Installation, wait_for
from hubclient import Person
from kernel import Kernel

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("these tests check uid isolation, which needs root", allow_module_level=True)

SITE = {
    "org": "Integration University",
    "auth": {"type": "first-use", "min_password_length": 8},
    "admins": ["ada"],
    "people": ["ines", "cleo", "sam", "tom"],
    "courses": [
        {"id": "algebra", "title": "Linear Algebra", "instructors": ["ines"], "students": ["sam"]},
        {
            "id": "biology",
            "title": "Biology 1",
            "instructors": ["ines"],
            "students": ["sam", "tom"],
        },
        {"id": "chem", "title": "Chemistry", "instructors": ["cleo"], "students": ["tom"]},
    ],
}


def password(name: str) -> str:
    return f"{name}-pass-word-1"


@pytest.fixture(scope="module")
def people(inst):
    """Everyone logged in through the login form (a student's first login sets the
    password; an instructor's is set through a set-password link first)."""
    for name in ["ines", "cleo"]:
        inst.give_password(name, password(name))
    logged = {}
    for name in ["ines", "cleo", "sam", "tom"]:
        p = Person(inst.url, name)
        p.login(password(name))
        assert p.logged_in(), f"{name} could not log in"
        logged[name] = p
    return logged


def test_up_is_healthy(inst):
    status = inst.status()
    assert status["running"] is True
    assert {"proxy", "hub", "grader-algebra", "grader-biology", "grader-chem"} <= set(
        status["processes"]
    )
    assert all(p["ok"] for p in status["processes"].values()), status["processes"]
    assert inst.cli("status").returncode == 0


def test_login_form_refuses_strangers_and_grader_accounts(inst):
    for name in ["mallory", "grader-algebra"]:
        p = Person(inst.url, name)
        p.login("whatever-password-1")
        assert not p.logged_in(), f"{name} must not be able to log in"
    # a listed person with the wrong password, after their first login
    sam = Person(inst.url, "sam")
    sam.login(password("sam"))
    assert sam.logged_in()
    again = Person(inst.url, "sam")
    again.login("not-sams-password")
    assert not again.logged_in()


def test_instructor_reaches_formgrader_of_both_courses(inst, people):
    ines = people["ines"]
    for course in ["algebra", "biology"]:
        r = ines.visit(f"services/{course}/formgrader")
        assert r.status_code == 200, (course, r.status_code, r.url)
        assert "nbgrader" in r.text and f"/services/{course}/formgrader" in r.url
    # but not of a course she does not teach
    r = ines.visit("services/chem/formgrader")
    assert r.status_code == 403


def test_student_is_refused_at_formgrader(inst, people):
    for course in ["algebra", "biology", "chem"]:
        r = people["sam"].visit(f"services/{course}/formgrader")
        assert r.status_code == 403, (course, r.status_code, r.url)


@pytest.fixture(scope="module")
def released(inst):
    """One assignment released in each course, by each course's grader account."""
    for course in ["algebra", "biology", "chem"]:
        inst.cli("sample", course, "--name", f"hw-{course}")
    return True


@pytest.fixture(scope="module")
def servers(inst, people, released):
    for name in ["ines", "sam", "tom"]:
        people[name].start_server()
    return people


def test_student_lists_show_exactly_their_courses(servers):
    sam, tom = servers["sam"], servers["tom"]
    assert sam.server("GET", "courses").json()["value"] == ["algebra", "biology"]
    assert tom.server("GET", "courses").json()["value"] == ["biology", "chem"]
    for course in ["algebra", "biology"]:
        listed = sam.server("GET", "assignments", params={"course_id": course}).json()
        assert [a["assignment_id"] for a in listed["value"]] == [f"hw-{course}"]
    # chem is not sam's: nbgrader refuses to list it for him
    listed = sam.server("GET", "assignments", params={"course_id": "chem"}).json()
    assert not listed.get("value")
    # students have no course list (formgrader links) at all: not in their server
    assert sam.server("GET", "formgraders").status_code == 404


def test_instructor_course_list_shows_exactly_her_courses(servers):
    r = servers["ines"].server("GET", "formgraders")
    assert r.status_code == 200
    courses = r.json()["value"]
    assert [c["course_id"] for c in courses] == ["algebra", "biology"]
    assert all(
        c["url"].endswith(f"/services/{c['course_id']}/lab?formgrader=true") for c in courses
    )


def test_extensions_per_role_on_the_server(servers, inst):
    sam, ines = servers["sam"], servers["ines"]
    # no formgrader handler in people's servers, students and instructors alike
    for p in (sam, ines):
        assert p.server("GET", "formgrader").status_code == 404
    # validate is there for both
    for p in (sam, ines):
        assert p.server("GET", "nbgrader_version", params={"version": "0"}).status_code == 200
    # the Lab page tells the UI which plugins are off
    page = sam.server("GET", "lab").text
    assert "@jupyter/nbgrader:formgrader" in page.split("disabledExtensions", 1)[1][:2000]


def test_every_server_has_its_own_uid_and_privacy_holds(servers, inst):
    plan = inst.plan()
    uids = {}
    for name in ["sam", "tom", "ines"]:
        k = Kernel(servers[name])
        try:
            uids[name] = int(k.run("import os; print(os.getuid())"))
            if name == "sam":
                denied = k.run(
                    "import os\n"
                    "for path in "
                    + repr(
                        [
                            plan["courses"]["algebra"]["course_root"],
                            plan["courses"]["algebra"]["account"]["home"],
                            plan["people"]["tom"]["account"]["home"],
                            plan["people"]["ines"]["account"]["home"],
                            plan["paths"]["secrets"],
                            plan["paths"]["state"],
                        ]
                    )
                    + ":\n"
                    "    try:\n"
                    "        os.listdir(path); print('READ', path)\n"
                    "    except PermissionError:\n"
                    "        print('denied', path)\n"
                    "import getpass; print('me', getpass.getuser())\n"
                )
                assert "READ" not in denied, denied
                assert denied.count("denied") == 6
                assert "me sam" in denied  # nbgrader files submissions under this name
        finally:
            k.close()
    for name, uid in uids.items():
        assert uid == plan["people"][name]["account"]["uid"]
    assert len(set(uids.values())) == 3
    # grader servers: each under its own uid, none root
    grader_uids = {}
    for pid in inst.processes():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"jupyterhub-singleuser" in cmd and b"--ServerApp.port=" in cmd:
            port = int(cmd.split(b"--ServerApp.port=")[1].split(b"\0")[0])
            grader_uids[port] = os.stat(f"/proc/{pid}").st_uid
    expected = {g["port"]: g["account"]["uid"] for g in plan["courses"].values()}
    assert grader_uids == expected
    assert 0 not in grader_uids.values()


def test_folder_modes_on_disk(inst):
    plan = inst.plan()
    for folder in plan["folders"]:
        st = os.stat(folder["path"])
        assert stat.S_IMODE(st.st_mode) == folder["mode"], folder
        assert (st.st_uid, st.st_gid) == (folder["uid"], folder["gid"]), folder
    secrets = Path(plan["paths"]["secrets"])
    for f in secrets.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_secrets_not_in_student_environment(servers, inst):
    secret_values = json.loads((inst.data_dir / "secrets" / "secrets.json").read_text()).values()
    assert secret_values
    k = Kernel(servers["sam"])
    try:
        env = k.run("import os, json; print(json.dumps(dict(os.environ)))")
    finally:
        k.close()
    # the kernel's whole environment came back (an empty answer would hold no secret either)
    assert "JUPYTERHUB_API_TOKEN" in json.loads(env), env[:500]
    for value in secret_values:
        assert value not in env


def test_server_token_has_fewest_scopes(servers, inst):
    """The student's server token works for what nbgrader needs, and no more."""
    k = Kernel(servers["sam"])
    try:
        out = k.run(
            "import os, json, urllib.request\n"
            "api = os.environ['JUPYTERHUB_API_URL']\n"
            "h = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
            "def get(path):\n"
            "    try:\n"
            "        with urllib.request.urlopen(urllib.request.Request(api + path, headers=h)) as r:\n"
            "            return r.status, json.load(r)\n"
            "    except urllib.error.HTTPError as e:\n"
            "        return e.code, None\n"
            "print(json.dumps({'me': get('/users/sam'), 'tom': get('/users/tom')[0],\n"
            "  'users': get('/users')[0], 'services': get('/services')[1],\n"
            "  'groups': get('/groups')[0]}))\n"
        )
    finally:
        k.close()
    result = json.loads(out)
    status, me = result["me"]
    assert status == 200 and sorted(me["groups"]) == ["nbgrader-algebra", "nbgrader-biology"]
    assert result["tom"] in (403, 404)
    assert result["users"] in (200, 403)  # an empty list at most
    assert not result["services"]  # a student sees no grader service
    assert result["groups"] == 403


def test_grader_kill_is_restarted_and_logged(inst):
    plan = inst.plan()
    port = plan["courses"]["chem"]["port"]
    before = inst.process_pid("grader-chem")
    os.kill(before, signal.SIGKILL)
    wait_for(
        lambda: (
            inst.status()["processes"]["grader-chem"]["ok"]
            and inst.process_pid("grader-chem", missing_ok=True) not in (None, before)
        ),
        60,
        "grader-chem to come back",
    )
    assert inst.status()["processes"]["grader-chem"]["restarts"] >= 1
    assert "grader-chem exited" in (inst.data_dir / "logs" / "coursehub.log").read_text()
    assert requests.get(f"http://127.0.0.1:{port}/services/chem/api", timeout=5).status_code == 200


def test_hub_kill_keeps_user_servers(servers, inst):
    sam = servers["sam"]
    k = Kernel(sam)
    try:
        k.run("x = 41")
        hub_pid = inst.hub_pid()
        os.kill(hub_pid, signal.SIGKILL)
        # while the hub is down, the proxy still carries sam to his server
        assert sam.server("GET", "api/status").status_code == 200
        assert k.run("print(x + 1)").strip() == "42"
        wait_for(
            lambda: (
                inst.status()["processes"]["hub"]["ok"]
                and inst.hub_pid(missing_ok=True) not in (None, hub_pid)
            ),
            60,
            "the hub to come back",
        )
        model = sam.hub_api("GET", "users/sam").json()
        assert model["servers"][""]["ready"] is True
        assert sam.server("GET", "api/status").status_code == 200
        assert k.run("print(x + 1)").strip() == "42"
    finally:
        k.close()


def test_side_by_side_installation_with_a_shared_password(inst, show_logs):
    """A second installation (other data folder, other ports) runs beside the first;
    its demo-style shared password lets in only the people of its site file."""
    other = show_logs(
        Installation(
            {
                "org": "Other",
                "auth": {"type": "shared-password", "user_password": "shared-demo-pw"},
                "people": ["una", "vic"],
                "courses": [{"id": "algebra", "instructors": ["una"], "students": ["vic"]}],
            },
            "side",
        )
    )
    try:
        other.up()
        assert other.status()["running"] and inst.status()["running"]
        una = Person(other.url, "una")
        una.login("shared-demo-pw")
        assert una.logged_in()
        assert una.visit("services/algebra/formgrader").status_code == 200
        stranger = Person(other.url, "mallory")
        stranger.login("shared-demo-pw")
        assert not stranger.logged_in()
        # the same course id in two installations: separate grader servers
        assert (
            other.plan()["courses"]["algebra"]["port"] != inst.plan()["courses"]["algebra"]["port"]
        )

        # and no uid or gid in common: one installation's people cannot read the other's files
        def numbers(plan):
            accounts = [p["account"] for p in plan["people"].values()]
            accounts += [g["account"] for g in plan["courses"].values()]
            return {a["uid"] for a in accounts} | {gid for a in accounts for gid in a["groups"]}

        assert not numbers(other.plan()) & numbers(inst.plan())
        other.down()
        assert other.processes() == []
        # the first one still runs: all() of no process at all would say nothing
        status = inst.status()
        assert status["running"] and "hub" in status["processes"], status
        assert all(p["ok"] for p in status["processes"].values()), status["processes"]
    finally:
        other.down()
        other.remove()


def _api(inst, token: str, method: str, path: str, **kw) -> requests.Response:
    return requests.request(
        method,
        f"{inst.url}hub/api/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=10,
        **kw,
    )


def test_service_tokens_hold_the_fewest_scopes_that_work(inst, people):
    """Each grader service can do what nbgrader asks of it for its own course, and no more."""
    secrets = json.loads((inst.data_dir / "secrets" / "secrets.json").read_text())
    algebra = secrets["service_token:algebra"]
    # works: its own groups (the course list), its student group (adding a student)
    r = _api(inst, algebra, "GET", "users/grader-algebra")
    assert r.status_code == 200 and "formgrade-algebra" in r.json()["groups"]
    assert [g["name"] for g in _api(inst, algebra, "GET", "groups").json()] == ["nbgrader-algebra"]
    r = _api(inst, algebra, "POST", "groups/nbgrader-algebra/users", json={"users": ["sam"]})
    assert r.status_code == 200
    # refused: other courses, other people, servers, admin
    assert _api(
        inst, algebra, "POST", "groups/nbgrader-biology/users", json={"users": ["sam"]}
    ).status_code in (403, 404)
    assert _api(
        inst, algebra, "POST", "groups/formgrade-algebra/users", json={"users": ["sam"]}
    ).status_code in (403, 404)
    assert _api(inst, algebra, "GET", "users/sam").status_code in (403, 404)
    assert _api(inst, algebra, "DELETE", "users/sam/server").status_code in (403, 404)
    assert _api(inst, algebra, "POST", "users/newbie").status_code == 403
    # coursehub's own token: reads users, servers and services, manages course groups;
    # it cannot touch servers, tokens or admin rights, nor other groups
    auto = secrets["automation_token"]
    assert _api(inst, auto, "GET", "users").status_code == 200
    assert sorted(_api(inst, auto, "GET", "services").json()) == [
        "algebra",
        "biology",
        "chem",
        "coursehub",
    ]
    groups = {g["name"] for g in _api(inst, auto, "GET", "groups").json()}
    assert groups == {
        f"{k}-{c}" for k in ("nbgrader", "formgrade") for c in ("algebra", "biology", "chem")
    }
    assert _api(inst, auto, "DELETE", "users/sam/server").status_code in (403, 404)
    assert _api(inst, auto, "POST", "users/sam/tokens", json={}).status_code in (403, 404)
    assert _api(inst, auto, "PATCH", "users/sam", json={"admin": True}).status_code == 403
    assert _api(inst, auto, "POST", "groups/staff").status_code in (403, 404)


def test_instructor_token_sees_only_her_courses_services(servers):
    k = Kernel(servers["ines"])
    try:
        out = k.run(
            "import os, json, urllib.request\n"
            "req = urllib.request.Request(os.environ['JUPYTERHUB_API_URL'] + '/services',\n"
            "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
            "print(json.dumps(sorted(json.load(urllib.request.urlopen(req)))))\n"
        )
    finally:
        k.close()
    assert json.loads(out) == ["algebra", "biology"]


def test_grader_service_has_the_grader_extensions(servers):
    ines = servers["ines"]
    r = ines.visit("services/algebra/formgrader/manage_assignments")
    assert r.status_code == 200
    # the grader's server has no assignment list and no course list (the POC's table)
    assert (
        ines.get_as_browser(
            "GET", "services/algebra/assignments", params={"course_id": "algebra"}
        ).status_code
        == 404
    )
    assert ines.get_as_browser("GET", "services/algebra/formgraders").status_code == 404
    page = ines.visit("services/algebra/lab").text
    disabled = page.split("disabledExtensions", 1)[1][:2000]
    assert "@jupyter/nbgrader:assignment-list" in disabled
    assert "@jupyter/nbgrader:formgrader" not in disabled


def test_submission_is_filed_under_the_student(servers, inst):
    sam = servers["sam"]
    r = sam.server(
        "POST", "assignments/fetch", data={"course_id": "algebra", "assignment_id": "hw-algebra"}
    )
    assert r.json()["success"], r.text
    r = sam.server(
        "POST", "assignments/submit", data={"course_id": "algebra", "assignment_id": "hw-algebra"}
    )
    assert r.json()["success"], r.text
    inbound = Path(inst.plan()["paths"]["exchange"], "algebra", "inbound")
    entries = list(inbound.iterdir())
    assert [e.name.split("+")[0] for e in entries] == ["sam"]
    assert entries[0].stat().st_uid == inst.plan()["people"]["sam"]["account"]["uid"]
    listed = inst.cli("nbgrader", "algebra", "--", "list", "--inbound")
    assert "algebra sam hw-algebra" in listed.stdout + listed.stderr


def test_down_then_up_keeps_everything(inst, servers):
    sam = servers["sam"]
    k = Kernel(sam)
    try:
        k.run("open('notes.txt', 'w').write('kept')")
    finally:
        k.close()
    secrets_before = (inst.data_dir / "secrets" / "secrets.json").read_text()
    t0 = time.monotonic()
    inst.down()
    assert time.monotonic() - t0 < 30
    assert inst.processes() == [], "down left processes behind"
    assert inst.status()["running"] is False
    inst.up()
    assert (inst.data_dir / "secrets" / "secrets.json").read_text() == secrets_before
    plan = inst.plan()
    assert Path(plan["people"]["sam"]["account"]["home"], "notes.txt").read_text() == "kept"
    assert Path(plan["courses"]["algebra"]["course_root"], "gradebook.db").exists()
    # the same password still works: users and their passwords were kept
    again = Person(inst.url, "sam")
    again.login(password("sam"))
    assert again.logged_in()
    again.start_server()
    assert again.server("GET", "courses").json()["value"] == ["algebra", "biology"]
