"""Set-password links: the code store, who needs a link, the authenticator, doctor's check."""

from __future__ import annotations

import asyncio
import dbm
import hashlib
import sqlite3
import stat
from types import SimpleNamespace

import pytest
from sites import two_course_data

from coursehub.doctor.checks import Context, check_first_use
from coursehub.password_links import (
    EXPIRED,
    LOCKED,
    MAX_FAILURES,
    OK,
    SPENT,
    WRONG,
    LinkStore,
    link_url,
    names_set_by_link,
    needs_link,
    parse_duration,
    role_of,
)
from coursehub.plan import Plan, derive
from coursehub.site import parse_site

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path) -> LinkStore:
    return LinkStore(tmp_path / "links.sqlite")


def rows(store: LinkStore) -> list[tuple]:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT name, digest, expires, failures, spent FROM link").fetchall()


# ---------------------------------------------------------------- the store


def test_only_the_codes_hash_is_stored_in_a_private_file(store):
    code = store.issue("ines", 3600, now=NOW)
    assert len(code) >= 40  # 32 random bytes
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert code.encode() not in store.path.read_bytes()
    [(name, digest, expires, failures, spent)] = rows(store)
    assert (name, expires, failures, spent) == ("ines", NOW + 3600, 0, None)
    assert digest == hashlib.sha256(code.encode()).hexdigest()


def test_an_existing_file_is_made_private(tmp_path):
    path = tmp_path / "links.sqlite"
    path.touch(mode=0o644)
    LinkStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_code_works_once(store):
    code = store.issue("ines", 3600, now=NOW)
    assert store.check("ines", code, now=NOW + 10) == OK  # checking does not spend it
    assert store.spend("ines", code, now=NOW + 20) == OK
    assert store.spend("ines", code, now=NOW + 30) == SPENT
    assert store.check("ines", code, now=NOW + 30) == SPENT


def test_a_code_expires(store):
    code = store.issue("ines", 60, now=NOW)
    assert store.check("ines", code, now=NOW + 59) == OK
    assert store.check("ines", code, now=NOW + 60) == EXPIRED
    assert store.spend("ines", code, now=NOW + 61) == EXPIRED


def test_wrong_codes_and_other_names_are_wrong(store):
    code = store.issue("ines", 3600, now=NOW)
    assert store.check("ines", code[:-1] + ("A" if code[-1] != "A" else "B"), now=NOW) == WRONG
    assert store.check("ines", "", now=NOW) == WRONG
    assert store.check("sam", code, now=NOW) == WRONG  # the code is ines's alone
    assert store.check("nobody", "x", now=NOW) == WRONG  # no hint that no link is out
    assert store.check("ines", code, now=NOW) == OK


def test_a_handful_of_wrong_codes_lock_the_link(store):
    code = store.issue("ines", 3600, now=NOW)
    verdicts = [store.check("ines", f"guess-{i}", now=NOW) for i in range(MAX_FAILURES)]
    assert verdicts == [WRONG] * (MAX_FAILURES - 1) + [LOCKED]
    assert store.check("ines", code, now=NOW) == LOCKED
    assert store.spend("ines", code, now=NOW) == LOCKED
    # the operator's new link works again
    fresh = store.issue("ines", 3600, now=NOW)
    assert store.spend("ines", fresh, now=NOW) == OK


def test_a_new_link_replaces_the_earlier_one(store):
    first = store.issue("ines", 3600, now=NOW)
    second = store.issue("ines", 3600, now=NOW)
    assert first != second
    assert store.check("ines", first, now=NOW) == WRONG
    assert store.spend("ines", second, now=NOW) == OK


def test_whose_password_a_link_set(store):
    assert names_set_by_link(store.path) == set()
    store.mark_set("ines")
    assert store.set_by_link("ines") and not store.set_by_link("sam")
    assert names_set_by_link(store.path) == {"ines"}
    store.forget("ines")
    assert not store.set_by_link("ines")


def test_doctor_reads_the_store_without_making_it(tmp_path):
    path = tmp_path / "links.sqlite"
    assert names_set_by_link(path) == set()
    assert not path.exists()


# ---------------------------------------------------------------- who, links, durations


def test_admins_and_instructors_need_a_link_students_do_not(plan):
    assert needs_link(plan, "ada")  # admin
    assert needs_link(plan, "ines")  # teaches algebra and biology
    assert not needs_link(plan, "sam") and not needs_link(plan, "tom")  # students
    assert not needs_link(plan, "pat")  # in no course
    assert role_of(plan, "ines") == "instructor of algebra, biology"
    assert role_of(plan, "sam") == "student of algebra, biology"
    assert role_of(plan, "ada") == "admin"


def test_someone_who_teaches_one_course_and_takes_another_needs_a_link():
    data = two_course_data()
    data["courses"][1]["instructors"] = ["sam"]
    data["courses"][1]["students"] = ["tom"]
    plan = derive(parse_site(data), "/srv/x", isolated=True)
    assert needs_link(plan, "sam")


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800
    assert parse_duration("24h") == 86400 and parse_duration("7d") == 7 * 86400
    assert parse_duration("600") == 600
    for bad in ("", "0s", "1w", "-5m", "31d", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_link_url():
    url = link_url("http://127.0.0.1:8000/", "ines", "a-b_c")
    assert url == "http://127.0.0.1:8000/hub/coursehub/set-password?name=ines&code=a-b_c"
    assert link_url("https://hub.example.edu/jh", "ines", "c").startswith(
        "https://hub.example.edu/jh/hub/coursehub/set-password?"
    )


# ---------------------------------------------------------------- the authenticator


def local_plan(tmp_path, **site) -> Plan:
    data = {**two_course_data(), **site}
    plan = derive(parse_site(data), str(tmp_path / "data"), isolated=False)
    (tmp_path / "data" / "state").mkdir(parents=True)
    return plan


@pytest.fixture
def authenticator(tmp_path):
    from traitlets.config import Config

    from coursehub.hub.auth import CourseFirstUseAuthenticator

    plan = local_plan(tmp_path)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    c = Config()
    c.Authenticator.plan_file = str(plan_file)
    c.FirstUseAuthenticator.dbm_path = plan.paths.passwords_dbm
    c.FirstUseAuthenticator.min_password_length = 10
    c.CourseFirstUseAuthenticator.password_links_file = plan.paths.password_links
    return CourseFirstUseAuthenticator(config=c)


def login(auth, name: str, password: str) -> tuple[str | None, str]:
    handler = SimpleNamespace(custom_login_error="")
    got = asyncio.run(auth.authenticate(handler, {"username": name, "password": password}))
    return got, handler.custom_login_error


def has_password(auth, name: str) -> bool:
    with dbm.open(auth.dbm_path, "c") as db:
        return name.encode() in db


def test_an_instructors_or_admins_first_login_is_refused_and_stores_nothing(authenticator):
    for name in ("ines", "ada"):
        got, error = login(authenticator, name, "attacker-password-1")
        assert got is None
        assert f"coursehub password-link {name}" in error
        assert not has_password(authenticator, name)


def test_a_students_first_login_sets_the_password(authenticator):
    assert login(authenticator, "sam", "sams-password-1") == ("sam", "")
    assert login(authenticator, "sam", "someone-else-1")[0] is None
    assert login(authenticator, "sam", "sams-password-1")[0] == "sam"


def test_a_link_set_password_opens_an_instructors_account(authenticator):
    with pytest.raises(ValueError):
        authenticator.set_password_from_link("ines", "short")
    authenticator.set_password_from_link("ines", "ines-link-pass-1")
    assert login(authenticator, "ines", "ines-link-pass-1")[0] == "ines"
    assert login(authenticator, "ines", "attacker-password-1")[0] is None


def test_a_first_use_password_does_not_open_an_account_that_now_teaches(tmp_path, authenticator):
    """sam set his password by a first login as a student, then was made an instructor."""
    assert login(authenticator, "sam", "sams-password-1")[0] == "sam"
    data = two_course_data()
    data["courses"][1]["instructors"] = ["ines", "sam"]
    data["courses"][1]["students"] = ["tom"]
    plan = derive(parse_site(data), str(tmp_path / "data"), isolated=False)
    (tmp_path / "plan.json").write_text(plan.to_json())
    got, error = login(authenticator, "sam", "sams-password-1")
    assert got is None and "coursehub password-link sam" in error
    authenticator.set_password_from_link("sam", "sams-link-pass-1")
    assert login(authenticator, "sam", "sams-link-pass-1")[0] == "sam"


def test_a_first_login_after_a_link_forgets_the_link(authenticator):
    """A removed password (the user deleted) then set again by a first login is no link's."""
    authenticator.set_password_from_link("sam", "sams-link-pass-1")
    authenticator.delete_user(SimpleNamespace(name="sam"))
    assert not authenticator._links().set_by_link("sam")
    assert login(authenticator, "sam", "sams-password-2")[0] == "sam"
    assert not authenticator._links().set_by_link("sam")


def test_the_hub_serves_the_set_password_page(authenticator):
    paths = [h[0] for h in authenticator.get_handlers(None)]
    assert "/coursehub/set-password" in paths and "/login" in paths


# ---------------------------------------------------------------- doctor


def ctx_of(plan: Plan) -> Context:
    return Context(inst=None, plan=plan, stored=plan, running=False, note=print)


def test_doctor_is_quiet_about_first_use_on_loopback(tmp_path):
    assert check_first_use(ctx_of(local_plan(tmp_path))) == []


def test_doctor_names_first_use_reachable_from_outside_loopback(tmp_path):
    plan = local_plan(tmp_path, hub={"ip": "0.0.0.0", "port": 8100, "base_url": "/"})
    [p] = check_first_use(ctx_of(plan))
    assert p.check == "first-use" and "claim a student's name" in p.what
    assert "loopback" in p.fix and "LTI" in p.fix


def test_doctor_ignores_other_auth_types(tmp_path):
    from sites import shared_password_data

    data = shared_password_data()
    data["hub"]["ip"] = "0.0.0.0"
    plan = derive(parse_site(data), str(tmp_path), isolated=False)
    assert check_first_use(ctx_of(plan)) == []


def test_doctor_names_an_instructor_whose_password_a_first_login_set(tmp_path):
    plan = local_plan(tmp_path)
    with dbm.open(plan.paths.passwords_dbm, "c", 0o600) as db:
        db["ines"] = b"$2b$12$bcrypt-hash-of-a-first-login"
        db["sam"] = b"$2b$12$bcrypt-hash-of-a-student"
    [p] = check_first_use(ctx_of(plan))
    assert "ines is an admin or instructor whose password was set by a first login" in p.what
    assert p.fix.startswith(f"coursehub password-link ines --data-dir {plan.paths.data_dir}")
    LinkStore(plan.paths.password_links).mark_set("ines")
    assert check_first_use(ctx_of(plan)) == []


def test_doctor_names_admins_and_instructors_a_regression_would_let_be_claimed(
    tmp_path, monkeypatch
):
    from coursehub.hub import config

    plan = local_plan(tmp_path)
    monkeypatch.setitem(
        config.AUTHENTICATORS, "first-use", "firstuseauthenticator.FirstUseAuthenticator"
    )
    found = check_first_use(ctx_of(plan))
    assert sorted(p.what.split()[0] for p in found) == ["ada", "ines"]
    assert all("anyone who knows the name can claim it" in p.what for p in found)
    # the scratch password database only: the installation's is untouched
    assert not any(tmp_path.joinpath("data", "state").iterdir())
