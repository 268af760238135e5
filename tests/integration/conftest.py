"""Integration fixtures: real installations started and stopped through the CLI.

Each installation gets a data folder that every uid can traverse (pytest's own
tmp folders are 0700) and a free block of ports on loopback. When a test
fails, the logs of every process of its installation are printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

PORT_SPAN = 40  # hub.port .. hub.port + 10 + courses
PORT_STEP = 50  # blocks start at multiples of it


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_CLAIMS = Path(tempfile.gettempdir(), "coursehub-test-ports")
_claimed: list[int] = []  # descriptors of this process's claims, held until it exits


def _claim(port: int) -> bool:
    """Claim the block at `port` for this process: two test processes at once (make
    test runs two) never take the same block between looking and binding. A lock, not
    a file that stays: a claim ends with the process that held it. Every block starts
    at a multiple of PORT_STEP, so blocks at two different starts never overlap."""
    _CLAIMS.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(_CLAIMS / str(port), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _claimed.append(fd)
    return True


def free_port_block(start: int = 21000) -> int:
    """A base port with the next PORT_SPAN ports free, claimed by no other test process."""
    port = start - start % PORT_STEP + (os.getpid() % 50) * 2 * PORT_STEP
    for _ in range(200):
        if all(_port_free(p) for p in range(port, port + PORT_SPAN)) and _claim(port):
            return port
        port += PORT_STEP
    raise RuntimeError("no free block of ports on loopback")


def coursehub(
    *args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real CLI (`env`: its whole environment instead of this process's)."""
    proc = subprocess.run(
        [sys.executable, "-m", "coursehub", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"coursehub {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def _live_process(pid: int) -> bool:
    """Whether `pid` is a running process: not gone, and not a zombie left to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


class Installation:
    def __init__(self, site: dict, name: str):
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"coursehub-{name}-", dir="/tmp"))
        self.base_dir.chmod(0o755)  # servers' uids must traverse it
        self.data_dir = self.base_dir / "data"
        self.port = free_port_block()
        site = {**site, "hub": {"ip": "127.0.0.1", "port": self.port, "base_url": "/"}}
        self.site_file = self.base_dir / "site.yaml"
        self.site_file.write_text(yaml.safe_dump(site, sort_keys=False))
        self.url = f"http://127.0.0.1:{self.port}/"

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run the CLI on this installation (--data-dir goes before any '--')."""
        args = list(args)
        cut = args.index("--") if "--" in args else len(args)
        return coursehub(*args[:cut], "--data-dir", str(self.data_dir), *args[cut:], **kw)

    def up(self, **kw) -> subprocess.CompletedProcess:
        return self.cli("up", "--site", str(self.site_file), "--detach", "--timeout", "120", **kw)

    def down(self, **kw) -> subprocess.CompletedProcess:
        return self.cli("down", **kw)

    def password_link(self, name: str, *args: str) -> str:
        """The one link `coursehub password-link NAME` prints."""
        out = self.cli("password-link", name, *args).stdout
        [link] = re.findall(r"https?://\S+/hub/coursehub/set-password\?\S+", out)
        return link

    def give_password(self, name: str, password: str) -> None:
        """Set a password as the operator and the person do (an admin's or instructor's
        first password is set only so): a link, then its form."""
        from hubclient import Person

        r = Person(self.url, name).set_password(self.password_link(name), password)
        assert r.status_code == 200 and "Your password is set" in r.text, (
            r.status_code,
            r.text[-500:],
        )

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json", check=False).stdout)

    def process_pid(self, name: str, missing_ok: bool = False) -> int | None:
        """The pid `coursehub status --json` shows for process `name` ('hub', 'proxy',
        'grader-COURSE'), checked to be a live process. No pid, or the pid of a process
        that is gone, fails the test with the status (two missing pids must never compare
        equal); with missing_ok it gives None instead, for waits while a process restarts."""
        status = self.status()
        pid = status.get("processes", {}).get(name, {}).get("pid")
        if type(pid) is int and pid > 0 and _live_process(pid):
            return pid
        if missing_ok:
            return None
        what = "no pid" if pid is None else f"pid {pid!r}, not a live process,"
        raise AssertionError(
            f"coursehub status shows {what} for {name!r}:\n{json.dumps(status, indent=1)}"
        )

    def hub_pid(self, missing_ok: bool = False) -> int | None:
        """The hub's live pid (see process_pid)."""
        return self.process_pid("hub", missing_ok)

    def plan(self) -> dict:
        return json.loads((self.data_dir / "state" / "plan.json").read_text())

    def processes(self) -> list[int]:
        from coursehub.targets.local.supervisor import processes_of

        return processes_of(str(self.data_dir))

    def logs(self) -> str:
        out = []
        for log in sorted((self.data_dir / "logs").rglob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-60:]
            out.append(f"----- {log} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(out)

    def remove(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for inst in getattr(item, "_installations", []):
            report.sections.append((f"logs of {inst.data_dir}", inst.logs()))


@pytest.fixture(scope="module")
def inst(request):
    """The test module's running installation, started from the module's SITE."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    installation = Installation(request.module.SITE, name)
    try:
        installation.up()
        yield installation
    finally:
        installation.down()
        installation.remove()


@pytest.fixture(autouse=True)
def _logs_of_inst(request, show_logs):
    """Print the module installation's logs when a test that uses it fails."""
    if "inst" in request.fixturenames:
        show_logs(request.getfixturevalue("inst"))


@pytest.fixture
def show_logs(request):
    """Attach an installation so its logs are printed when the test fails."""

    def attach(inst: Installation) -> Installation:
        request.node._installations = [*getattr(request.node, "_installations", []), inst]
        return inst

    return attach


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def open_tmp():
    """A temporary folder every uid can traverse (pytest's tmp_path is not)."""
    path = Path(tempfile.mkdtemp(prefix="coursehub-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def named_in_site(data: dict) -> set[str]:
    """Everyone a site file's data lets log in: admins, people and course members."""
    names = set(data.get("admins") or []) | set(data.get("people") or [])
    for c in data.get("courses") or []:
        names |= set(c.get("instructors") or []) | set(c.get("students") or [])
    return names


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker engine (the running one, or one started for this run and removed after)."""
    import dockerengine

    engine = dockerengine.start()
    try:
        yield engine
    finally:
        dockerengine.stop(engine)


@pytest.fixture(scope="session")
def docker_base(docker_engine):
    """The Debian base image every coursehub image of the tests builds FROM."""
    import dockerengine

    return dockerengine.base_image(docker_engine)
