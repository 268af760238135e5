"""Which site changes the running hub takes live and which need a hub start."""

from __future__ import annotations

import copy
import json

from sites import DATA_DIR, two_course_data

from coursehub.hub.config import CUSTOM_SCOPES, hub_config
from coursehub.plan import LOAD_COURSES_SCOPE, SERVICE_NAME, derive
from coursehub.site import parse_site
from coursehub.targets.local.apply import hub_changes, hub_restart_reasons


def plans(change, auth=None):
    before = two_course_data(auth)
    after = copy.deepcopy(before)
    change(after)
    old = derive(parse_site(before), DATA_DIR, isolated=True)
    new = derive(parse_site(after), DATA_DIR, isolated=True, ids=old.ids)
    return old, new


def add_course(data):
    data["courses"].append(
        {"id": "chem", "title": "Chemistry", "instructors": ["ines"], "students": ["tom", "pat"]}
    )


def test_a_new_course_is_loaded_live():
    old, new = plans(add_course)
    assert hub_changes(old, new)
    assert hub_restart_reasons(old, new) == []


def test_a_new_member_changes_no_role():
    old, new = plans(lambda d: d["courses"][0]["students"].append("tom"))
    assert not hub_changes(old, new)


def test_what_a_hub_reads_at_start_only_restarts_it():
    def drop_biology(d):
        d["courses"] = d["courses"][:1]

    def new_admin(d):
        d["admins"] = ["ada", "pat"]

    def new_login(d):
        d["auth"] = {"type": "first-use", "min_password_length": 12}

    for change, reason in [
        (drop_biology, "courses removed: biology"),
        (new_admin, "admins changed"),
        (new_login, "the login changed"),
    ]:
        old, new = plans(change)
        assert reason in hub_restart_reasons(old, new), change.__name__
        assert hub_changes(old, new)


def test_a_course_removed_also_removes_its_roles_so_the_hub_restarts():
    old, new = plans(lambda d: d["courses"].pop())
    reasons = hub_restart_reasons(old, new)
    assert "role instructor-biology removed" in reasons
    assert "role grader-biology removed" in reasons


def test_an_lms_context_mapped_to_a_course_is_read_at_launch_not_at_start():
    lti = {"type": "lti11", "consumer_key": "key", "shared_secret": "s" * 32}

    def map_context(d):
        d["auth"]["contexts"] = {"ctx-1": "algebra"}

    old, new = plans(map_context, auth=lti)
    assert hub_restart_reasons(old, new) == []


def test_only_coursehubs_own_role_may_load_courses():
    old, _ = plans(lambda d: None)
    holders = [r for r in old.roles if LOAD_COURSES_SCOPE in r.scopes]
    assert [(r.name, r.services, r.users, r.groups) for r in holders] == [
        ("coursehub-automation", (SERVICE_NAME,), (), ())
    ]
    c = hub_config(old, "/x/plan.json", _secrets(old), user_env="/x/env")
    assert c.JupyterHub.custom_scopes == CUSTOM_SCOPES


def _secrets(plan):
    s = {"proxy_auth_token": "p", "crypt_key": "00" * 32, "automation_token": "a"}
    s.update({f"service_token:{c}": f"t-{c}" for c in plan.courses})
    return s


def test_a_supervisor_that_does_not_say_it_takes_sigusr1_is_never_sent_it(tmp_path):
    """SIGUSR1 kills a process without a handler: a supervisor started by an older
    coursehub (no 'reload_signals' in its state) gets SIGHUP, a hub restart, instead."""
    from coursehub.targets.local.apply import _takes_sigusr1
    from coursehub.targets.local.runtime import Installation

    inst = Installation(str(tmp_path))
    inst.state_file.parent.mkdir(parents=True, exist_ok=True)
    assert not _takes_sigusr1(inst)  # no state at all
    inst.state_file.write_text(json.dumps({"pid": 1, "reloads": 0}))
    assert not _takes_sigusr1(inst)
    inst.state_file.write_text(json.dumps({"reload_signals": ["SIGHUP", "SIGUSR1"]}))
    assert _takes_sigusr1(inst)


def test_coursehub_asks_the_hub_where_the_hub_serves_the_loader():
    from coursehub.hub.live import live_handlers
    from coursehub.plan import LOAD_COURSES_PATH

    old, _ = plans(lambda d: None)
    assert old.load_courses_url == f"{old.hub_api_url.removesuffix('/api')}{LOAD_COURSES_PATH}"
    assert [path for path, _ in live_handlers()] == [LOAD_COURSES_PATH]
