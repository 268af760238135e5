"""Live roster and courses: changes reach the running hub, and nobody is dropped.

A student's kernel stays busy through a course add and a member add (the
running hub loads the new course itself: no restart, nobody dropped; only
coursehub's own token may ask it to).
Adding a student through the CLI, the site file or the formgrader's student
page ends in the same state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
import yaml

from conftest import coursehub, wait_for
from hubclient import Person
from kernel import Kernel

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("checks folder owners per uid: needs root", allow_module_level=True)

SITE = {
    "org": "Roster College",
    "auth": {"type": "first-use"},
    "people": ["gail", "hal"],
    "courses": [{"id": "geo", "title": "Geography", "instructors": ["gail"], "students": ["hal"]}],
}


def login(inst, name: str) -> Person:
    if name == "gail":  # the instructor: her password is set through a link, not a first login
        inst.give_password(name, f"{name}-password-7")
    p = Person(inst.url, name)
    p.login(f"{name}-password-7")
    assert p.logged_in(), f"{name} cannot log in"
    return p


def site(inst) -> dict:
    return yaml.safe_load(inst.site_file.read_text())


def state_of(inst, name: str, course: str) -> dict:
    """Everything that makes `name` a student of `course`."""
    plan = inst.plan()
    secrets_file = inst.data_dir / "secrets" / "secrets.json"
    import json

    import requests

    token = json.loads(secrets_file.read_text())["automation_token"]
    api = f"{inst.url}hub/api"
    h = {"Authorization": f"token {token}"}
    user = requests.get(f"{api}/users/{name}", headers=h, timeout=10)
    group = requests.get(f"{api}/groups/nbgrader-{course}", headers=h, timeout=10).json()
    import sqlite3

    db = Path(plan["courses"][course]["course_root"], "gradebook.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        gradebook = {r[0] for r in con.execute("SELECT id FROM student")}
    finally:
        con.close()
    inbound = Path(plan["paths"]["exchange"], course, "inbound", name)
    course_site = next(c for c in site(inst)["courses"] if c["id"] == course)
    return {
        "in site file": name in course_site["students"],
        "hub user": user.status_code == 200,
        "hub group": name in group["users"],
        "gradebook row": name in gradebook,
        "own inbound folder": inbound.is_dir()
        # ids, not people: a student who left keeps their number (and their folder)
        and inbound.stat().st_uid == plan["ids"]["people"][name],
    }


ALL_TRUE = dict.fromkeys(
    ["in site file", "hub user", "hub group", "gradebook row", "own inbound folder"], True
)


def test_changes_apply_live_and_no_session_is_dropped(inst):
    hal = login(inst, "hal")
    hal.start_server()
    k = Kernel(hal)
    try:
        k.run("state = 'kept'")
        busy = k.execute(
            "import time\ncount = 0\nfor i in range(30):\n"
            "    time.sleep(1)\n    count += 1\n    print(i, flush=True)\n"
            "print('done', count, state)"
        )
        server_before = hal.hub_api("GET", "users/hal").json()["servers"][""]["url"]
        hub_before = inst.hub_pid()
        # a new course: roles, groups, service and route loaded by the running hub
        r = inst.cli(
            "course", "add", "hist", "--title", "History", "--instructor", "gail",
            "--student", "hal", "--student", "ivy",
        )  # fmt: skip
        assert "courses started: hist" in r.stdout
        assert "loaded into the running hub (no restart): hist" in r.stdout
        assert "hub restarted" not in r.stdout
        assert inst.hub_pid() == hub_before
        # a new member of the old course
        inst.cli("member", "add", "geo", "jo")
        out = k.result(busy, timeout=120)
        assert out.strip().endswith("done 30 kept"), out[-200:]
        assert k.run("print(count, state)").strip() == "30 kept"
        assert hal.hub_api("GET", "users/hal").json()["servers"][""]["url"] == server_before
    finally:
        k.close()
    # the new course works: its formgrader for its instructor, the new people can log in
    gail = login(inst, "gail")
    assert gail.visit("services/hist/formgrader").status_code == 200
    assert gail.visit("services/geo/formgrader").status_code == 200
    for name, course in [("ivy", "hist"), ("hal", "hist"), ("jo", "geo")]:
        assert state_of(inst, name, course) == ALL_TRUE, name
    login(inst, "ivy")
    assert inst.status()["processes"]["grader-hist"]["ok"]
    assert Path(str(inst.site_file) + ".bak").exists()
    assert inst.hub_pid() == hub_before


def test_only_coursehub_may_load_courses_into_the_hub(inst):
    """POST /hub/coursehub/courses needs coursehub's own scope: a person's token, an
    admin-less instructor's and a grader service's are refused; coursehub's works."""
    url = f"{inst.url}hub/coursehub/courses"
    secrets = json.loads((inst.data_dir / "secrets" / "secrets.json").read_text())
    gail = login(inst, "gail")
    person_token = gail.hub_api("POST", "users/gail/tokens", json={}).json()["token"]
    for who, token in [
        ("an instructor", person_token),
        ("a grader service", secrets["service_token:geo"]),
        ("nobody", "not-a-token"),
    ]:
        r = requests.post(url, headers={"Authorization": f"token {token}"}, timeout=30)
        assert r.status_code == 403, (who, r.status_code, r.text)
    r = requests.post(
        url, headers={"Authorization": f"token {secrets['automation_token']}"}, timeout=30
    )
    assert r.status_code == 200 and r.json() == {"loaded": []}, r.text


def test_a_hub_start_after_a_live_course_finds_it_as_loaded(inst):
    """What the running hub loaded is what a start with the new config loads: after a
    hub restart the course still works and the hub log has no service conflict."""
    inst.cli("course", "add", "art", "--title", "Art", "--instructor", "gail")
    log = Path(inst.status()["processes"]["hub"]["log"])
    start = len(log.read_text())
    hub_before = inst.hub_pid()
    # a new admin is loaded at hub start only: the hub restarts, and says why
    data = site(inst)
    data["admins"] = ["ada"]
    inst.site_file.write_text(yaml.safe_dump(data))
    assert "hub restarted (admins changed)" in inst.up().stdout
    assert inst.hub_pid() != hub_before
    gail = login(inst, "gail")
    assert gail.visit("services/art/formgrader").status_code == 200
    after = log.read_text()[start:]
    assert "runtime-created service" not in after, after[-2000:]
    assert "No problems found" in inst.cli("doctor").stdout


def test_member_import_list_and_remove(inst, open_tmp):
    csv_file = open_tmp / "students.csv"
    csv_file.write_text("username,role\nkai,student\nlou,\n")
    inst.cli("member", "import", "geo", str(csv_file))
    for name in ["kai", "lou"]:
        assert state_of(inst, name, "geo") == ALL_TRUE
    listed = inst.cli("member", "list", "geo").stdout
    assert "kai" in listed and "gail" in listed and "instructor" in listed
    inst.cli("member", "remove", "geo", "lou")
    state = state_of(inst, "lou", "geo")
    assert state["hub group"] is False and state["in site file"] is False
    assert state["gradebook row"] is True  # grades are kept when a student leaves
    # in no course and not under people: lou may no longer log in
    assert "lou" not in inst.plan()["people"]


def test_bad_changes_are_refused_and_change_nothing(inst, open_tmp):
    before = inst.site_file.read_text()
    for args, words in [
        (("member", "add", "nope", "zed"), "no course 'nope'"),
        (("member", "add", "geo", "Zed Z"), "upper-case"),
        (("course", "add", "geo"), "exists already"),
        (("course", "add", "bad id"), "may only use"),
        (("member", "add", "geo", "gail"), "already instructor"),
    ]:
        r = inst.cli(*args, check=False)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    bad_csv = open_tmp / "bad.csv"
    bad_csv.write_text("name\nx\n")
    r = inst.cli("member", "import", "geo", str(bad_csv), check=False)
    assert r.returncode == 2 and "'username' column" in r.stderr
    assert inst.site_file.read_text() == before


def test_student_added_in_site_file_or_formgrader_ends_the_same(inst):
    # 1. in the site file, then 'coursehub up' on the running installation
    data = site(inst)
    data["people"].append("lee")
    next(c for c in data["courses"] if c["id"] == "geo")["students"].append("lee")
    inst.site_file.write_text(yaml.safe_dump(data, sort_keys=False))
    inst.up()
    assert state_of(inst, "lee", "geo") == ALL_TRUE
    # 2. in the formgrader's student page
    gail = login(inst, "gail")
    assert gail.visit("services/geo/formgrader/manage_students").status_code == 200
    r = gail.service(
        "PUT", "geo", "formgrader/api/student/max",
        json={"first_name": "Max", "last_name": "M", "email": None, "lms_user_id": None},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    wait_for(
        lambda: state_of(inst, "max", "geo") == ALL_TRUE,
        60,
        "the formgrader's student to be adopted",
    )
    login(inst, "max")


def test_course_remove_stops_its_grader_and_keeps_its_files(inst):
    plan = inst.plan()
    root = Path(plan["courses"]["hist"]["course_root"])
    r = inst.cli("course", "remove", "hist")
    assert "courses stopped" in r.stdout
    status = inst.status()
    assert status["running"] and "grader-geo" in status["processes"], status
    assert "grader-hist" not in status["processes"]
    assert all(p["ok"] for p in status["processes"].values())
    assert root.is_dir()  # sources and gradebook stay
    gail = login(inst, "gail")
    assert gail.visit("services/hist/formgrader").status_code == 404
    assert coursehub("status", "--data-dir", str(inst.data_dir)).returncode == 0
