"""Root never follows a path a grader controls, and grader commands get no root terminal.

The grader account is reachable by every instructor (the grader notebook has a
terminal) and by student code during autograde. Here a process under the
grader's uid swaps its own folders for links to a folder only root may touch,
in a tight loop, while root runs what it runs in those folders: `coursehub up`
on the running installation (folders, planned files, gradebook rows), `member
add`, `sample`. Nothing outside the grader's own folders may change owner, mode
or content; once the attacker stops, the same commands work.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from attacks import snapshot, swapping
from conftest import ROOT  # noqa: F401 - puts tests/ on the path

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("runs attacks under other uids: needs root", allow_module_level=True)

COURSE = "optics"
SITE = {
    "org": "Trust College",
    "auth": {"type": "first-use"},
    "courses": [{"id": COURSE, "title": "Optics", "instructors": ["iris"], "students": ["kai"]}],
}


@pytest.fixture
def victim():
    """A folder and a file that only root may change: what the attacks aim at."""
    base = Path(tempfile.mkdtemp(prefix="coursehub-victim-", dir="/var/tmp"))
    base.chmod(0o755)
    (base / "secret").write_text("root's own\n")
    (base / "secret").chmod(0o600)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_root_follows_no_link_the_grader_plants(inst, victim):
    plan = inst.plan()
    g = plan["courses"][COURSE]
    account = g["account"]
    exchange = Path(plan["paths"]["exchange"], COURSE)
    targets = [
        str(exchange / "inbound"),
        str(exchange / "outbound"),
        str(exchange / "feedback"),
        str(Path(account["home"], ".jupyter")),
        str(Path(g["course_root"], "source")),
    ]
    os.makedirs(targets[-1], exist_ok=True)
    os.chown(targets[-1], account["uid"], account["gid"])
    before = snapshot(victim)
    outcomes = []
    with swapping(account["uid"], account["gid"], targets, victim):
        data = yaml.safe_load(inst.site_file.read_text())
        data["courses"][0]["students"].append("lou")
        inst.site_file.write_text(yaml.safe_dump(data, sort_keys=False))
        for args in (
            ("up", "--site", str(inst.site_file)),
            ("member", "add", COURSE, "max", "--site", str(inst.site_file)),
            ("sample", COURSE, "--name", "ps1", "--no-release"),
            ("up", "--site", str(inst.site_file)),
        ):
            outcomes.append(inst.cli(*args, check=False, timeout=300).returncode)
    assert snapshot(victim) == before, "root changed a file through the grader's link"
    # nothing of root's went into the victim folder, and no link is left in the plan's places
    assert not any(os.path.islink(t) for t in targets)

    # the honest path, once the attacker stops
    out = inst.cli("up", "--site", str(inst.site_file))
    assert out.returncode == 0, out.stdout + out.stderr
    out = inst.cli("sample", COURSE, "--name", "ps2")
    assert out.returncode == 0, out.stdout + out.stderr
    plan = inst.plan()
    assert {"kai", "lou", "max"} <= set(plan["courses"][COURSE]["students"])
    inbound = Path(plan["paths"]["exchange"], COURSE, "inbound", "lou")
    assert inbound.is_dir() and inbound.stat().st_uid == plan["people"]["lou"]["account"]["uid"]
    released = Path(plan["paths"]["exchange"], COURSE, "outbound", "ps2")
    assert released.is_dir()
    assert snapshot(victim) == before
    print("outcomes under attack:", outcomes)


PROBE = """
# --- appended by the grader: runs whenever nbgrader reads this course's configuration
import json as _json, os as _os
_found = {"isatty": [_os.isatty(fd) for fd in (0, 1, 2)], "new_session": _os.getsid(0) == _os.getpid()}
try:
    _os.close(_os.open("/dev/tty", _os.O_RDWR))
    _found["dev_tty"] = True
except OSError:
    _found["dev_tty"] = False
with open(_os.path.join(_os.path.expanduser("~"), "probe.json"), "w") as _f:
    _json.dump(_found, _f)
print("\\x1b]0;a title from the course config\\x07probe ran", flush=True)
"""


def test_grader_commands_get_no_terminal_of_roots(inst):
    """`coursehub nbgrader` from an admin's terminal: code in the course's configuration
    (the grader writes it) finds no way to the operator's terminal."""
    plan = inst.plan()
    g = plan["courses"][COURSE]
    home = Path(g["account"]["home"])
    config = Path(g["course_root"], "nbgrader_config.py")
    original = config.read_text()
    (home / "probe.json").unlink(missing_ok=True)
    config.write_text(original + PROBE)  # as the grader could, from the grader notebook
    argv = [sys.executable, "-m", "coursehub", "nbgrader", COURSE, "--data-dir"]
    argv += [str(inst.data_dir), "--", "db", "student", "list"]
    try:
        pid, fd = pty.fork()
        if pid == 0:  # the operator's terminal: a pty whose other end this test holds
            os.execv(sys.executable, argv)  # noqa: S606 - the real CLI
        output = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        config.write_text(original)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "probe ran" in text and "kai" in text, text
    found = json.loads((home / "probe.json").read_text())
    assert found == {"isatty": [False, False, False], "new_session": True, "dev_tty": False}
    assert b"\x1b" not in output and b"\x07" not in output  # no escape sequence reached it


ROSTER_PROBE = """
import json, os, pwd, grp
out = {"names": sorted(p.pw_name for p in pwd.getpwall()),
       "groups": sorted(f"{g.gr_name}:{','.join(g.gr_mem)}" for g in grp.getgrall())}
for what, path in (("roster", PASSWD), ("other", OTHER), ("listing", NSS)):
    try:
        os.listdir(path) if what == "listing" else open(path).read()
        out[what] = "read"
    except PermissionError:
        out[what] = "refused"
print(json.dumps(out))
"""


def test_a_student_resolves_only_themselves_and_their_graders(inst):
    """The passwd and group files a student's server reads name the student and the
    graders of their courses; the roster is in no file the student can read."""
    from hubclient import Person
    from kernel import Kernel

    plan = inst.plan()
    etc = plan["paths"]["etc"]
    kai = Person(inst.url, "kai")
    kai.login("kai-password-7")
    assert kai.logged_in()
    kai.start_server()
    kernel = Kernel(kai)
    try:
        code = (
            f"PASSWD, OTHER, NSS = {plan['paths']['passwd']!r}, {etc + '/nss/grader-' + COURSE + '.passwd'!r}, "
            f"{etc + '/nss'!r}\n" + ROSTER_PROBE
        )
        found = json.loads(kernel.run(code).strip().splitlines()[-1])
    finally:
        kernel.close()
    assert found["names"] == ["grader-optics", "kai"]
    assert f"course-{COURSE}:kai" in found["groups"], found["groups"]
    assert not any("iris" in g for g in found["groups"])  # the course's instructor
    assert (found["roster"], found["other"], found["listing"]) == ("refused",) * 3
