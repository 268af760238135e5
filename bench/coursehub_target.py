"""coursehub under test: a generated site file, started and stopped through its CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .common import PASSWORD, USER_ENV, BenchError, free_port_block, kill_marked, wait_healthy
from .sides import GRADEBOOK_ADD, Side


class Coursehub(Side):
    name = "coursehub"

    def __init__(self, courses: dict[str, dict[str, list[str]]], people: list[str]):
        super().__init__(courses, people)
        self.base = Path(tempfile.mkdtemp(prefix="coursehub-bench-", dir="/tmp"))
        self.base.chmod(0o755)  # every server's uid must traverse it
        self.data_dir = self.base / "data"
        self.port = free_port_block()
        self.public_url = f"http://127.0.0.1:{self.port}/"
        self.marker = f"COURSEHUB_DATA_DIR={self.data_dir}"
        self.site_file = self.base / "site.yaml"
        site = {
            "org": "coursehub benchmark",
            "hub": {"ip": "127.0.0.1", "port": self.port, "base_url": "/"},
            "auth": {"type": "shared-password", "user_password": PASSWORD},
            "people": people,
            "courses": [
                {
                    "id": cid,
                    "title": cid,
                    "instructors": list(m["instructors"]),
                    "students": list(m["students"]),
                }
                for cid, m in courses.items()
            ],
        }
        self.site_file.write_text(yaml.safe_dump(site, sort_keys=False))
        self.up_proc: subprocess.Popen | None = None

    def cli(self, *args: str, timeout: float = 300, check: bool = True):
        args_l = list(args)
        cut = args_l.index("--") if "--" in args_l else len(args_l)
        argv = [
            sys.executable,
            "-m",
            "coursehub",
            *args_l[:cut],
            "--data-dir",
            str(self.data_dir),
            *args_l[cut:],
        ]
        r = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and r.returncode != 0:
            raise BenchError(
                f"coursehub {' '.join(args)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        return r

    def start(self, timeout: float) -> float:
        t0 = time.monotonic()
        self.up_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coursehub",
                "up",
                "--site",
                str(self.site_file),
                "--data-dir",
                str(self.data_dir),
                "--detach",
                "--timeout",
                str(int(timeout)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            took = wait_healthy(
                self.public_url,
                list(self.courses),
                t0,
                timeout,
                self._alive,
            )
        except BenchError:
            if self.up_proc.poll() is not None:
                out = self.up_proc.stdout.read() if self.up_proc.stdout else ""
                raise BenchError(f"coursehub up failed:\n{out[-3000:]}") from None
            raise
        # 'up' goes on to settle (hub groups, gradebook rows): wait for it, outside the figure
        try:
            out, _ = self.up_proc.communicate(timeout=max(60.0, timeout))
        except subprocess.TimeoutExpired:
            self.up_proc.kill()
            raise BenchError(
                "coursehub up did not finish after the installation was healthy"
            ) from None
        if self.up_proc.returncode != 0:
            # healthy, then 'up' failed while settling (hub users, groups, gradebooks): the
            # installation runs; measure it, and report the failure with the figures
            self.problems.append(
                f"coursehub up exited {self.up_proc.returncode} after the installation was "
                f"healthy:\n{out[-2500:]}"
            )
        return took

    def _alive(self) -> bool:
        """Still starting or running: 'up' has not failed, or its supervisor runs (when 'up'
        fails after the start, while settling, the installation keeps running)."""
        if self.up_proc is None or self.up_proc.poll() in (None, 0):
            return True
        try:
            pid = self._state()["pid"]
        except (OSError, ValueError, KeyError):
            return False
        return Path(f"/proc/{pid}").exists()

    def _state(self) -> dict:
        return json.loads((self.data_dir / "run" / "supervisor.json").read_text())

    def hub_pid(self) -> int:
        pid = self._state()["children"]["hub"]["pid"]
        if not pid:
            raise BenchError("coursehub's hub is not running")
        return pid

    def stop(self) -> None:
        if self.up_proc is not None and self.up_proc.poll() is None:
            self.up_proc.kill()
            self.up_proc.wait()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("down", timeout=90, check=False)
        kill_marked(self.marker)

    def remove(self) -> None:
        subprocess.run(["rm", "-rf", str(self.base)], check=False, timeout=120)

    def logs(self) -> str:
        out = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-40:]
            out.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def hub_log(self) -> str:
        try:
            return (self.data_dir / "logs" / "hub.log").read_text(errors="replace")
        except OSError:
            return ""

    def _plan(self) -> dict:
        return json.loads((self.data_dir / "state" / "plan.json").read_text())

    def course_root(self, course: str) -> Path:
        return Path(self._plan()["courses"][course]["course_root"])

    def submission_owner(self, course: str) -> tuple[int, int]:
        a = self._plan()["courses"][course]["account"]
        return a["uid"], a["gid"]

    def release_sample(self, course: str, assignment: str) -> None:
        self.cli("sample", course, "--name", assignment)
        # every student has a gradebook row ('up' makes them; again here, as the grader,
        # in case 'up' did not get that far)
        uid, gid = self.submission_owner(course)
        root = self.course_root(course)

        def as_grader() -> None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        r = subprocess.run(
            [
                f"{USER_ENV}/bin/python",
                "-c",
                GRADEBOOK_ADD,
                f"sqlite:///{root}/gradebook.db",
                course,
                *self.courses[course]["students"],
            ],
            cwd=root,
            env={"PATH": f"{USER_ENV}/bin:/usr/bin:/bin", "HOME": str(root.parent)},
            preexec_fn=as_grader,  # noqa: PLW1509
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise BenchError(f"coursehub gradebook rows: {r.stderr[-2000:]}")

    def autograde_cli(self, course: str, assignment: str, timeout: float) -> float:
        t0 = time.monotonic()
        r = self.cli("nbgrader", course, "--", "autograde", assignment, "--force", timeout=timeout)
        took = time.monotonic() - t0
        del r
        return took
