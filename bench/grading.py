"""Figure 7: autograding a whole assignment, coursehub's parallel sandboxed workers against
nbgrader's serial CLI, in the same run, on the same course folder contents.

No hub is involved: grading happens in the course folder, as the grader account. Both
sides get a course folder of their own with the same generated assignment (the sample
notebook: an answer cell, a test cell, a written answer) and K identical answered
submissions, owned by an unprivileged bench account; every command runs as that account.

- baseline: `nbgrader autograde ps1 --force`, nbgrader's own configuration only.
- coursehub: `python -m coursehub.grading.parallel ps1 --force --jobs J` (what
  `coursehub autograde` runs as the grader) with coursehub's grading configuration,
  at J = 1, 2 and the machine's cores; and at J = 1 without the sandbox, for the
  sandbox's own overhead.

Each figure is submissions per second over the whole command (process start included).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from coursehub.plan import AUTOGRADE_STEPS
from coursehub.sample import sample_notebook

from .common import USER_ENV, BenchError
from .sides import ANSWER, WRITTEN

BENCH_UID = 64990  # an account of no one's: the grader of the bench's course folders
ASSIGNMENT = "ps1"
BASE_CONFIG = "c = get_config()  # noqa\nc.CourseDirectory.root = {root!r}\n"
COURSEHUB_CONFIG = (
    BASE_CONFIG
    + f"c.Autograde.autograde_preprocessors = {list(AUTOGRADE_STEPS)!r}\n"
    + "c.Execute.timeout = 30\n"
)


def cores() -> int:
    return len(os.sched_getaffinity(0))


class CourseFolders:
    """Two course folders (baseline, coursehub) with the same K submissions."""

    def __init__(self, submissions: int):
        self.top = Path(tempfile.mkdtemp(prefix="coursehub-bench-grading-", dir="/tmp"))
        self.top.chmod(0o755)
        self.students = [f"s{i + 1:03d}" for i in range(submissions)]
        self.roots = {side: self.top / side for side in ("baseline", "coursehub")}

    def run(self, side: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        root = self.roots[side]
        env = {
            "PATH": f"{USER_ENV}/bin:/usr/bin:/bin",
            "HOME": str(self.top / f"home-{side}"),
            "LANG": "C.UTF-8",
        }
        return subprocess.run(  # noqa: S603 - the bench's own commands
            ["setpriv", f"--reuid={BENCH_UID}", f"--regid={BENCH_UID}", "--clear-groups", *argv],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def prepare(self) -> None:
        for side, root in self.roots.items():
            (root / "source" / ASSIGNMENT).mkdir(parents=True)
            home = self.top / f"home-{side}"
            home.mkdir()
            config = COURSEHUB_CONFIG if side == "coursehub" else BASE_CONFIG
            (root / "nbgrader_config.py").write_text(config.format(root=str(root)))
            nbformat.write(sample_notebook(), str(root / "source" / ASSIGNMENT / "ps1.ipynb"))
            for path in [root, home, *root.rglob("*")]:
                os.chown(path, BENCH_UID, BENCH_UID)
            r = self.run(side, ["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], 300)
            if r.returncode != 0:
                raise BenchError(f"generate_assignment ({side}):\n{r.stdout}{r.stderr}"[-2000:])
            released = root / "release" / ASSIGNMENT / "ps1.ipynb"
            nb = nbformat.read(str(released), as_version=4)
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                cell.source = {"square": ANSWER, "why": WRITTEN}.get(grade_id, cell.source)
            for student in self.students:
                folder = root / "submitted" / student / ASSIGNMENT
                folder.mkdir(parents=True)
                nbformat.write(nb, str(folder / "ps1.ipynb"))
                (folder / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC")
            for path in [root / "submitted", *(root / "submitted").rglob("*")]:
                os.chown(path, BENCH_UID, BENCH_UID)

    def graded(self, side: str) -> int:
        return len(list((self.roots[side] / "autograded").glob(f"*/{ASSIGNMENT}/ps1.ipynb")))

    def remove(self) -> None:
        shutil.rmtree(self.top, ignore_errors=True)


def baseline_rate(folders: CourseFolders, timeout: float) -> float:
    t0 = time.monotonic()
    r = folders.run("baseline", ["nbgrader", "autograde", ASSIGNMENT, "--force"], timeout)
    took = time.monotonic() - t0
    if r.returncode != 0 or folders.graded("baseline") != len(folders.students):
        raise BenchError(f"nbgrader autograde:\n{r.stdout}{r.stderr}"[-2000:])
    return len(folders.students) / took


def coursehub_rate(folders: CourseFolders, jobs: int, sandboxed: bool, timeout: float) -> float:
    result = folders.top / "result.json"
    argv = [
        f"{USER_ENV}/bin/python",
        "-m",
        "coursehub.grading.parallel",
        ASSIGNMENT,
        "--force",
        "--jobs",
        str(jobs),
        "--json",
        str(result),
    ]
    if not sandboxed:
        argv.append("--no-sandbox")
    os.chown(folders.top, BENCH_UID, BENCH_UID)  # the result file is written as the account
    t0 = time.monotonic()
    r = folders.run("coursehub", argv, timeout)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"coursehub autograde --jobs {jobs}:\n{r.stdout}{r.stderr}"[-2000:])
    outcomes = json.loads(result.read_text())["outcomes"]
    bad = [o for o in outcomes if not o["graded"] or o["limits"] or o["score"] != 2.0]
    if len(outcomes) != len(folders.students) or bad:
        raise BenchError(
            f"coursehub autograde --jobs {jobs}: {len(outcomes)} graded, bad: {bad[:3]}"
        )
    return len(folders.students) / took


def measure(
    add: Callable[..., None], say: Callable[[str], None], submissions: int, repeat: int
) -> None:
    """Add figure 7's samples through `add(side, key, title, unit, value, better=, note=)`."""
    timeout = 60 + 10 * submissions
    folders = CourseFolders(submissions)
    n = cores()
    jobs = sorted({1, 2, n})
    title = f"Autograde {submissions} submissions"
    try:
        say(f"grading: preparing two course folders with {submissions} submissions each")
        folders.prepare()
        for r in range(repeat):
            say(f"grading: nbgrader autograde (serial), run {r + 1}/{repeat}")
            base = baseline_rate(folders, timeout)
            for j in jobs:
                say(f"grading: coursehub --jobs {j}, run {r + 1}/{repeat}")
                rate = coursehub_rate(folders, j, True, timeout)
                label = f"--jobs {j}" + (" (the machine's cores)" if j == n else "")
                add(
                    "coursehub",
                    f"grading_j{j}",
                    f"{title}, coursehub {label}",
                    "subs/s",
                    rate,
                    better="higher",
                    note="baseline: nbgrader autograde, serial, no sandbox",
                )
                add(
                    "baseline",
                    f"grading_j{j}",
                    f"{title}, coursehub {label}",
                    "subs/s",
                    base,
                    better="higher",
                )
                if j == 1:
                    sandboxed = rate
            say(f"grading: coursehub --jobs 1 without the sandbox, run {r + 1}/{repeat}")
            bare = coursehub_rate(folders, 1, False, timeout)
            key, what = "grading_sandbox", f"{title}, sandbox overhead at --jobs 1"
            note = "baseline column: the same coursehub run without the sandbox"
            add("coursehub", key, what, "subs/s", sandboxed, better="higher", note=note)
            add("baseline", key, what, "subs/s", bare, better="higher")
    finally:
        folders.remove()
