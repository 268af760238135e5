"""coursehub against a plain JupyterHub + nbgrader, on this machine, in one run.

    python -m bench.run [--tiny] [--n 10,50] [--courses 1,10] [--submissions 20]
                        [--repeat 3] [--out bench/results/latest.json]

Prints a Markdown table and writes the same figures as JSON. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import grading, measure
from .baseline import Baseline
from .common import USER_ENV, BenchError
from .coursehub_target import Coursehub
from .report import Figures, markdown, write_json
from .sides import Side

SIDE_CLASSES = {"coursehub": Coursehub, "baseline": Baseline}
COURSE = "c01"
ASSIGNMENT = "ps1"
INSTRUCTOR = "teach"
QUIET_PATTERN = "pytest|coursehub-.*-data|_supervise"


class Deadline(BaseException):
    """The whole run's time bound was reached."""


def _on_alarm(signum, frame):
    raise Deadline("the benchmark reached its time bound")


def _on_term(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="the quick version run by 'make test'")
    p.add_argument("--n", default=None, help="storm sizes, comma-separated (default 10,50)")
    p.add_argument("--courses", default=None, help="course counts for figure 1 (default 1,10)")
    p.add_argument("--submissions", type=int, default=None, help="autograde submissions (20)")
    p.add_argument(
        "--grading-submissions",
        type=int,
        default=None,
        help="submissions for figure 7, parallel sandboxed autograde (50, tiny 4)",
    )
    p.add_argument("--repeat", type=int, default=None, help="repeats of each timing (3)")
    p.add_argument("--requests", type=int, default=None, help="proxy latency requests (300)")
    p.add_argument("--sides", default="coursehub,baseline", help="which sides to measure")
    p.add_argument(
        "--only",
        default="start,user,storm,autograde,grading",
        help="which groups of figures: start, user (2, 4 and 6), storm (3, 4), autograde (5), "
        "grading (7)",
    )
    p.add_argument("--out", default="bench/results/latest.json", help="where the JSON goes")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="minutes to wait for other test runs on this machine to end (default 20, tiny 0)",
    )
    p.add_argument(
        "--time-bound", type=float, default=None, help="minutes for the whole run (90, tiny 8)"
    )
    a = p.parse_args(argv)
    tiny = a.tiny
    a.n = [int(x) for x in (a.n or ("2" if tiny else "10,50")).split(",")]
    a.courses = [int(x) for x in (a.courses or ("2" if tiny else "1,10")).split(",")]
    a.submissions = a.submissions or (2 if tiny else 20)
    a.repeat = a.repeat or (1 if tiny else 3)
    a.grading_submissions = a.grading_submissions or (4 if tiny else 50)
    a.requests = a.requests or (50 if tiny else 300)
    a.sides = [s for s in a.sides.split(",") if s]
    a.only = set(a.only.split(","))
    a.wait_quiet = a.wait_quiet if a.wait_quiet is not None else (0 if tiny else 20)
    a.time_bound = a.time_bound or (8 if tiny else 90)
    for s in a.sides:
        if s not in SIDE_CLASSES:
            p.error(f"unknown side {s!r}")
    return a


# -- the machine -----------------------------------------------------------------------------


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _version(python: str, module: str) -> str:
    try:
        return subprocess.run(
            [python, "-c", f"import {module}; print({module}.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "jupyterhub": _version(sys.executable, "jupyterhub"),
        "nbgrader": _version(f"{USER_ENV}/bin/python", "nbgrader"),
        "jupyterlab": _version(f"{USER_ENV}/bin/python", "jupyterlab"),
    }


def others_running() -> list[str]:
    r = subprocess.run(
        ["pgrep", "-af", QUIET_PATTERN], capture_output=True, text=True, check=False, timeout=10
    )
    mine = {str(os.getpid()), str(os.getppid())}
    return [
        ln
        for ln in r.stdout.splitlines()
        if ln.split(" ", 1)[0] not in mine
        and "/srv/coursehub-demo" not in ln  # the demo runs all along: idle, left alone
        and "bench.run" not in ln
        and "test_bench_tiny" not in ln
    ]


def wait_quiet(minutes: float, say) -> list[str]:
    deadline = time.monotonic() + minutes * 60
    while True:
        busy = others_running()
        if not busy or time.monotonic() >= deadline:
            return busy
        say(f"waiting for other test runs to end ({len(busy)} processes), checking every 30 s")
        time.sleep(min(30, max(1, deadline - time.monotonic())))


# -- the run ---------------------------------------------------------------------------------


def people_for(a: argparse.Namespace) -> tuple[list[str], dict[str, list[str]]]:
    """Everyone of the big installation, and the names for each use."""
    use = {
        # the figure most touched by the hub's randomised polling: twice the samples
        "solo": [f"solo{r + 1}" for r in range(a.repeat * (1 if a.tiny else 2))],
        "subs": [f"sub{i + 1:02d}" for i in range(a.submissions)],
    }
    for n in a.n:
        for r in range(a.repeat):
            use[f"storm-{n}-{r}"] = [f"n{n}r{r + 1}u{i + 1:03d}" for i in range(n)]
    students = [name for names in use.values() for name in names]
    return students, use


class Run:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.figures = Figures()
        self.details: dict = {"errors": [], "storms": {}, "memory": {}, "one_user": {}}
        self.live: list[Side] = []
        self.settle = 1.0 if a.tiny else 5.0  # seconds a server idles before its memory is read

    def add(self, side: str, key: str, title: str, unit: str, value: float, **kw) -> None:
        """One sample of a figure, with the machine's conditions when it was taken."""
        self.figures.add(side, key, title, unit, value, **kw)
        self.details.setdefault("conditions", []).append(
            {
                "figure": key,
                "side": side,
                "value": value,
                "time": time.strftime("%H:%M:%S"),
                "loadavg": _loadavg(),
                "other_test_processes": len(others_running()),
            }
        )

    def say(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def new_side(self, name: str, courses: dict, people: list[str]) -> Side:
        side = SIDE_CLASSES[name](courses, people)
        self.live.append(side)
        return side

    def drop(self, side: Side) -> None:
        with contextlib.suppress(Exception):
            side.stop()
        with contextlib.suppress(Exception):
            side.remove()
        if side in self.live:
            self.live.remove(side)

    def error(self, what: str, err: BaseException, side: Side | None = None) -> None:
        msg = f"{what}: {type(err).__name__}: {err}"
        self.say("ERROR " + msg)
        entry = {"what": what, "error": msg, "trace": traceback.format_exc()[-3000:]}
        if side is not None:
            with contextlib.suppress(Exception):
                entry["logs"] = side.logs()[-6000:]
        self.details["errors"].append(entry)

    # 1.
    def phase_start(self) -> None:
        a = self.a
        t_timeout = 120 if a.tiny else 300
        for r in range(a.repeat):
            for m in a.courses:
                courses = {
                    f"c{i + 1:02d}": {"instructors": [INSTRUCTOR], "students": ["s1", "s2"]}
                    for i in range(m)
                }
                order = a.sides if r % 2 == 0 else list(reversed(a.sides))
                for name in order:
                    side = self.new_side(name, courses, [INSTRUCTOR, "s1", "s2"])
                    self.say(f"{name}: start with {m} course(s), run {r + 1}/{a.repeat}")
                    try:
                        took = measure.hub_start(side, t_timeout)
                        for problem in side.problems:
                            self.error(f"{name} start with {m} courses", BenchError(problem))
                        self.add(
                            name,
                            f"start_{m}",
                            f"Hub start to healthy, {m} course{'s' if m > 1 else ''}",
                            "s",
                            took,
                        )
                        self.say(f"{name}: healthy in {took:.2f}s")
                    except Exception as err:  # noqa: BLE001
                        self.error(f"{name} start with {m} courses", err, side)
                    finally:
                        self.drop(side)

    # 7. autograde a whole assignment: coursehub's workers against nbgrader's serial CLI
    def phase_grading(self) -> None:
        try:
            grading.measure(self.add, self.say, self.a.grading_submissions, self.a.repeat)
        except Exception as err:  # noqa: BLE001
            self.error("grading (figure 7)", err)

    # 2-6 on one installation per side
    def phase_main(self, name: str) -> None:
        a = self.a
        students, use = people_for(a)
        courses = {COURSE: {"instructors": [INSTRUCTOR], "students": students}}
        side = self.new_side(name, courses, [INSTRUCTOR, *students])
        self.say(f"{name}: starting the installation for figures 2-6 ({len(students)} students)")
        try:
            took = side.start(180 if a.tiny else 400)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} start", err, side)
            self.drop(side)
            return
        for problem in side.problems:
            self.error(f"{name} start", BenchError(problem), side)
        people = len(students) + 1
        self.add(
            name, "start_main", f"Hub start to healthy, 1 course and {people} people", "s", took
        )
        self.say(f"{name}: healthy in {took:.2f}s")
        try:
            if "user" in a.only:
                self._users(side, use["solo"])
            if "storm" in a.only:
                for n in a.n:
                    for r in range(a.repeat):
                        self._storm(side, n, r, use[f"storm-{n}-{r}"])
            if "autograde" in a.only:
                self._autograde(side, use["subs"])
        finally:
            self.say(f"{name}: stopping")
            self.drop(side)

    def _users(self, side: Side, solos: list[str]) -> None:
        name = side.name
        persons = []
        for user in solos:
            try:
                res = measure.one_user(side, user, 150)
            except Exception as err:  # noqa: BLE001
                self.error(f"{name} one user {user}", err, side)
                continue
            persons.append(res.pop("person"))
            self.details["one_user"].setdefault(name, []).append(res)
            self.add(name, "one_user", "One user: login, spawn, server ready", "s", res["total_s"])
            self.say(f"{name}: {user} ready in {res['total_s']:.2f}s")
        if not persons:
            return
        try:
            mem = measure.idle_memory(side, [p.name for p in persons], self.settle)
            self.details["memory"].setdefault(name, {})["one"] = mem
            for m in mem:
                self.add(name, "mem_one_rss", "Idle user server: RSS", "MiB", m["Rss"] / 1024)
                self.add(name, "mem_one_pss", "Idle user server: PSS", "MiB", m["Pss"] / 1024)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} idle memory", err, side)
        for _ in range(self.a.repeat):
            try:
                lat = measure.proxy_latency(persons[0], self.a.requests)
            except Exception as err:  # noqa: BLE001
                self.error(f"{name} proxy latency", err, side)
                break
            self.add(
                name,
                "proxy_p50",
                "Proxy: small request to a user server, median",
                "ms",
                lat["p50_ms"],
            )
            self.add(
                name, "proxy_p95", "Proxy: small request to a user server, p95", "ms", lat["p95_ms"]
            )
            try:
                direct = measure.direct_latency(side, persons[0], self.a.requests)
            except Exception as err:  # noqa: BLE001
                self.error(f"{name} direct latency", err, side)
                continue
            self.add(
                name,
                "proxy_direct_diag",
                "(diagnostic) same request straight to the server, median",
                "ms",
                direct["p50_ms"],
            )
        try:
            measure.stop_servers(side, persons, 120)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} stopping the single users' servers", err, side)

    def _storm(self, side: Side, n: int, r: int, names: list[str]) -> None:
        name = side.name
        timeout = 60 + 5 * n
        self.say(f"{name}: {n} users log in and spawn at once (run {r + 1}/{self.a.repeat})")
        try:
            res = measure.storm(side, names, timeout)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} storm of {n}", err, side)
            return
        persons = res.pop("persons")
        if res["failure_reasons"]:
            res["hub_log_about_failures"] = side.hub_log_about(list(res["failure_reasons"]))
        self.details["storms"].setdefault(name, {}).setdefault(str(n), []).append(res)
        self.add(name, f"storm_{n}_ready", f"{n} users at once: all ready", "s", res["all_ready_s"])
        self.add(name, f"storm_{n}_fail", f"{n} users at once: failures", "count", res["failures"])
        self.add(
            name,
            f"storm_{n}_cpu",
            f"{n} users at once: peak hub CPU (1 s)",
            "%",
            res["peak_hub_cpu_percent"],
        )
        self.say(
            f"{name}: {n} ready in {res['all_ready_s']:.1f}s, {res['failures']} failures, "
            f"hub peak {res['peak_hub_cpu_percent']:.0f}%"
        )
        ready = [p.name for p in persons if p.name not in res["failure_reasons"]]
        try:
            mem = measure.idle_memory(side, ready, self.settle)
            self.details["memory"].setdefault(name, {}).setdefault(str(n), []).append(mem)
            if len(ready) == n:
                self.add(
                    name,
                    f"mem_{n}_pss",
                    f"{n} idle user servers: total PSS",
                    "MiB",
                    sum(m["Pss"] for m in mem) / 1024,
                )
                self.add(
                    name,
                    f"mem_{n}_rss",
                    f"{n} idle user servers: total RSS",
                    "MiB",
                    sum(m["Rss"] for m in mem) / 1024,
                )
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} memory of {n} servers", err, side)
        try:
            measure.stop_servers(side, persons, 60 + 2 * n)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} stopping {n} servers", err, side)

    def _autograde(self, side: Side, subs: list[str]) -> None:
        name = side.name
        self.say(f"{name}: autograde of {len(subs)} submissions")
        try:
            side.release_sample(COURSE, ASSIGNMENT)
            instructor = measure.open_grader(side, INSTRUCTOR, COURSE)
        except Exception as err:  # noqa: BLE001
            self.error(f"{name} preparing autograde", err, side)
            return
        timeout = 60 + 30 * len(subs)
        for _ in range(self.a.repeat):
            try:
                side.place_submissions(COURSE, ASSIGNMENT, subs)
                rate = measure.autograde_api(side, instructor, COURSE, ASSIGNMENT, subs, timeout)
                self.add(
                    name,
                    "autograde_api",
                    "Autograde through the grader service (formgrader API)",
                    "subs/s",
                    rate,
                    better="higher",
                )
                self.say(f"{name}: formgrader API {rate:.2f} submissions/s")
            except Exception as err:  # noqa: BLE001
                self.error(f"{name} autograde through the formgrader", err, side)
            try:
                side.place_submissions(COURSE, ASSIGNMENT, subs)
                rate = measure.autograde_cli(side, COURSE, ASSIGNMENT, len(subs), timeout)
                self.add(
                    name,
                    "autograde_cli",
                    "Autograde with the nbgrader CLI",
                    "subs/s",
                    rate,
                    better="higher",
                )
                self.say(f"{name}: nbgrader CLI {rate:.2f} submissions/s")
            except Exception as err:  # noqa: BLE001
                self.error(f"{name} autograde with the CLI", err, side)

    def cleanup(self) -> None:
        for side in list(self.live):
            self.say(f"cleaning up {side.name} at {side.public_url}")
            self.drop(side)


ORDER = ["start_", "one_user", "storm_", "mem_one", "mem_", "autograde_", "proxy_", "grading_"]
SUFFIX = ["_ready", "_fail", "_cpu", "_rss", "_pss", "_api", "_cli", "_p50", "_p95"]


def _order(key: str) -> tuple:
    """The issue's order: start, one user, storms, memory, autograde, proxy."""
    group = next((i for i, p in enumerate(ORDER) if key.startswith(p)), len(ORDER))
    num = re.findall(r"\d+", key)
    size = int(num[0]) if num else 10**9
    suffix = next((i for i, s in enumerate(SUFFIX) if key.endswith(s)), len(SUFFIX))
    return (group, size, suffix, key)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if os.geteuid() != 0:
        print("bench: run as root (coursehub runs each server under its own uid)", file=sys.stderr)
        return 2
    run = Run(a)
    started = time.monotonic()
    busy = wait_quiet(a.wait_quiet, run.say) if a.wait_quiet > 0 else others_running()
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine_info": machine(),
        "loadavg_before": _loadavg(),
        "other_test_processes_at_start": len(busy),
        "settings": (
            f"{'tiny, ' if a.tiny else ''}repeat {a.repeat}, storms N={','.join(map(str, a.n))}, "
            f"courses {','.join(map(str, a.courses))}, {a.submissions} submissions, "
            f"{a.requests} proxy requests, {a.grading_submissions} submissions graded in parallel"
        ),
    }
    mi = meta["machine_info"]
    meta["machine"] = (
        f"{mi['hostname']} ({mi['cpu']}, {mi['cores']} cores, {mi['memory_gib']} GiB, "
        f"Linux {mi['kernel']}; JupyterHub {mi['jupyterhub']}, nbgrader {mi['nbgrader']}, "
        f"JupyterLab {mi['jupyterlab']})"
    )
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(int(a.time_bound * 60))
    try:
        if "start" in a.only:
            run.phase_start()
        if a.only & {"user", "storm", "autograde"}:
            for name in a.sides:
                run.phase_main(name)
        if "grading" in a.only:
            run.phase_grading()
    except (Deadline, KeyboardInterrupt) as err:
        run.error("run interrupted", err)
    finally:
        signal.alarm(0)
        run.cleanup()
    meta["loadavg_after"] = _loadavg()
    meta["took_s"] = time.monotonic() - started
    run.figures.items = dict(sorted(run.figures.items.items(), key=lambda kv: _order(kv[0])))
    table = markdown(run.figures, meta)
    print(table)
    write_json(a.out, run.figures, meta, run.details)
    if a.markdown:
        Path(a.markdown).write_text(table)
    for e in run.details["errors"]:
        print(f"error: {e['error']}", file=sys.stderr)
    print(f"JSON: {a.out}", file=sys.stderr)
    return 1 if run.details["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
