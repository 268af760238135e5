"""LTI 1.1 credentials given only in the environment of the first `coursehub up`.

The seed's way: env.jhub carries LTI_CONSUMER_KEY and LTI_SHARED_SECRET, and
the site file has neither. `up` stores them in the secrets folder; the hub, the
apply a launch starts inside it, `coursehub member add` from a shell without
the variables and a later `up` (a reboot) must all find them there.
"""

from __future__ import annotations

import os

import pytest
import requests
import yaml

from conftest import Installation, wait_for
from ltiplatform import launch_params, post_launch, signed_launch

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("servers run under their own uids: needs root", allow_module_level=True)

KEY = "env-only-lms"
SECRET = "env-only-secret-0a1b2c3d4e5f6789"
SITE = {
    "org": "Env University",
    "auth": {"type": "lti11", "contexts": {"ctx-geo": "geo"}},
    "courses": [{"id": "geo", "title": "Geology", "instructors": [], "students": []}],
}


def _environ(with_credentials: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_")}
    if with_credentials:
        env.update(LTI_CONSUMER_KEY=KEY, LTI_SHARED_SECRET=SECRET)
    return env


@pytest.fixture(scope="module")
def inst():
    installation = Installation(SITE, "lti-env")
    try:
        installation.up(env=_environ(True))
        yield installation
    finally:
        installation.down(env=_environ(False))
        installation.remove()


def _launch(inst, params):
    url = f"{inst.url}hub/lti/launch"
    return post_launch(requests.Session(), url, signed_launch(url, KEY, SECRET, params))


def _site(inst) -> dict:
    return yaml.safe_load(inst.site_file.read_text())


def _geo(inst) -> dict:
    return next(c for c in _site(inst)["courses"] if c["id"] == "geo")


def test_credentials_are_in_no_file_but_the_secrets_folder(inst):
    assert "consumer_key" not in _site(inst)["auth"]
    stored = inst.data_dir / "secrets" / "lti.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    for path in inst.data_dir.rglob("*"):
        if path.is_file() and path != stored and path.stat().st_size < 2_000_000:
            assert SECRET not in path.read_text(errors="replace"), path


def test_first_launches_that_add_people_work(inst):
    r = _launch(inst, launch_params("7001", "Learner", "ctx-geo"))
    assert r.status_code == 302, r.text[:800]
    assert r.headers["Location"].startswith("/hub/spawn/7001")
    assert "7001" in _geo(inst)["students"]
    r = _launch(inst, launch_params("7002", "Instructor", "ctx-geo"))
    assert r.status_code == 302, r.text[:800]
    assert r.headers["Location"] == "/services/geo/formgrader"
    assert "7002" in _geo(inst)["instructors"]
    # a new course from an instructor's first launch, applied inside the hub
    r = _launch(inst, launch_params("7003", "Instructor", "ctx-new", context_label="MIN 1"))
    assert r.status_code == 302, r.text[:800]
    assert r.headers["Location"] == "/hub/lti/preparing/min-1"


def test_member_add_and_a_new_up_need_no_variables(inst):
    out = inst.cli("member", "add", "geo", "7004", env=_environ(False), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7004" in _geo(inst)["students"]
    wait_for(lambda: "7004" in inst.plan()["groups"]["nbgrader-geo"], 30, "the hub group")
    # a reboot: down, then up from a shell (a systemd unit) without the variables
    inst.down(env=_environ(False))
    out = inst.up(env=_environ(False), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    r = _launch(inst, launch_params("7005", "Learner", "ctx-geo"))
    assert r.status_code == 302, r.text[:800]
    assert "7005" in _geo(inst)["students"]
