"""The baseline: a plain JupyterHub 6 set up the way nbgrader's multiple-classes demo does it.

- SharedPasswordAuthenticator (the same password check coursehub's bench site uses);
- SimpleLocalProcessSpawner: every server runs as root (that is what it is), homes under the
  temporary folder;
- one hub-managed grader service per course (`jupyterhub-singleuser` started by the hub,
  `JUPYTERHUB_USER=grader-COURSE`), groups `formgrade-COURSE` and `nbgrader-COURSE`, the
  demo's roles (the server token inherits its owner's scopes) and one nbgrader_config.py per
  course plus a global one;
- the proxy is started by the hub, as usual.

Servers run from the same environment as coursehub's (/opt/coursehub/user-env), with the
same extension set for students (assignment list and validate; no formgrader, no course list),
and the same spawn timeouts as coursehub, so the comparison is one of orchestration.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coursehub.targets.local.supervisor import terminate_all

from .common import (
    PASSWORD,
    USER_ENV,
    BenchError,
    free_port_block,
    kill_marked,
    wait_healthy,
)
from .sides import GRADEBOOK_ADD, Side

MARKER_KEY = "COURSEHUB_BENCH_BASELINE"
GRADER_PORT_OFFSET = 10
STUDENT_EXTENSIONS = {  # as coursehub's student environment: list and validate only
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.assignment_list": True,
    "nbgrader.server_extensions.validate_assignment": True,
}

CONFIG = """\
# A plain JupyterHub for the benchmark's baseline (nbgrader's demo_multiple_classes shape).
import json

b = json.load(open({settings!r}))
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = f"http://127.0.0.1:{{b['port']}}/"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{{b['port'] + 2}}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{b['port'] + 1}}"
c.ConfigurableHTTPProxy.command = [b["proxy"]]
c.ConfigurableHTTPProxy.pid_file = b["base"] + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + b["base"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = b["base"] + "/cookie_secret"
c.JupyterHub.pid_file = b["base"] + "/hub.pid"

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = b["password"]
c.Authenticator.allowed_users = set(b["people"]) | {{f"grader-{{x}}" for x in b["courses"]}}

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = b["base"] + "/homes/{{username}}"
c.Spawner.cmd = [b["user_env"] + "/bin/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = b["server_env"]
c.Spawner.start_timeout = 120  # as coursehub's
c.Spawner.http_timeout = 60

groups = {{"instructors": list(b["instructors"])}}
roles = [{{"name": "server", "scopes": ["inherit"]}}]
for course, members in b["courses"].items():
    groups[f"formgrade-{{course}}"] = [*members["instructors"], f"grader-{{course}}"]
    groups[f"nbgrader-{{course}}"] = [*members["instructors"], *members["students"]]
    roles.append({{
        "name": f"formgrade-{{course}}",
        "groups": [f"formgrade-{{course}}"],
        "scopes": [f"access:services!service={{course}}", "list:services",
                   f"read:services!service={{course}}"],
    }})
    roles.append({{
        "name": f"nbgrader-{{course}}",
        "groups": [f"nbgrader-{{course}}"],
        "scopes": ["list:services", f"read:services!service={{course}}"],
    }})
    roles.append({{  # what nbgrader's JupyterHubAuthPlugin asks of the hub
        "name": f"grader-service-{{course}}",
        "services": [course],
        "scopes": [f"read:users:groups!user=grader-{{course}}", "list:groups",
                   f"groups!group=nbgrader-{{course}}"],
    }})
c.JupyterHub.load_groups = {{name: {{"users": users}} for name, users in groups.items()}}
c.JupyterHub.load_roles = roles

c.JupyterHub.services = [
    {{
        "name": course,
        "url": f"http://127.0.0.1:{{s['port']}}",
        "command": [b["user_env"] + "/bin/jupyterhub-singleuser", "--allow-root"],
        "cwd": s["home"],
        "environment": s["env"],
        "api_token": s["token"],
        "oauth_no_confirm": True,
    }}
    for course, s in b["services"].items()
]
"""

GLOBAL_NBGRADER = """\
c = get_config()  # noqa: F821
c.Authenticator.plugin_class = "nbgrader.auth.JupyterHubAuthPlugin"
c.Exchange.path_includes_course = True
c.Exchange.root = {exchange!r}
c.NbGrader.course_titles = {titles!r}
"""

COURSE_NBGRADER = """\
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course!r}
"""


def find_proxy() -> str:
    for cand in (Path(sys.executable).parent / "configurable-http-proxy",):
        if cand.exists():
            return str(cand)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise BenchError("configurable-http-proxy not found; run 'make setup'")
    return found


def _default_signals() -> None:
    """A hub started from a background job inherits an ignored SIGINT and passes it on to
    its servers, which then stop only after the spawner's timeouts: start it as a shell would."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


class Baseline(Side):
    name = "baseline"

    def __init__(self, courses: dict[str, dict[str, list[str]]], people: list[str]):
        super().__init__(courses, people)
        self.base = Path(tempfile.mkdtemp(prefix="coursehub-bench-baseline-", dir="/tmp"))
        self.port = free_port_block()
        self.public_url = f"http://127.0.0.1:{self.port}/"
        self.marker = f"{MARKER_KEY}={self.base}"
        self.proc: subprocess.Popen | None = None
        self.tokens = {c: secrets.token_hex(32) for c in courses}
        self._write()

    # -- files
    def grader_home(self, course: str) -> Path:
        return self.base / "graders" / course

    def course_root(self, course: str) -> Path:
        return self.grader_home(course) / course

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{USER_ENV}/bin:/usr/local/bin:/usr/bin:/bin",
            "JUPYTER_CONFIG_PATH": str(self.base / "etc" / "jupyter"),
            MARKER_KEY: str(self.base),
            **{k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ},
        }

    def service_env(self, course: str) -> dict[str, str]:
        home = self.grader_home(course)
        return {
            **self._base_env(),
            "HOME": str(home),
            "USER": f"grader-{course}",
            "JUPYTERHUB_USER": f"grader-{course}",
            "JUPYTERHUB_DEFAULT_URL": "/lab",
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        }

    def _write(self) -> None:
        (self.base / "homes").mkdir()
        (self.base / "logs").mkdir()
        etc = self.base / "etc" / "jupyter"
        etc.mkdir(parents=True)
        exchange = self.base / "exchange"
        exchange.mkdir()
        exchange.chmod(0o777)
        student = self.base / "etc" / "student"
        student.mkdir()
        (student / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": STUDENT_EXTENSIONS}})
        )
        (etc / "nbgrader_config.py").write_text(
            GLOBAL_NBGRADER.format(exchange=str(exchange), titles={c: c for c in self.courses})
        )
        services = {}
        for i, course in enumerate(self.courses):
            home = self.grader_home(course)
            (home / ".jupyter").mkdir(parents=True)
            self.course_root(course).mkdir()
            (home / ".jupyter" / "nbgrader_config.py").write_text(
                COURSE_NBGRADER.format(root=str(self.course_root(course)), course=course)
            )
            services[course] = {
                "port": self.port + GRADER_PORT_OFFSET + i,
                "home": str(home),
                "env": self.service_env(course),
                "token": self.tokens[course],
            }
        settings = {
            "base": str(self.base),
            "port": self.port,
            "proxy": find_proxy(),
            "password": PASSWORD,
            "people": self.people,
            "instructors": sorted({i for c in self.courses.values() for i in c["instructors"]}),
            "courses": self.courses,
            "user_env": USER_ENV,
            "server_env": {
                **self._base_env(),
                "JUPYTER_CONFIG_PATH": f"{self.base}/etc/student:{self.base}/etc/jupyter",
            },
            "services": services,
        }
        settings_file = self.base / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=1))
        (self.base / "jupyterhub_config.py").write_text(CONFIG.format(settings=str(settings_file)))

    # -- lifecycle
    def start(self, timeout: float) -> float:
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            MARKER_KEY: str(self.base),
            **{k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ},
        }
        log = open(self.base / "logs" / "hub.log", "ab")  # noqa: SIM115 - kept by the child
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.base / "jupyterhub_config.py")],
            cwd=self.base,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,  # noqa: PLW1509 - as from a login shell
        )
        log.close()
        try:
            return wait_healthy(
                self.public_url, list(self.courses), t0, timeout, lambda: self.proc.poll() is None
            )
        except BenchError as err:
            if self.proc.poll() is not None:
                raise BenchError(f"baseline hub exited {self.proc.returncode}: {err}") from None
            raise

    def hub_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # the hub stops its servers, services and proxy itself (cleanup_servers)
            terminate_all([self.proc.pid], 40.0)
            self.proc.wait()
        kill_marked(self.marker)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def logs(self) -> str:
        return self.hub_log()[-8000:]

    def hub_log(self) -> str:
        try:
            return (self.base / "logs" / "hub.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- grading
    def nbgrader(
        self, course: str, *args: str, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        env = {
            **self.service_env(course),
            "JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.port + 2}/hub/api",
            "JUPYTERHUB_API_TOKEN": self.tokens[course],
        }
        return subprocess.run(
            [f"{USER_ENV}/bin/nbgrader", *args],
            env=env,
            cwd=self.course_root(course),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def release_sample(self, course: str, assignment: str) -> None:
        from coursehub.sample import write_sample

        src = self.course_root(course) / "source" / assignment
        src.mkdir(parents=True)
        write_sample(str(src / f"{assignment}.ipynb"))
        for step in ("generate_assignment", "release_assignment"):
            r = self.nbgrader(course, step, assignment, "--force")
            if r.returncode != 0:
                raise BenchError(f"baseline nbgrader {step} failed:\n{r.stdout}\n{r.stderr}")
        students = self.courses[course]["students"]
        r = subprocess.run(
            [
                f"{USER_ENV}/bin/python",
                "-c",
                GRADEBOOK_ADD,
                f"sqlite:///{self.course_root(course)}/gradebook.db",
                course,
                *students,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise BenchError(f"baseline gradebook: {r.stderr}")

    def submission_owner(self, course: str) -> tuple[int, int]:
        return (0, 0)

    def autograde_cli(self, course: str, assignment: str, timeout: float) -> float:
        t0 = time.monotonic()
        r = self.nbgrader(course, "autograde", assignment, "--force", timeout=timeout)
        took = time.monotonic() - t0
        if r.returncode != 0:
            raise BenchError(f"baseline nbgrader autograde failed:\n{r.stdout[-2000:]}")
        return took
