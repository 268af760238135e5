"""What the local target runs: one spec per process, built from the Plan.

Pure builders (argv, environment, account) kept apart from the supervisor that
starts them, so each is tested without starting anything.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ...environment import grader_env
from ...plan import Account, Plan, grader_server_args, proxy_args

BASE_ENV_KEYS = ("LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # "proxy", "hub", "grader-{course}"
    argv: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    cwd: str
    log: str
    account: Account | None  # None: run as coursehub's own account
    health_url: str  # answers 200 when ready
    health_any_status: bool = (
        False  # True: any HTTP answer means ready (the proxy's API wants a token)
    )


def _base_env(plan: Plan) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    env["COURSEHUB_DATA_DIR"] = plan.paths.data_dir
    return env


def find_proxy() -> str:
    """configurable-http-proxy: beside this Python (make setup links it), else on PATH."""
    beside = Path(sys.executable).parent / "configurable-http-proxy"
    if beside.exists():
        return str(beside)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise FileNotFoundError(
        "configurable-http-proxy not found; run 'make setup' (it installs it from npm)"
    )


def proxy_spec(plan: Plan, secrets: dict[str, str], proxy_cmd: str) -> ProcessSpec:
    p = plan.ports
    env = _base_env(plan)
    env["CONFIGPROXY_AUTH_TOKEN"] = secrets["proxy_auth_token"]
    args = proxy_args(plan, ip=plan.ip, port=p.public, api_ip="127.0.0.1", hub_host="127.0.0.1")
    return ProcessSpec(
        name="proxy",
        argv=(proxy_cmd, *args),
        env=env,
        cwd=plan.paths.state,
        log=plan.paths.log("proxy"),
        account=None,
        health_url=plan.proxy_health_url,
        health_any_status=True,
    )


def hub_spec(plan: Plan, hub_config_file: str) -> ProcessSpec:
    return ProcessSpec(
        name="hub",
        argv=(sys.executable, "-m", "jupyterhub", "-f", hub_config_file),
        env=_base_env(plan),
        cwd=plan.paths.state,
        log=plan.paths.log("hub"),
        account=None,
        health_url=plan.hub_health_url,
    )


def grader_spec(
    plan: Plan, course_id: str, secrets: dict[str, str], user_env: str, nss_wrapper: str | None
) -> ProcessSpec:
    g = plan.courses[course_id]
    env = _base_env(plan)
    env.update(grader_env(plan, course_id, nss_wrapper, f"{user_env}/bin"))
    env["JUPYTERHUB_API_TOKEN"] = secrets[f"service_token:{course_id}"]
    argv = (
        f"{user_env}/bin/jupyterhub-singleuser",
        *grader_server_args(g, "127.0.0.1", g.port),
    )
    return ProcessSpec(
        name=f"grader-{course_id}",
        argv=argv,
        env=env,
        cwd=g.account.home,
        log=plan.paths.log(f"grader-{course_id}"),
        account=g.account if plan.isolated else None,
        health_url=g.health_url,
    )
