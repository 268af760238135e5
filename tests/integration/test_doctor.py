"""coursehub doctor on a real installation: clean first, then each trap broken on purpose.

One installation runs through the module; each test breaks one thing, checks that
doctor names it (check, path, port or course) with a fix, and restores it. The
tests run in order: the last ones stop the installation.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from contextlib import suppress
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import Installation
from coursehub.folders import make_home
from coursehub.plan import Plan
from coursehub.targets.local import runtime

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("doctor checks owners of uid-isolated folders: needs root", allow_module_level=True)

SITE = {
    "org": "Doctor University",
    "auth": {"type": "first-use"},
    "people": ["olga", "pia", "quinn"],
    "courses": [
        {"id": "optics", "title": "Optics", "instructors": ["olga"], "students": ["pia", "quinn"]},
        {"id": "acoustics", "title": "Acoustics", "instructors": ["olga"], "students": ["quinn"]},
    ],
}


def doctor(inst: Installation, *args: str):
    return inst.cli("doctor", *args, check=False)


def problems(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("PROBLEM ")]


def named(result, check: str, *words: str) -> str:
    """The one PROBLEM line of `check` naming every word; its fix must follow it."""
    lines = result.stdout.splitlines()
    found = [
        i
        for i, line in enumerate(lines)
        if line.startswith(f"PROBLEM [{check}] ") and all(w in line for w in words)
    ]
    assert len(found) == 1, f"no single [{check}] problem naming {words}:\n{result.stdout}"
    i = found[0]
    assert lines[i + 1].startswith("    fix: "), result.stdout
    assert result.returncode == 1
    assert f"{len(problems(result))} problem(s) found" in result.stdout
    return lines[i] + "\n" + lines[i + 1]


def test_a_healthy_installation_has_no_problems(inst):
    r = doctor(inst)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(running)" in r.stdout and r.stdout.rstrip().endswith("No problems found")


def test_grader_home_readable_by_students(inst):
    home = inst.data_dir / "graders" / "optics"
    home.chmod(0o755)
    try:
        r = doctor(inst)
    finally:
        home.chmod(0o700)
    text = named(r, "folders", str(home), "mode 755 instead of 700")
    assert f"fix: chmod 700 {home}" in text
    assert len(problems(r)) == 1, r.stdout


def test_exchange_folder_owned_by_root(inst):
    ex = inst.data_dir / "exchange" / "acoustics"
    st = ex.stat()
    os.chown(ex, 0, 0)
    try:
        r = doctor(inst)
    finally:
        os.chown(ex, st.st_uid, st.st_gid)
    text = named(r, "folders", f"{ex} is owned by root:root", "grader-acoustics:course-acoustics")
    assert f"fix: chown {st.st_uid}:{st.st_gid} {ex}" in text


def test_outbound_writable_by_everyone(inst):
    outbound = inst.data_dir / "exchange" / "optics" / "outbound"
    outbound.chmod(0o777)
    try:
        r = doctor(inst)
    finally:
        outbound.chmod(0o750)
    text = named(r, "folders", str(outbound), "mode 777 instead of 750", "everyone may")
    assert f"chmod 750 {outbound}" in text


def test_home_made_by_the_wrong_owner(inst):
    plan = Plan.from_json((inst.data_dir / "state" / "plan.json").read_text())
    home = Path(make_home(plan, "pia"))  # as the spawner makes it
    shutil.rmtree(home)
    home.mkdir(mode=0o755)  # as root would, e.g. 'mkdir' by hand or a volume mount
    home.chmod(0o755)
    try:
        r = doctor(inst)
    finally:
        shutil.rmtree(home)
        make_home(plan, "pia")
    uid = plan.people["pia"].account.uid
    text = named(r, "folders", f"{home} is owned by root:root instead of pia:pia", "755")
    assert f"chown {uid}:{uid} {home} && chmod 700 {home}" in text


def test_unplanned_folders_open_to_everyone(inst):
    stray = inst.data_dir / "exchange" / "old-course"
    scratch = inst.data_dir / "graders" / "optics" / "optics" / "scratch"
    stray.mkdir(mode=0o755)
    scratch.mkdir()
    scratch.chmod(0o777)
    try:
        r = doctor(inst)
    finally:
        stray.rmdir()
        scratch.rmdir()
    named(r, "folders", f"{stray} is not in the Plan, and everyone can reach it")
    named(r, "folders", f"{scratch} is writable by everyone")
    assert len(problems(r)) == 2, r.stdout


def test_secrets_readable_by_others(inst):
    secrets = inst.data_dir / "secrets" / "secrets.json"
    secrets.chmod(0o644)
    try:
        r = doctor(inst)
    finally:
        secrets.chmod(0o600)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    text = named(r, "secrets", str(secrets), "mode 644", "others can read it")
    assert f"fix: chmod 600 {secrets}" in text
    assert len(problems(r)) == 1, r.stdout  # the live checks still ran, and found nothing


def test_servers_env_with_another_jupyterhub(inst):
    fake = inst.base_dir / "fake-env"
    (fake / "bin").mkdir(parents=True)
    python = fake / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'case "$2" in *nbgrader*) printf %s {version("nbgrader")} ;; *) printf 5.0.0 ;; esac\n'
    )
    python.chmod(0o755)
    rt_file = inst.data_dir / "state" / "runtime.json"
    saved = rt_file.read_text()
    rt_file.write_text(json.dumps({**json.loads(saved), "user_env": str(fake)}))
    try:
        r = doctor(inst)
    finally:
        rt_file.write_text(saved)
    import jupyterhub

    text = named(
        r,
        "versions",
        f"jupyterhub is 5.0.0 in the servers' environment {fake}",
        f"and {jupyterhub.__version__} in the hub's",
    )
    assert "make setup" in text
    assert len(problems(r)) == 1, r.stdout


def test_token_with_more_scopes_and_a_stray_service(inst):
    """The hub reads roles and services at start: change them, then start it
    without preparing again (as 'up' would undo it)."""
    inst.down()
    state = inst.data_dir / "state"
    saved = {name: (state / name).read_text() for name in ("plan.json", "jupyterhub_config.py")}
    plan = json.loads(saved["plan.json"])
    for role in plan["roles"]:
        if role["name"] == "grader-optics":
            role["scopes"].append("read:users")
    (state / "plan.json").write_text(json.dumps(plan))
    with open(state / "jupyterhub_config.py", "a") as f:
        f.write("c.JupyterHub.services.append({'name': 'stray', 'api_token': 'x' * 40})\n")
    installation = runtime.Installation(str(inst.data_dir))
    pid = runtime.start_detached(installation)
    try:
        assert runtime.wait_healthy(installation, 90, lambda _m: None, pid)
        r = doctor(inst)
        with_site = doctor(inst, "--site", str(inst.site_file))
    finally:
        inst.down()
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)
        for name, text in saved.items():
            (state / name).write_text(text)  # the next test checks it is clean again
    for result in (r, with_site):
        named(result, "tokens", "service 'optics'", "beyond its planned roles", "read:users")
        named(result, "services", "'stray'", "neither a course")
        named(result, "plan", "role grader-optics has extra scopes read:users")
        assert len(problems(result)) == 3, result.stdout


def test_own_hub_configuration_loads_last_and_one_others_could_change_is_refused(inst):
    """jupyterhub_config.d: doctor names what the hub loads; the hub takes it at its next
    start (here: its metrics without a token, which coursehub's own config refuses); a
    file another account could write is a problem, and the hub refuses to start with it."""
    import requests

    inst.up(check=True)  # the test before stops the installation
    config_d = inst.data_dir / "etc" / "jupyterhub_config.d"
    assert stat.S_IMODE(config_d.stat().st_mode) == 0o700 and config_d.stat().st_uid == 0
    metrics = f"{inst.url}hub/metrics"
    assert requests.get(metrics, timeout=10).status_code == 403
    r = doctor(inst)
    assert f"note: no hub configuration of your own in {config_d}" in r.stdout, r.stdout
    own = config_d / "50-metrics.py"
    own.write_text("c.JupyterHub.authenticate_prometheus = False\n")
    own.chmod(0o600)
    try:
        r = doctor(inst)
        assert r.returncode == 0, r.stdout
        assert f"note: the hub loads 50-metrics.py from {config_d}" in r.stdout, r.stdout
        inst.down()
        inst.up(check=True)
        assert requests.get(metrics, timeout=10).status_code == 200
        own.chmod(0o620)  # the group may write it now: code another account could change
        found = named(doctor(inst), "hub-config", str(own), "others may write it")
        assert "chmod go-w" in found
        inst.down()
        refused = inst.cli(
            "up", "--site", str(inst.site_file), "--detach", "--timeout", "20", check=False
        )
        assert refused.returncode != 0
        assert "others may write it" in inst.logs()
    finally:
        own.unlink()
        inst.down()
    inst.up(check=True)
    assert requests.get(metrics, timeout=10).status_code == 403


def test_a_stopped_installation_has_no_problems(inst):
    inst.down()  # stopped already by the test before; restored, and stopped it has no problems
    r = doctor(inst)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(stopped)" in r.stdout and "note: stopped" in r.stdout
    assert r.stdout.rstrip().endswith("No problems found")


def test_ports_in_use_while_stopped(inst):
    plan = inst.plan()
    hub, grader = plan["ports"]["hub"], plan["courses"]["acoustics"]["port"]
    held = []
    try:
        for port in (hub, grader):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        r = doctor(inst)
    finally:
        for s in held:
            s.close()
    named(r, "ports", f"port {hub} (the hub (hub.port + 2))")
    named(r, "ports", f"port {grader} (the grader server of acoustics)")
    assert len(problems(r)) == 2, r.stdout


def test_course_without_instructors(show_logs):
    site = {
        "org": "Doctor University",
        "auth": {"type": "first-use"},
        "people": ["quinn"],
        "courses": [{"id": "acoustics", "students": ["quinn"]}],
    }
    other = show_logs(Installation(site, "doctor-noinstr"))
    try:
        other.up()
        r = doctor(other)
    finally:
        other.down()
        other.remove()
    text = named(r, "instructors", "course 'acoustics' has no instructors")
    assert "instructors in the site file" in text
    assert len(problems(r)) == 1, r.stdout
