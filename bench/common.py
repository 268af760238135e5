"""What both sides of the benchmark share: ports, processes, HTTP, a person at the hub.

Everything here is loopback only and bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from coursehub.targets.local.supervisor import processes_with_env, terminate_all

ROOT = Path(__file__).resolve().parents[1]
USER_ENV = os.environ.get("COURSEHUB_USER_ENV", "/opt/coursehub/user-env")
PASSWORD = "bench-shared-pw-1"  # noqa: S105 - a throwaway installation on loopback
PORT_SPAN = 40  # hub.port .. hub.port + 10 + up to 30 courses
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A phase of the benchmark failed; says which and why."""


# -- ports -----------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port_block(start: int = 27000, stop: int = 32700, span: int = PORT_SPAN) -> int:
    """A base port with the next `span` ports free: below Linux's ephemeral range (32768 and
    up, where outgoing connections take their local ports), above the integration tests'
    21000-26000 and far from the demo's 8000-8100."""
    blocks = (stop - start) // (span + 10)
    first = os.getpid() % blocks
    for i in range(blocks):
        port = start + ((first + i) % blocks) * (span + 10)
        if all(_port_free(p) for p in range(port, port + span)):
            return port
    raise BenchError("no free block of ports on loopback")


# -- processes -------------------------------------------------------------------------------


def kill_marked(marker: str, grace: float = 3.0) -> list[int]:
    """Stop every process that carries `marker` in its environment (leftovers of a side)."""
    pids = processes_with_env(marker)
    if pids:
        terminate_all(pids, grace)
    return pids


def server_pids(marker: str, username: str) -> list[int]:
    """The jupyterhub-singleuser process(es) of `username` among the marked processes."""
    found = []
    for pid in processes_with_env(f"JUPYTERHUB_USER={username}"):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in env and b"jupyterhub-singleuser" in cmd:
            found.append(pid)
    return found


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss and Pss of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key] = int(rest.split()[0])
    return out


class CpuSampler:
    """Samples a process's CPU time; peak CPU % over 1 s windows (100 % = one core)."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), cpu_ticks(self.pid)))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)

    def peak_percent(self, window: float = 1.0) -> float:
        best = 0.0
        s = self.samples
        j = 0
        for i in range(len(s)):
            j = max(j, i)
            while j < len(s) and s[j][0] - s[i][0] < window:
                j += 1
            if j >= len(s):
                break
            dt = s[j][0] - s[i][0]
            best = max(best, (s[j][1] - s[i][1]) / CLK_TCK / dt * 100)
        if best == 0.0 and len(s) >= 2:  # shorter than a window: the whole span
            dt = s[-1][0] - s[0][0]
            if dt > 0:
                best = (s[-1][1] - s[0][1]) / CLK_TCK / dt * 100
        return best

    def cpu_seconds(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        return (self.samples[-1][1] - self.samples[0][1]) / CLK_TCK


# -- waiting ---------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        return requests.get(url, timeout=timeout, allow_redirects=False).status_code
    except requests.RequestException:
        return None


def service_reachable(public_url: str, course: str, timeout: float = 2.0) -> bool:
    """The course's grader server answers through the proxy (its /api is public)."""
    try:
        r = requests.get(
            urljoin(public_url, f"services/{course}/api"), timeout=timeout, allow_redirects=False
        )
    except requests.RequestException:
        return False
    if r.status_code != 200:
        return False
    try:
        return "version" in r.json()
    except ValueError:
        return False


def healthy(public_url: str, courses: Iterable[str]) -> bool:
    if http_status(urljoin(public_url, "hub/health")) != 200:
        return False
    return all(service_reachable(public_url, c) for c in courses)


def wait_healthy(
    public_url: str,
    courses: list[str],
    t0: float,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> float:
    """Seconds from `t0` (monotonic) until the hub and every course's service answer
    through the proxy. Polls every 50 ms; stops early when `alive()` says it died."""
    pending = list(courses)
    hub_ok = False
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise BenchError("the installation's main process exited while starting")
        if not hub_ok:
            hub_ok = http_status(urljoin(public_url, "hub/health"), 1.0) == 200
        if hub_ok:
            pending = [c for c in pending if not service_reachable(public_url, c, 1.0)]
            if not pending:
                return time.monotonic() - t0
        time.sleep(0.05)
    raise BenchError(
        f"not healthy after {timeout:.0f}s: hub {'ok' if hub_ok else 'down'}, "
        f"services not reachable: {', '.join(pending) or 'none'}"
    )


# -- statistics ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- a person at the hub ---------------------------------------------------------------------


class Person:
    """Logs in through the form, starts a server, calls APIs through the proxy."""

    def __init__(self, base_url: str, name: str):
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.name = name
        self.s = requests.Session()
        # A kept-alive connection the proxy has just closed fails on reuse: retry what is
        # safe to repeat (never a POST).
        retry = Retry(
            total=2,
            connect=2,
            read=2,
            status=0,
            allowed_methods={"GET", "HEAD", "DELETE"},
            backoff_factor=0.1,
            raise_on_status=False,
        )
        self.s.mount("http://", HTTPAdapter(max_retries=retry))

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip("/"))

    def _xsrf(self, path: str = "/hub/") -> str:
        return self.s.cookies.get("_xsrf", path=path) or self.s.cookies.get("_xsrf") or ""

    def login(self, password: str = PASSWORD, timeout: float = 30) -> None:
        page = self.s.get(self.url("hub/login"), timeout=timeout)
        page.raise_for_status()
        r = self.s.post(
            self.url("hub/login"),
            data={"username": self.name, "password": password, "_xsrf": self._xsrf()},
            timeout=timeout,
            allow_redirects=False,
        )
        if r.status_code not in (302, 303) or "jupyterhub-session-id" not in self.s.cookies:
            raise BenchError(f"login of {self.name} failed: {r.status_code} {r.text[:200]}")

    def hub_api(self, method: str, path: str, timeout: float = 30, **kw) -> requests.Response:
        headers = {"X-XSRFToken": self._xsrf(), "Referer": self.url("hub/home")}
        return self.s.request(
            method, self.url("hub/api/" + path.lstrip("/")), headers=headers, timeout=timeout, **kw
        )

    def request_server(self, timeout: float = 60) -> None:
        r = self.hub_api("POST", f"users/{self.name}/server", timeout=timeout)
        if r.status_code not in (201, 202):
            raise BenchError(f"spawn of {self.name} refused: {r.status_code} {r.text[:200]}")

    def server_status(self, timeout: float = 10) -> requests.Response:
        return self.s.get(
            self.url(f"user/{self.name}/api/status"), timeout=timeout, allow_redirects=False
        )

    def wait_server(self, deadline: float, interval: float = 0.1) -> None:
        """Until /user/NAME/api/status answers 200 through the proxy. The first answer of
        the server itself (403: no cookie yet) is followed by the OAuth dance with the hub,
        as a browser's first visit does."""
        next_check = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                r = self.server_status()
            except requests.RequestException:
                r = None
            if r is not None:
                if r.status_code == 200 and "started" in r.text:
                    return
                if r.status_code == 403 and "api/status" in r.url:
                    self._oauth()
                    continue
            if time.monotonic() >= next_check:  # a spawn that failed is not waited for
                next_check = time.monotonic() + 2
                with contextlib.suppress(requests.RequestException, ValueError):
                    model = self.hub_api("GET", f"users/{self.name}", timeout=10).json()
                    if not model.get("servers") and not model.get("pending"):
                        raise BenchError(f"the hub gave up the spawn of {self.name}")
            time.sleep(interval)
        raise BenchError(f"server of {self.name} not ready in time")

    def _oauth(self) -> None:
        """Open the server's Lab once, as a browser's first visit: the server sends us
        through the hub's OAuth and sets its own cookie."""
        self.s.get(self.url(f"user/{self.name}/lab"), timeout=60)

    def stop_server(self, timeout: float = 60) -> None:
        r = self.hub_api("DELETE", f"users/{self.name}/server", timeout=timeout)
        if r.status_code not in (202, 204, 400):
            raise BenchError(f"stop of {self.name} refused: {r.status_code} {r.text[:200]}")

    def server_gone(self) -> bool:
        r = self.hub_api("GET", f"users/{self.name}", timeout=10)
        return r.status_code == 200 and not r.json().get("servers")

    def service(self, method: str, course: str, path: str, **kw) -> requests.Response:
        """A course's grader service, after one visit (OAuth), as its Lab UI calls it."""
        url = self.url(f"services/{course}/" + path.lstrip("/"))
        xsrf = self._xsrf(f"/services/{course}/")
        kw.setdefault("timeout", 120)
        return self.s.request(method, url, headers={"X-XSRFToken": xsrf, "Referer": url}, **kw)

    def visit(self, path: str, timeout: float = 60) -> requests.Response:
        return self.s.get(self.url(path), timeout=timeout)
