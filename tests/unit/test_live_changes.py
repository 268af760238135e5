"""Loading changes into the running hub: who may, what the supervisor is sent, where the hub
serves the loader. Which changes it takes live is test_plandiff's."""

from __future__ import annotations

import json

from coursehub.hub.config import CUSTOM_SCOPES, hub_config
from coursehub.plan import LOAD_COURSES_SCOPE, SERVICE_NAME


def test_only_coursehubs_own_role_may_load_courses(plan):
    holders = [r for r in plan.roles if LOAD_COURSES_SCOPE in r.scopes]
    assert [(r.name, r.services, r.users, r.groups) for r in holders] == [
        ("coursehub-automation", (SERVICE_NAME,), (), ())
    ]
    c = hub_config(plan, "/x/plan.json", _secrets(plan), user_env="/x/env")
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


def test_coursehub_asks_the_hub_where_the_hub_serves_the_loader(plan):
    from coursehub.hub.live import live_handlers
    from coursehub.plan import LOAD_COURSES_PATH

    assert plan.load_courses_url == f"{plan.hub_api_url.removesuffix('/api')}{LOAD_COURSES_PATH}"
    assert [path for path, _ in live_handlers()] == [LOAD_COURSES_PATH]


def test_courses_are_loaded_only_after_the_hub_has_started_its_services():
    """The hub answers its API before it has started its services, and its start walks
    them across awaits: a course loaded then (an LMS launch right after 'up') changed
    the services under that walk, and the hub stopped ("dictionary changed size during
    iteration"). Loading waits for the start to end."""
    import asyncio
    from types import SimpleNamespace

    from coursehub.hub.live import load_courses

    touched: list[str] = []

    class Db:
        def commit(self):
            touched.append("commit")

    class App:
        _service_map: dict = {}

        @property
        def db(self):
            touched.append("db")
            return Db()

    async def run():
        app = App()
        app._start_future = asyncio.get_running_loop().create_future()
        plan = SimpleNamespace(courses={}, roles=[], groups={})
        task = asyncio.ensure_future(load_courses(app, plan, {}, set()))
        await asyncio.sleep(0.05)
        assert touched == [] and not task.done()  # still starting: nothing changed yet
        app._start_future.set_result(None)
        assert await asyncio.wait_for(task, 5) == []
        assert touched[0] == "db"

    asyncio.run(run())
