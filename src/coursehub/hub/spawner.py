"""A spawner for local processes that takes everything from the Plan.

Each person's server runs under the uid the Plan gives them (users are not
system users), in the environment of their role, with their home made before
the server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from subprocess import STDOUT

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from ..environment import person_env
from ..folders import make_home
from ..plan import load_plan  # noqa: F401 - hub code imports it from here
from ..runas import demote, find_nss_wrapper
from ..workspaces import person_landing_url
from .planned import PlanReader


class CourseLocalSpawner(PlanReader, LocalProcessSpawner):
    """Spawn a person's server as their own uid, in their role's environment."""

    _starting = 0  # servers of this hub waiting to listen (see _listening)

    python_env = Unicode(
        help="""Python environment the servers run from (has jupyterhub-singleuser,
        JupyterLab, nbgrader and coursehub). Every uid must be able to read it.""",
    ).tag(config=True)

    nss_wrapper = Unicode(
        help="Path of libnss_wrapper.so, so that a uid with no account resolves to its name.",
    ).tag(config=True)

    @default("default_url")
    def _default_default_url(self):
        # students land on their Assignments, instructors on their Courses
        return person_landing_url(self.plan, self.user.name)

    def _person(self):
        person = self.plan.people.get(self.user.name)
        if person is None:
            raise RuntimeError(
                f"{self.user.name!r} is not in the site file; add them to 'people' "
                "and run 'coursehub up' again"
            )
        return person

    def make_preexec_fn(self, name):
        plan = self.plan
        account = plan.people[name].account if plan.isolated else None
        return demote(account, cwd=plan.people[name].account.home)

    def user_env(self, env):  # noqa: D102 - LocalProcessSpawner hook, no passwd lookup
        person = self._person()
        nss = self.nss_wrapper or find_nss_wrapper()
        env.update(person_env(self.plan, person.name, nss, self.user_env_bin))
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        return env

    @property
    def user_env_bin(self) -> str:
        return os.path.join(self.python_env, "bin")

    async def start(self):
        person = self._person()
        home = make_home(self.plan, person.name)
        self.notebook_dir = home
        self.cmd = [os.path.join(self.user_env_bin, "jupyterhub-singleuser")]
        # each server's log is coursehub's own: the person cannot read it
        paths = self.plan.paths
        os.makedirs(paths.server_logs, mode=0o700, exist_ok=True)
        log = open(paths.server_log(person.name), "ab")  # noqa: SIM115 - closed below
        os.fchmod(log.fileno(), 0o600)  # the file opened, not whatever the name is now
        self.popen_kwargs = {**self.popen_kwargs, "stdout": log, "stderr": STDOUT}
        try:
            ip, port = await super().start()
        finally:
            log.close()
        await self._listening(ip, port)
        return ip, port

    async def _listening(self, ip: str, port: int) -> None:
        """Return once the server accepts connections (or has died, or http_timeout passed).

        JupyterHub checks a new server first right after start() returns, then with
        exponential backoff (random waits up to 0.2, 0.4, ... 5 s): a server that comes up
        between two checks waits for the next one. Polling the port here makes the hub's
        first check find it: every 50 ms for a lone spawn, less often when many servers
        start at once (then the hub's CPU matters more than a few tens of milliseconds).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        host = ip or "127.0.0.1"
        CourseLocalSpawner._starting += 1
        try:
            while loop.time() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return  # it died: the hub's own check reports it
                try:
                    _, writer = await asyncio.open_connection(host, port)
                except OSError:
                    await asyncio.sleep(min(1.0, 0.05 * max(1, CourseLocalSpawner._starting / 2)))
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
        finally:
            CourseLocalSpawner._starting -= 1
