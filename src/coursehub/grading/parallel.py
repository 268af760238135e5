"""Autograde a whole assignment with N sandboxed workers (run as the course's grader).

``coursehub autograde COURSE ASSIGNMENT`` runs this module as the grader account,
in the course folder. Each worker is a process with its own nbgrader API that
grades one submission at a time through nbgrader's own Autograde (so the
gradebook, the formgrader and grade passback see what they always see); every
kernel it starts runs in coursehub's sandbox (coursehub.grading.provisioner).

The gradebook under concurrent writers: every worker writes its own results into
the one SQLite gradebook, which is put in WAL mode (the formgrader keeps reading
while workers write), and each worker's transactions take SQLite's write lock
when they begin (BEGIN IMMEDIATE) and wait up to a minute for it: no transaction
ever has to upgrade a read lock, which is where SQLite gives up at once. A
submission that still meets a locked database is graded again, once.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import json
import multiprocessing
import os
import sqlite3
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from . import provisioner

LOCK_WAIT = 60  # seconds a worker waits for the gradebook's write lock


@dataclass
class Outcome:
    student: str
    graded: bool
    seconds: float
    score: float | None = None
    max_score: float | None = None
    limits: list[str] = field(default_factory=list)  # why cells were stopped, if they were
    error: str = ""  # why nothing was graded

    def line(self) -> str:
        if not self.graded:
            return plain(f"{self.student}: not graded: {self.error}")
        text = f"{self.student}: {_points(self.score)} of {_points(self.max_score)} points"
        if self.limits:
            text += f" (limit: {self.limits[0]})"
        return plain(f"{text} in {self.seconds:.1f} s")


def plain(text: str) -> str:
    """Text for a terminal: every control character but newline and tab shown as '?'."""
    from ..targets.local.runtime import terminal_safe

    return terminal_safe(text)


def _points(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


# ---- which submissions to grade (pure) ----------------------------------------


def newest_mtime(folder: str) -> float:
    """The newest modification time of the files under a folder of the grader's own."""
    newest = 0.0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + dirnames:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def needs_grading(submitted: str, autograded: str, in_gradebook: bool) -> bool:
    """Grade a submission again only when it changed since it was last graded: it has no
    autograded copy or gradebook entry, or a file of it is newer than that copy."""
    if not in_gradebook or not os.path.isdir(autograded):
        return True
    return newest_mtime(submitted) > newest_mtime(autograded)


# ---- the gradebook -------------------------------------------------------------


def sqlite_file(db_url: str) -> str | None:
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        return None
    path = db_url[len(prefix) :].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def with_lock_wait(db_url: str) -> str:
    if sqlite_file(db_url) is None or "timeout=" in db_url:
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={LOCK_WAIT}"


def use_wal(path: str) -> None:
    """WAL mode is a property of the file: set once, every later connection has it."""
    if not os.path.exists(path):
        return
    con = sqlite3.connect(path, timeout=LOCK_WAIT)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def checkpoint(path: str) -> None:
    """Move what the workers wrote from the WAL into the gradebook file itself, so that a
    reader of the file alone (coursehub's roster check opens it immutable) sees it all."""
    con = sqlite3.connect(path, timeout=LOCK_WAIT)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _immediate_transactions() -> None:
    """In this process: every SQLite transaction SQLAlchemy begins takes the write lock."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.isolation_level = None  # BEGIN is ours, below

    def on_begin(conn: Any) -> None:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(Pool, "connect", on_connect)
    event.listen(Engine, "begin", on_begin)


# ---- the workers ---------------------------------------------------------------

_api: Any = None


def _worker_init(sandboxed: bool) -> None:
    global _api
    # sandboxed unless asked otherwise for a measurement (bench/): kernels as the grader
    os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = (
        provisioner.NAME if sandboxed else "local-provisioner"
    )
    _immediate_transactions()
    _api = _nbgrader_api(log_level="WARN")


def _nbgrader_api(log_level: str = "WARN") -> Any:
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.apps.baseapp import NbGrader
    from nbgrader.coursedir import CourseDirectory

    class _Settings(NbGrader):
        name = "coursehub-autograde"
        description = "loads nbgrader's configuration as every nbgrader command does"

    app = _Settings()
    app.initialize([f"--log-level={log_level}"])
    app.config.CourseDirectory.db_url = with_lock_wait(CourseDirectory(config=app.config).db_url)
    coursedir = CourseDirectory(parent=app)
    return NbGraderAPI(coursedir=coursedir, parent=app)


def _grade(assignment: str, student: str) -> Outcome:
    from . import execute

    started = time.monotonic()
    execute.STOPPED.clear()
    result: dict[str, Any] = {}
    for _attempt in range(2):
        result = _api.autograde(assignment, student, force=True, create=True)
        if result.get("success") or "database is locked" not in _text(result):
            break
    seconds = time.monotonic() - started
    if not result.get("success"):
        return Outcome(student, False, seconds, error=_first_error(result))
    score, max_score = _scores(assignment, student)
    limits = list(dict.fromkeys(execute.STOPPED))  # what the grader side stopped, in order
    return Outcome(student, True, seconds, score, max_score, limits=limits)


def _text(result: dict[str, Any]) -> str:
    return f"{result.get('log', '')}\n{result.get('error', '')}"


def _first_error(result: dict[str, Any]) -> str:
    for line in _text(result).splitlines():
        if "[ERROR]" in line and "Please see" not in line:
            return line.split("[ERROR]", 1)[1].strip()[:300]
    lines = [line for line in _text(result).splitlines() if line.strip()]
    return lines[-1][:300] if lines else "nbgrader gave no reason"


def _scores(assignment: str, student: str) -> tuple[float | None, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_api.coursedir.db_url) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None, None
        return sub.score, sub.max_score


# ---- the run -------------------------------------------------------------------


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def submissions(api: Any, assignment: str, only: list[str]) -> list[str]:
    cd = api.coursedir
    pattern = cd.format_path(cd.submitted_directory, "*", assignment)
    found = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(pattern))
    if only:
        missing = sorted(set(only) - set(found))
        if missing:
            raise SystemExit(
                f"no submission of {assignment!r} from: {', '.join(missing)} "
                "(collect first: add --collect)"
            )
        found = [s for s in found if s in set(only)]
    return found


def to_grade(api: Any, assignment: str, students: list[str], force: bool) -> list[str]:
    if force:
        return students
    from nbgrader.api import Gradebook, MissingEntry

    cd = api.coursedir
    chosen = []
    with Gradebook(cd.db_url) as gb:
        for student in students:
            try:
                gb.find_submission(assignment, student)
                known = True
            except MissingEntry:
                known = False
            submitted = cd.format_path(cd.submitted_directory, student, assignment)
            autograded = cd.format_path(cd.autograded_directory, student, assignment)
            if needs_grading(submitted, autograded, known):
                chosen.append(student)
    return chosen


def collect(assignment: str) -> int:
    import subprocess

    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    print(f"Collecting the submissions of {assignment}", flush=True)
    return subprocess.call([nbgrader, "collect", assignment, "--update"])  # noqa: S603


def run(
    assignment: str,
    jobs: int,
    students: list[str],
    force: bool = False,
    sandboxed: bool = True,
    out: Any = None,
) -> tuple[list[Outcome], float]:
    out = out or sys.stdout
    api = _nbgrader_api()
    everyone = submissions(api, assignment, students)
    chosen = to_grade(api, assignment, everyone, force)
    skipped = len(everyone) - len(chosen)
    if skipped:
        print(f"{skipped} submission(s) unchanged since they were graded (--force grades them)")
    if not chosen:
        print(f"Nothing to grade in {assignment}.", file=out, flush=True)
        return [], 0.0
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url):
        pass  # made here, once, if it is new: never by two workers at the same time
    if path := sqlite_file(api.coursedir.db_url):
        use_wal(path)
    jobs = max(1, min(jobs, len(chosen)))
    print(
        f"Autograding {len(chosen)} submission(s) of {assignment} with {jobs} worker(s)"
        f"{'' if sandboxed else ', NOT sandboxed'}",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        print(f"{bar(len(outcomes), len(chosen))}  {outcome.line()}", file=out, flush=True)

    # A worker that dies (the machine's OOM killer, say) breaks its whole pool: what was not
    # graded yet is graded again, one submission per pool, so only the one that kills its
    # worker again is left ungraded.
    again = _pool(assignment, chosen, jobs, sandboxed, done)
    for student in again:
        if _pool(assignment, [student], 1, sandboxed, done):
            done(Outcome(student, False, 0.0, error="the worker grading it died, twice"))
    elapsed = time.monotonic() - started
    if path := sqlite_file(api.coursedir.db_url):
        checkpoint(path)
    return sorted(outcomes, key=lambda o: o.student), elapsed


def _pool(assignment: str, students: list[str], jobs: int, sandboxed: bool, done: Any) -> list[str]:
    """Grade `students` with `jobs` workers; return those a broken pool left ungraded."""
    ctx = multiprocessing.get_context("spawn")
    broken: list[str] = []
    with cf.ProcessPoolExecutor(jobs, ctx, initializer=_worker_init, initargs=(sandboxed,)) as ex:
        futures = {ex.submit(_grade, assignment, s): s for s in students}
        for future in cf.as_completed(futures):
            student = futures[future]
            try:
                done(future.result())
            except BrokenProcessPool:
                broken.append(student)
            except Exception as err:  # noqa: BLE001 - that submission is not graded
                done(Outcome(student, False, 0.0, error=f"the worker failed: {err}"))
    return sorted(broken)


def summary(outcomes: list[Outcome], elapsed: float) -> str:
    graded = [o for o in outcomes if o.graded]
    limited = [o for o in graded if o.limits]
    failed = [o for o in outcomes if not o.graded]
    rate = len(outcomes) / elapsed if elapsed else 0.0
    lines = [
        "",
        f"graded          {len(graded)}",
        f"  hit a limit   {len(limited)}",
        f"not graded      {len(failed)}",
        f"time            {elapsed:.1f} s ({rate:.2f} submissions/s)",
    ]
    for o in limited:
        lines.append(f"  limit: {o.student}: {o.limits[0]}")
    for o in failed:
        lines.append(f"  not graded: {o.student}: {o.error}")
    return plain("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coursehub autograde", description=__doc__.splitlines()[0])
    p.add_argument("assignment")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--student", action="append", default=[])
    p.add_argument("--force", action="store_true")
    p.add_argument("--collect", action="store_true")
    p.add_argument("--no-sandbox", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)  # results for bench/
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if args.collect and collect(args.assignment) != 0:
        print("collect failed: nothing was graded", file=sys.stderr)
        return 1
    outcomes, elapsed = run(
        args.assignment, args.jobs, args.student, args.force, sandboxed=not args.no_sandbox
    )
    if outcomes:
        print(summary(outcomes, elapsed), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"elapsed": elapsed, "outcomes": [o.__dict__ for o in outcomes]}, f)
    return 0 if all(o.graded for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
