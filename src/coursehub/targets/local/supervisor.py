"""The local target's supervisor: proxy, hub and one grader server per course.

Each child is restartable alone. The proxy starts first and keeps running
while the hub restarts, so users stay connected; grader servers start in
parallel with the hub and never block it. A child that dies is logged and
restarted with a growing delay. On SIGTERM everything of this installation
stops, user servers and kernels included.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...runas import demote
from ...secrets import write_private
from .processes import ProcessSpec

log = logging.getLogger("coursehub")

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a child up this long has its restart delay reset


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """Does anything answer HTTP at `url` (whatever the status)?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - loopback only
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ready(spec: ProcessSpec, timeout: float = 2.0) -> bool:
    if spec.health_any_status:
        return http_answers(spec.health_url, timeout)
    return http_ok(spec.health_url, timeout)


@dataclass
class Child:
    spec: ProcessSpec
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0
    last_exit: int | None = None
    history: list[str] = field(default_factory=list)

    def start(self) -> None:
        s = self.spec
        Path(s.log).parent.mkdir(parents=True, exist_ok=True)
        with open(s.log, "ab") as out:
            os.chmod(s.log, 0o600)
            self.proc = subprocess.Popen(
                list(s.argv),
                env=s.env,
                cwd=s.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=demote(s.account, cwd=s.cwd),  # noqa: PLW1509
                start_new_session=True,
            )
        self.started = time.monotonic()
        log.info("started %s (pid %d)", s.name, self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def processes_of(data_dir: str, exclude: Iterable[int] = ()) -> list[int]:
    """Every process whose environment marks it as this installation's."""
    return processes_with_env(f"COURSEHUB_DATA_DIR={data_dir}", exclude)


def processes_with_env(entry: str, exclude: Iterable[int] = ()) -> list[int]:
    """Every process whose environment holds `entry` ("KEY=value"), but this one."""
    marker = entry.encode()
    skip = {os.getpid(), *exclude}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def terminate_all(pids: list[int], grace: float) -> list[int]:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the pids that were killed."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = [p for p in pids if process_exists(p)]
        if not pids:
            return []
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def process_exists(pid: int) -> bool:
    """Is `pid` still a running process? Zombies count as gone (reaped if ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Supervisor:
    def __init__(
        self,
        data_dir: str,
        specs: list[ProcessSpec],
        state_file: str,
        on_event: Callable[[str], None] | None = None,
        respec: Callable[[], list[ProcessSpec]] | None = None,
        periodic: Callable[[], None] | None = None,
        period: float = 5.0,
    ):
        self.data_dir = data_dir
        self.children = {s.name: Child(s) for s in specs}
        self.state_file = state_file
        self.stopping = False
        self.reload_requested = False
        self.hub_restart_requested = False
        self.reloads = 0  # completed reloads, for whoever asked for one
        self.on_event = on_event or (lambda msg: None)
        self.respec = respec
        self.periodic = periodic
        self.period = period

    # -- state shown by 'coursehub status'
    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "reloads": self.reloads,
            # SIGUSR1 starts new grader servers without a hub restart; a supervisor of an
            # older coursehub would die of it, so apply looks for this first
            "reload_signals": ["SIGHUP", "SIGUSR1"],
            "data_dir": self.data_dir,
            "children": {
                name: {
                    "pid": c.proc.pid if c.alive else None,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "health_url": c.spec.health_url,
                    "log": c.spec.log,
                    "history": c.history[-5:],
                }
                for name, c in self.children.items()
            },
        }
        write_private(Path(self.state_file), json.dumps(state, indent=1) + "\n")

    def _event(self, msg: str) -> None:
        log.info(msg)
        self.on_event(msg)

    def start_all(self) -> None:
        proxy = self.children.get("proxy")
        if proxy:
            proxy.start()
            self._wait_healthy([proxy], timeout=20)
        for child in self.children.values():
            if child is not proxy:
                child.start()
        self.write_state()

    def _wait_healthy(self, children: list[Child], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(ready(c.spec, 0.5) for c in children):
                return
            if any(not c.alive for c in children):
                return
            time.sleep(0.1)

    def check_children(self) -> None:
        now = time.monotonic()
        changed = False
        for name, c in self.children.items():
            if c.proc is not None and c.proc.poll() is not None:
                c.last_exit = c.proc.returncode
                ran = now - c.started
                if ran > STABLE_AFTER:
                    c.backoff = 1.0
                c.next_start = now + c.backoff
                msg = f"{name} exited with status {c.last_exit} after {ran:.0f}s; restarting in {c.backoff:.0f}s (log: {c.spec.log})"
                c.history.append(time.strftime("%Y-%m-%d %H:%M:%S ") + msg)
                self._event(msg)
                c.backoff = min(c.backoff * 2, MAX_BACKOFF)
                c.proc = None
                changed = True
            if c.proc is None and not self.stopping and now >= c.next_start:
                c.restarts += 1
                c.start()
                changed = True
        if changed:
            self.write_state()

    def run(self, poll: float = 0.5) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGUSR1, self._on_reload)
        next_periodic = time.monotonic() + self.period
        while not self.stopping:
            if self.reload_requested:
                restart_hub = self.hub_restart_requested
                self.reload_requested = self.hub_restart_requested = False
                self.reload(restart_hub)
            self.check_children()
            if self.periodic and time.monotonic() >= next_periodic:
                try:
                    self.periodic()
                except Exception as err:  # noqa: BLE001 - keep supervising whatever it was
                    log.exception("periodic task failed: %s", err)
                next_periodic = time.monotonic() + self.period
            time.sleep(poll)
        self.stop_all()

    def _on_reload(self, signum, frame) -> None:
        # SIGHUP: the hub must restart too (it loads admins and auth at start only);
        # SIGUSR1: the hub took the change live, only grader servers come and go
        self.reload_requested = True
        if signum == signal.SIGHUP:
            self.hub_restart_requested = True

    def reload(self, restart_hub: bool = True) -> None:
        """Take up a changed Plan: start new grader servers, stop removed ones and,
        when asked, restart the hub alone (the proxy keeps users connected)."""
        if self.respec is None:
            return
        specs = {s.name: s for s in self.respec()}
        for name in [n for n in self.children if n not in specs]:
            c = self.children.pop(name)
            if c.alive:
                terminate_all([c.proc.pid], 8.0)
                c.proc.wait()
            self._event(f"stopped {name}: no longer in the site file")
        for name, spec in specs.items():
            if name not in self.children:
                self.children[name] = Child(spec)
                self.children[name].start()
                self._event(f"started {name}: new in the site file")
            else:
                self.children[name].spec = spec
        hub = self.children.get("hub")
        if hub is not None and restart_hub:
            if hub.alive:
                terminate_all([hub.proc.pid], 10.0)
                hub.proc.wait()
            hub.proc = None
            hub.start()
            self._event("restarted the hub to load the changed site file")
        self.reloads += 1
        self.write_state()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def stop_all(self, grace: float = 8.0) -> None:
        """Stop user servers, kernels and graders, then the hub, then the proxy."""
        self.stopping = True
        ours = {c.proc.pid for c in self.children.values() if c.alive}
        others = [p for p in processes_of(self.data_dir) if p not in ours]
        killed = terminate_all(others, grace)
        for name in [n for n in self.children if n.startswith("grader-")] + ["hub", "proxy"]:
            c = self.children.get(name)
            if c and c.alive:
                killed += terminate_all([c.proc.pid], grace)
                c.proc.wait()
        if killed:
            self._event(f"killed after {grace:.0f}s without stopping: pids {killed}")
        leftovers = processes_of(self.data_dir)
        if leftovers:
            terminate_all(leftovers, 1.0)
        self.write_state()
        self._event("stopped")
