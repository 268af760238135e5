"""The measurements. Each takes a running side (or a way to make one) and a time bound."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import (
    BenchError,
    CpuSampler,
    Person,
    percentile,
    server_pids,
    smaps_rollup,
    wait_until,
)
from .sides import Side


def hub_start(side: Side, timeout: float) -> float:
    """1. Seconds from launching the installation until /hub/health answers 200 and every
    course's grader service answers through the proxy. The side is stopped and removed."""
    try:
        return side.start(timeout)
    finally:
        side.stop()
        side.remove()


def one_user(side: Side, name: str, timeout: float) -> dict[str, float]:
    """2. One user: login, spawn, until /user/NAME/api/status answers 200 through the proxy."""
    p = Person(side.public_url, name)
    t0 = time.monotonic()
    deadline = t0 + timeout
    p.login()
    t_login = time.monotonic()
    p.request_server(timeout=timeout)
    t_spawned = time.monotonic()
    p.wait_server(deadline, interval=0.05)
    t_ready = time.monotonic()
    return {
        "total_s": t_ready - t0,
        "login_s": t_login - t0,
        "spawn_request_s": t_spawned - t_login,
        "ready_after_request_s": t_ready - t_login,
        "person": p,
    }


def storm(side: Side, names: list[str], timeout: float) -> dict:
    """3. Everyone logs in and spawns at once. Time until every server answers, failures,
    and the hub's peak CPU (1 s windows) meanwhile."""
    barrier = threading.Barrier(len(names) + 1)
    persons = [Person(side.public_url, n) for n in names]
    results: dict[str, float | str] = {}

    def one(p: Person) -> None:
        barrier.wait(30)
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            p.login(timeout=min(120, timeout))
            p.request_server(timeout=min(180, timeout))
            p.wait_server(deadline, interval=0.25)
            results[p.name] = time.monotonic() - t0
        except Exception as err:  # noqa: BLE001 - a failure is a figure, not a crash
            results[p.name] = f"{type(err).__name__}: {err}"

    with CpuSampler(side.hub_pid()) as cpu, ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(one, p) for p in persons]
        barrier.wait(30)
        t0 = time.monotonic()
        for f in futures:
            f.result(timeout=timeout + 60)
        wall = time.monotonic() - t0
    ok = [v for v in results.values() if isinstance(v, float)]
    failures = {k: v for k, v in results.items() if not isinstance(v, float)}
    return {
        "all_ready_s": max(ok) if ok else wall,
        "wall_s": wall,
        "failures": len(failures),
        "failure_reasons": failures,
        "peak_hub_cpu_percent": cpu.peak_percent(),
        "hub_cpu_s": cpu.cpu_seconds(),
        "ready_s": sorted(ok),
        "persons": persons,
    }


def idle_memory(side: Side, names: list[str], settle: float = 5.0) -> list[dict[str, int]]:
    """4. Rss and Pss (KiB) of each named user's server process (no kernel running)."""
    time.sleep(settle)
    out = []
    for name in names:
        pids = server_pids(side.marker, name)
        if len(pids) != 1:
            raise BenchError(f"expected one server process for {name}, found {pids}")
        out.append({"user": name, "pid": pids[0], **smaps_rollup(pids[0])})
    return out


def stop_servers(side: Side, persons: list[Person], timeout: float) -> None:
    """Stop the servers through the hub (as their owners) and wait until they are gone."""
    with ThreadPoolExecutor(min(16, len(persons))) as pool:
        list(pool.map(lambda p: p.stop_server(timeout=timeout), persons))
    names = [p.name for p in persons]
    wait_until(
        lambda: not any(server_pids(side.marker, n) for n in names),
        timeout,
        f"{len(names)} servers to stop",
        interval=0.5,
    )
    wait_until(lambda: all(p.server_gone() for p in persons), timeout, "the hub to forget them")


def proxy_latency(person: Person, count: int) -> dict[str, float]:
    """6. Sequential small requests to the user's server through the proxy (ms)."""
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        r = person.server_status()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise BenchError(f"proxy latency: {r.status_code} {r.text[:200]}")
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "n": count}


def direct_latency(side: Side, person: Person, count: int) -> dict[str, float]:
    """The same request straight to the server's port, bypassing the proxy (ms): what the
    proxy adds is the difference."""
    pids = server_pids(side.marker, person.name)
    if len(pids) != 1:
        raise BenchError(f"expected one server process for {person.name}, found {pids}")
    env = dict(
        kv.split("=", 1)
        for kv in Path(f"/proc/{pids[0]}/environ").read_text(errors="replace").split("\0")
        if "=" in kv
    )
    url = env["JUPYTERHUB_SERVICE_URL"].rstrip("/") + f"/user/{person.name}/api/status"
    if f"/user/{person.name}/" in env["JUPYTERHUB_SERVICE_URL"]:
        url = env["JUPYTERHUB_SERVICE_URL"].rstrip("/") + "/api/status"
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        r = person.s.get(url, timeout=10, allow_redirects=False)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise BenchError(f"direct latency: {r.status_code} {r.text[:200]}")
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "n": count}


def autograde_api(
    side: Side,
    instructor: Person,
    course: str,
    assignment: str,
    students: list[str],
    timeout: float,
) -> float:
    """5a. Submissions per second through the course's grader service (formgrader API),
    one submission after the other, as the formgrader's Autograde button does."""
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    for student in students:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("autograde through the formgrader took too long")
        r = instructor.service(
            "POST",
            course,
            f"formgrader/api/submission/{assignment}/{student}/autograde",
            timeout=left,
        )
        if r.status_code != 200 or not r.json().get("success"):
            raise BenchError(f"formgrader autograde of {student}: {r.status_code} {r.text[:800]}")
    return len(students) / (time.monotonic() - t0)


def autograde_cli(side: Side, course: str, assignment: str, count: int, timeout: float) -> float:
    """5b. Submissions per second with one `nbgrader autograde ASSIGNMENT` for all."""
    took = side.autograde_cli(course, assignment, timeout)
    graded = list((side.course_root(course) / "autograded").glob(f"*/{assignment}/*.ipynb"))
    if len(graded) < count:
        raise BenchError(f"nbgrader autograde left {len(graded)} of {count} submissions graded")
    return count / took


def open_grader(side: Side, instructor_name: str, course: str) -> Person:
    """The instructor logs in and opens the course's grader service once (OAuth)."""
    p = Person(side.public_url, instructor_name)
    p.login()
    r = p.visit(f"services/{course}/lab")
    if r.status_code != 200:
        raise BenchError(f"instructor cannot open services/{course}/: {r.status_code}")
    return p
