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

from ..folders import make_home
from ..plan import Plan, load_plan
from ..runas import demote, find_nss_wrapper, server_env
from ..workspaces import person_landing_url


class CourseLocalSpawner(LocalProcessSpawner):
    """Spawn a person's server as their own uid, in their role's environment."""

    _starting = 0  # servers of this hub waiting to listen (see _listening)

    plan_file = Unicode(
        help="Path of the Plan (plan.json) written by 'coursehub up'.",
    ).tag(config=True)

    python_env = Unicode(
        help="""Python environment the servers run from (has jupyterhub-singleuser,
        JupyterLab, nbgrader and coursehub). Every uid must be able to read it.""",
    ).tag(config=True)

    nss_wrapper = Unicode(
        help="Path of libnss_wrapper.so, so that a uid with no account resolves to its name.",
    ).tag(config=True)

    log_dir = Unicode(
        help="Folder for each server's log (coursehub's own, not readable by the person).",
    ).tag(config=True)

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_file)

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
        plan = self.plan
        person = self._person()
        env.update(server_env(plan, person, self.nss_wrapper or find_nss_wrapper()))
        env["PATH"] = f"{self.user_env_bin}:/usr/local/bin:/usr/bin:/bin"
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
        log = None
        if self.log_dir:
            os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
            log = open(os.path.join(self.log_dir, f"{person.name}.log"), "ab")  # noqa: SIM115
            os.chmod(log.name, 0o600)
            self.popen_kwargs = {**self.popen_kwargs, "stdout": log, "stderr": STDOUT}
        try:
            ip, port = await super().start()
        finally:
            if log is not None:
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
