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

from ...plan import Account, Plan, grader_server_args
from ...runas import account_env

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
    argv = (
        proxy_cmd,
        "--ip", plan.ip,
        "--port", str(p.public),
        "--api-ip", "127.0.0.1",
        "--api-port", str(p.proxy_api),
        "--default-target", f"http://127.0.0.1:{p.hub}",
        "--error-target", f"http://127.0.0.1:{p.hub}{plan.base_url}hub/error",
        "--log-level", "warn",
    )  # fmt: skip
    return ProcessSpec(
        name="proxy",
        argv=argv,
        env=env,
        cwd=plan.paths.state,
        log=f"{plan.paths.logs}/proxy.log",
        account=None,
        health_url=f"http://127.0.0.1:{p.proxy_api}/api/routes",
        health_any_status=True,
    )


def hub_spec(plan: Plan, hub_config_file: str) -> ProcessSpec:
    return ProcessSpec(
        name="hub",
        argv=(sys.executable, "-m", "jupyterhub", "-f", hub_config_file),
        env=_base_env(plan),
        cwd=plan.paths.state,
        log=f"{plan.paths.logs}/hub.log",
        account=None,
        health_url=f"{plan.hub_url}hub/health",
    )


def grader_spec(
    plan: Plan, course_id: str, secrets: dict[str, str], user_env: str, nss_wrapper: str | None
) -> ProcessSpec:
    g = plan.courses[course_id]
    env = _base_env(plan)
    env["PATH"] = f"{user_env}/bin:/usr/local/bin:/usr/bin:/bin"
    env.update(account_env(plan, g.account, nss_wrapper))
    env.update(plan.grader_env(course_id))
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
        log=f"{plan.paths.logs}/grader-{course_id}.log",
        account=g.account if plan.isolated else None,
        health_url=f"{g.url}{g.prefix}api",
    )
