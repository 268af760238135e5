"""First-use logins through the real hub: who can claim which name, and set-password links.

Someone who only knows an instructor's or an admin's name tries their first login and is
refused (nothing is stored for the name); the operator runs `coursehub password-link`,
the person sets their password through the link and logs in; a link works once, expires,
locks after wrong codes, is for its own name only, and keeps nothing but its hash. A
student's first login still sets their password, as before.
"""

from __future__ import annotations

import dbm
import os
import stat
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from hubclient import Person

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip(
        "the password files are root's (uid-isolated install): needs root", allow_module_level=True
    )

SITE = {
    "org": "Link College",
    "auth": {"type": "first-use", "min_password_length": 10},
    "admins": ["hilde"],
    "courses": [
        {"id": "optik", "title": "Optik", "instructors": ["xena"], "students": ["wren", "yuri"]},
        {"id": "mech", "title": "Mechanik", "instructors": ["xena"], "students": []},
    ],
}
ATTACKER = "i-only-know-the-name-1"


def stored_passwords(inst) -> set[str]:
    try:
        with dbm.open(str(inst.data_dir / "state" / "passwords.dbm"), "r") as db:
            return {k.decode() for k in db.keys()}  # noqa: SIM118 - dbm objects are not iterable
    except dbm.error:
        return set()


def refused(r) -> str:
    """The link's refusal page; its text."""
    assert r.status_code == 403, (r.status_code, r.text[-400:])
    assert 'data-state="refused"' in r.text, r.text[-400:]
    return r.text


def post_form(person: Person, link: str, password: str):
    """The form's POST without opening the link first (an xsrf cookie from the login page)."""
    person.s.get(person.url("hub/login"), timeout=10)
    query = parse_qs(urlparse(link).query)
    data = {"name": query["name"][0], "code": query["code"][0]}
    data |= {"password": password, "confirm": password, "_xsrf": person._xsrf()}
    return person.s.post(person.url("hub/coursehub/set-password"), data=data, timeout=30)


def all_logs(inst) -> str:
    return "".join(p.read_text(errors="replace") for p in (inst.data_dir / "logs").rglob("*.log"))


def test_an_attacker_cannot_claim_an_instructor_or_admin_by_a_first_login(inst):
    for name in ("xena", "hilde"):
        attacker = Person(inst.url, name)
        r = attacker.login(ATTACKER)
        assert not attacker.logged_in(), f"a stranger claimed {name}'s account"
        assert r.status_code == 403
        assert "set-password link" in r.text and f"coursehub password-link {name}" in r.text
        assert name not in stored_passwords(inst)
    assert "xena" not in stored_passwords(inst) and "hilde" not in stored_passwords(inst)


def test_a_students_first_login_still_sets_the_password(inst):
    wren = Person(inst.url, "wren")
    wren.login("wren-first-use-1")
    assert wren.logged_in()
    assert "wren" in stored_passwords(inst)
    other = Person(inst.url, "wren")
    other.login("somebody-else-1")
    assert not other.logged_in()
    again = Person(inst.url, "wren")
    again.login("wren-first-use-1")
    assert again.logged_in()


def test_names_outside_the_site_file_get_no_link(inst):
    r = inst.cli("password-link", "mallory", check=False)
    assert r.returncode == 2 and "not in the site file" in r.stderr
    assert "set-password" not in r.stdout


def test_the_instructor_sets_her_password_through_the_link_once(inst):
    r = inst.cli("password-link", "xena")
    assert "instructor of mech, optik" in r.stdout and "alone" in r.stdout
    link = inst.password_link("xena")  # a second link: the first one no longer works
    query = parse_qs(urlparse(link).query)
    assert query["name"] == ["xena"] and link.startswith(inst.url)
    code = query["code"][0]
    assert len(code) >= 40

    # only the hash is kept, in a file only root reads
    store = inst.data_dir / "state" / "password-links.sqlite"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert code.encode() not in store.read_bytes()
    assert code not in all_logs(inst)

    # the first link was replaced by the second
    [old] = [line.strip() for line in r.stdout.splitlines() if "set-password?" in line]
    refused(Person(inst.url, "xena").visit(old.removeprefix(inst.url)))
    # the code is for xena alone: with another name it is wrong
    stranger = Person(inst.url, "wren")
    r = stranger.visit(f"hub/coursehub/set-password?{urlencode({'name': 'wren', 'code': code})}")
    assert "not valid" in refused(r)

    xena = Person(inst.url, "xena")
    form = xena.visit(link.removeprefix(inst.url))  # opening it does not use it up
    assert form.status_code == 200 and 'data-state="form"' in form.text
    assert "at least 10 characters" in form.text  # the site's auth.min_password_length
    # the page's static files get no Referer (it would carry the code), nothing is cached
    assert form.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in form.headers["Cache-Control"]
    # a password shorter than the site's minimum keeps the link usable
    r = xena.set_password(link, "short")
    assert r.status_code == 400 and "too short" in r.text
    # the form's POST is guarded by the hub's xsrf check
    r = xena.s.post(
        xena.url("hub/coursehub/set-password"),
        data={"name": "xena", "code": code, "password": "xena-link-pass-1", "confirm": "xena-link-pass-1"},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 403 and "xena" not in stored_passwords(inst)
    r = xena.set_password(link, "xena-link-pass-1")
    assert r.status_code == 200 and "Your password is set" in r.text, r.text[-400:]
    assert "xena" in stored_passwords(inst)
    assert code not in all_logs(inst)  # the hub logged the link's GET and POST, not its code

    me = Person(inst.url, "xena")
    me.login("xena-link-pass-1")
    assert me.logged_in()
    assert me.visit("services/optik/formgrader").status_code == 200

    # used once: the same link is refused the second time, and changes nothing
    again = Person(inst.url, "xena")
    r = again.visit(link.removeprefix(inst.url))
    assert "used already" in refused(r)
    assert "used already" in refused(post_form(again, link, "attacker-pass-2"))
    attacker = Person(inst.url, "xena")
    attacker.login("attacker-pass-2")
    assert not attacker.logged_in()


def test_an_expired_link_is_refused(inst):
    link = inst.password_link("hilde", "--expires", "1s")
    time.sleep(1.5)
    hilde = Person(inst.url, "hilde")
    assert "expired" in refused(hilde.visit(link.removeprefix(inst.url)))
    assert "expired" in refused(post_form(hilde, link, "hilde-admin-pass-1"))
    assert "hilde" not in stored_passwords(inst)
    hilde.login("hilde-admin-pass-1")
    assert not hilde.logged_in()


def test_wrong_codes_lock_the_link(inst):
    link = inst.password_link("hilde")
    guesser = Person(inst.url, "hilde")
    for i in range(5):
        r = guesser.visit(f"hub/coursehub/set-password?name=hilde&code=guess{i}")
        refused(r)
    assert "locked" in refused(guesser.visit(link.removeprefix(inst.url)))
    assert "locked" in refused(post_form(guesser, link, "hilde-admin-pass-1"))
    # a new link from the operator works again; the admin logs in with it
    hilde = Person(inst.url, "hilde")
    assert hilde.set_password(inst.password_link("hilde"), "hilde-admin-pass-1").status_code == 200
    hilde.login("hilde-admin-pass-1")
    assert hilde.logged_in()


def test_a_student_resets_a_forgotten_password_with_a_link(inst):
    wren = Person(inst.url, "wren")
    assert wren.set_password(inst.password_link("wren"), "wren-new-pass-2").status_code == 200
    old = Person(inst.url, "wren")
    old.login("wren-first-use-1")
    assert not old.logged_in()
    new = Person(inst.url, "wren")
    new.login("wren-new-pass-2")
    assert new.logged_in()


def test_a_student_made_instructor_needs_a_link_for_her_first_use_password(inst):
    """yuri claimed her name as a student; once she teaches, that password (whoever typed
    it first) no longer opens her account until a link sets it."""
    yuri = Person(inst.url, "yuri")
    yuri.login("yuri-first-use-1")
    assert yuri.logged_in()
    inst.cli("member", "add", "mech", "yuri", "--role", "instructor")
    again = Person(inst.url, "yuri")
    r = again.login("yuri-first-use-1")
    assert not again.logged_in() and "coursehub password-link yuri" in r.text
    doctor = inst.cli("doctor", check=False)
    assert "yuri is an admin or instructor whose password was set by a first login" in doctor.stdout
    inst.give_password("yuri", "yuri-link-pass-1")
    me = Person(inst.url, "yuri")
    me.login("yuri-link-pass-1")
    assert me.logged_in()
    assert "[first-use]" not in inst.cli("doctor", check=False).stdout
