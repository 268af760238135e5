"""More people than one answer of the hub's REST API holds (at most 200 items).

JupyterHub answers a plain `GET /users` with one page; coursehub must read every page, or it
takes the people it did not see for missing and fails creating them (409).
"""

from __future__ import annotations

import os

import pytest
import requests

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip(
        "installations run each server under its own uid: needs root", allow_module_level=True
    )

STUDENTS = [f"learner{i:03d}" for i in range(230)]
WITHOUT_COURSE = ["visitor1", "visitor2"]  # in no group: only coursehub creates their hub users

SITE = {
    "org": "Large College",
    "auth": {"type": "first-use"},
    "people": ["prof", *STUDENTS, *WITHOUT_COURSE],
    "courses": [
        {"id": "big", "title": "A big course", "instructors": ["prof"], "students": STUDENTS}
    ],
}


def hub_users(inst) -> set[str]:
    from coursehub.secrets import load_secrets

    token = load_secrets(str(inst.data_dir / "secrets"))["automation_token"]
    names: set[str] = set()
    offset = 0
    while True:
        r = requests.get(
            f"{inst.url}hub/api/users",
            params={"offset": offset, "limit": 200},
            headers={
                "Authorization": f"token {token}",
                "Accept": "application/jupyterhub-pagination+json",
            },
            timeout=10,
        )
        r.raise_for_status()
        page = r.json()
        names |= {u["name"] for u in page["items"]}
        nxt = page["_pagination"]["next"]
        if not nxt:
            return names
        offset = nxt["offset"]


def test_up_creates_every_person_as_a_hub_user(inst):
    users = hub_users(inst)
    assert set(SITE["people"]) <= users
    assert "grader-big" in users


def test_every_student_has_a_gradebook_row(inst):
    import sqlite3

    db = inst.data_dir / "graders" / "big" / "big" / "gradebook.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = {r[0] for r in con.execute("SELECT id FROM student")}
    finally:
        con.close()
    assert rows == set(STUDENTS)


def test_a_change_to_a_large_roster_applies(inst):
    inst.cli("member", "add", "big", "latecomer", "--role", "student")
    assert "latecomer" in hub_users(inst)
    # and 'up' again on the running installation sees everyone (no 409 for page two)
    out = inst.up()
    assert "409" not in out.stdout + out.stderr
    # progress lines name a few people, not the whole roster
    assert all(len(line) < 400 for line in out.stdout.splitlines()), out.stdout
