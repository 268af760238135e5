"""Run, stop and inspect a local installation (what 'up', 'down' and 'status' call)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...paths import Paths, layout_paths
from ...plan import Plan
from ...runas import demote, find_nss_wrapper
from ...secrets import load_secrets, write_private
from .processes import ProcessSpec, find_proxy, grader_spec, hub_spec, proxy_spec
from .supervisor import (
    http_answers,
    http_ok,
    process_exists,
    processes_of,
    terminate_all,
)


@dataclass(frozen=True)
class Installation:
    data_dir: str

    @property
    def paths(self) -> Paths:
        """The data folder's places (the local target's layout: no Plan needed)."""
        return layout_paths(self.data_dir)

    @property
    def run_dir(self) -> Path:
        return Path(self.paths.run)

    @property
    def state_file(self) -> Path:
        return Path(self.paths.supervisor_state)

    @property
    def lock_file(self) -> Path:
        return Path(self.paths.supervisor_lock)

    @property
    def log_file(self) -> Path:
        return Path(self.paths.log("coursehub"))

    def plan(self) -> Plan:
        return Plan.from_json(Path(self.paths.plan_file).read_text())

    def runtime(self) -> dict:
        return json.loads(Path(self.paths.runtime_file).read_text())

    def exists(self) -> bool:
        return Path(self.paths.plan_file).exists()

    def supervisor_pid(self) -> int | None:
        """The pid of the running supervisor, or None (it holds the lock while it runs)."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(self.state_file.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                return -1
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def save_runtime(data_dir: str, user_env: str, hub_config_file: str, site_file: str) -> None:
    write_private(
        layout_paths(data_dir).runtime_file,
        json.dumps(
            {
                "user_env": user_env,
                "hub_config": hub_config_file,
                "site_file": str(Path(site_file).absolute()),
            }
        )
        + "\n",
    )


def run_as_grader(
    inst: Installation,
    course_id: str,
    argv: list[str],
    capture: bool = False,
    input: str | None = None,  # noqa: A002 - as subprocess.run names it
) -> subprocess.CompletedProcess:
    """Run a command as the course's grader account, with its configuration and hub variables."""
    plan = inst.plan()
    if course_id not in plan.courses:
        known = ", ".join(plan.courses) or "none"
        raise KeyError(f"no course {course_id!r} in this installation (courses: {known})")
    spec = grader_spec(
        plan,
        course_id,
        load_secrets(plan.paths.secrets),
        inst.runtime()["user_env"],
        find_nss_wrapper(),
    )
    root = plan.courses[course_id].course_root
    # Code in the course's configuration runs here: it gets no terminal of root's (a new
    # session, stdin from /dev/null, output through pipes), so it can neither type into
    # root's shell (TIOCSTI) nor read what root types.
    proc = subprocess.Popen(  # noqa: S603 - the operator's own nbgrader command
        argv,
        env=spec.env,
        cwd=root,
        preexec_fn=demote(spec.account, cwd=root),  # noqa: PLW1509
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if input is not None:
        import threading

        def feed() -> None:
            try:
                proc.stdin.write(input.encode())
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()

        threading.Thread(target=feed, daemon=True).start()
    out, err = _relay(proc, echo=not capture)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# What a grader's output may show on root's terminal: text, no control sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Text with every control character but newline and tab shown as '?'."""
    return _CONTROL.sub("?", text)


def _relay(proc: subprocess.Popen, echo: bool) -> tuple[str, str]:
    """Read both pipes to the end; with `echo`, show each line as it comes, made safe."""
    import codecs
    import selectors

    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    streams = {
        out_fd: (sys.stdout, [], codecs.getincrementaldecoder("utf-8")("replace")),
        err_fd: (sys.stderr, [], codecs.getincrementaldecoder("utf-8")("replace")),
    }
    sel = selectors.DefaultSelector()
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    while sel.get_map():
        for key, _ in sel.select():
            chunk = os.read(key.fd, 65536)  # what is there: never waits for a whole line
            target, kept, decoder = streams[key.fd]
            text = decoder.decode(chunk, final=not chunk)
            if not chunk:
                sel.unregister(key.fd)
            kept.append(text)
            if echo and text:
                target.write(terminal_safe(text))
                target.flush()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return "".join(streams[out_fd][1]), "".join(streams[err_fd][1])


def process_specs(inst: Installation) -> list[ProcessSpec]:
    plan = inst.plan()
    rt = inst.runtime()
    secrets = load_secrets(plan.paths.secrets)
    nss = find_nss_wrapper()
    specs = [proxy_spec(plan, secrets, find_proxy()), hub_spec(plan, rt["hub_config"])]
    specs += [grader_spec(plan, cid, secrets, rt["user_env"], nss) for cid in plan.courses]
    return specs


def start_detached(inst: Installation) -> int:
    """Start the supervisor in its own session, detached from this terminal."""
    inst.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(inst.log_file, "ab") as out:
        os.fchmod(out.fileno(), 0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "coursehub", "_supervise", "--data-dir", inst.data_dir],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=demote(None),  # noqa: PLW1509
            start_new_session=True,
        )
    return proc.pid


@dataclass
class Health:
    name: str
    url: str
    ok: bool


def health(inst: Installation) -> list[Health]:
    """Ask each process of the installation whether it is ready."""
    plan = inst.plan()
    checks = [
        Health("proxy", plan.proxy_health_url, False),
        Health("hub", plan.public_health_url, False),
    ]
    checks += [Health(f"grader-{cid}", g.health_url, False) for cid, g in plan.courses.items()]
    for h in checks:
        # the proxy's API wants its token: any answer (even 403) means it listens
        h.ok = http_answers(h.url) if h.name == "proxy" else http_ok(h.url)
    return checks


def wait_healthy(
    inst: Installation, timeout: float, progress: Callable[[str], None], pid: int | None = None
) -> bool:
    """Wait until every process answers, reporting each as it comes up."""
    deadline = time.monotonic() + timeout
    reported: set[str] = set()
    while time.monotonic() < deadline:
        checks = health(inst)
        for h in checks:
            if h.ok and h.name not in reported:
                reported.add(h.name)
                progress(f"{h.name} is up")
        if all(h.ok for h in checks):
            return True
        if pid is not None and not process_exists(pid):
            return False
        time.sleep(0.3)
    return False


def stop(inst: Installation, timeout: float = 20.0) -> tuple[bool, list[int]]:
    """Stop the supervisor and everything it ran. Returns (was_running, pids killed late)."""
    pid = inst.supervisor_pid()
    was_running = pid is not None
    if pid and pid > 0:
        terminate_all([pid], timeout)
    leftovers = processes_of(inst.data_dir)
    killed = terminate_all(leftovers, 3.0) if leftovers else []
    return was_running or bool(leftovers), killed
