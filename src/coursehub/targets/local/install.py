"""Prepare a data folder from a site file: the local target's render step.

Checks run first and write nothing; only when every check passes are the
folders, files, secrets and the Plan written.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ...folders import apply_layout
from ...hub.config import render_jupyterhub_config
from ...ids import Ids, IdsExhaustedError, allocate, host_taken, merge
from ...lti.credentials import CredentialsError, lti11_credentials, store_lti_credentials
from ...lti.keys import ensure_tool_key
from ...paths import layout_paths
from ...plan import Plan, derive
from ...ports import port_in_use
from ...runas import find_nss_wrapper
from ...secrets import ensure_secrets, store_shared_passwords, write_private
from ...site import LTI11, LTI13, SHARED_PASSWORD, Site, load_site

DEFAULT_USER_ENV = "/opt/coursehub/user-env"


class PreflightError(RuntimeError):
    """Something on this machine keeps the installation from running; says what to do."""


@dataclass(frozen=True)
class Prepared:
    site: Site
    plan: Plan
    plan_file: str
    hub_config_file: str
    user_env: str


def default_user_env() -> str:
    """The environment servers run from: a shared one when running as root."""
    env = os.environ.get("COURSEHUB_USER_ENV")
    if env:
        return env
    if os.geteuid() == 0 and Path(DEFAULT_USER_ENV, "bin", "jupyterhub-singleuser").exists():
        return DEFAULT_USER_ENV
    return sys.prefix


def _unreachable(path: Path) -> Path | None:
    """The first folder above (and including) `path` that other uids cannot enter."""
    path = path.absolute()
    for folder in [*reversed(path.parents), path]:
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:
            return None  # will be made by coursehub with the Plan's mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return folder
    return None


def check_reachable(user_env: str, data_dir: str) -> None:
    """Every server runs under its own uid: the interpreter, the environment and
    the data folder must be reachable by uids that own nothing on this machine."""
    python = Path(user_env, "bin", "python")
    if not python.exists():
        raise PreflightError(
            f"No Python environment at {user_env}; run 'make setup' (it builds the "
            "servers' environment) or pass --user-env"
        )
    for what, path in (
        ("the servers' Python interpreter", Path(os.path.realpath(python)).parent),
        ("the servers' environment", Path(user_env)),
        ("the data folder", Path(data_dir)),
    ):
        blocked = _unreachable(path)
        if blocked is not None:
            raise PreflightError(
                f"{what} ({path}) is inside {blocked}, which other users cannot enter "
                f"(mode {stat.S_IMODE(blocked.stat().st_mode):o}). Servers run under their "
                "own uids and could not start. Choose a place every user can traverse "
                "(for example --data-dir /srv/coursehub), or 'chmod o+x' that folder."
            )


REGISTRY = "/var/lib/coursehub/installations.json"


@contextmanager
def _registry(path: str = REGISTRY):
    """The machine's installations and their ids, locked while in use."""
    Path(path).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(Path(path).read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        # an installation whose data folder is gone gives its numbers back
        data = {d: v for d, v in data.items() if Path(layout_paths(d).ids_file).exists()}
        yield data
        write_private(Path(path), json.dumps(data, indent=1, sort_keys=True) + "\n")


def _others(registry: dict, data_dir: str) -> Ids:
    """Every id the machine's other installations hold."""
    return merge([Ids.from_json(json.dumps(v)) for d, v in registry.items() if d != data_dir])


def check_ports(plan: Plan, running: Plan | None = None) -> None:
    """Every port the Plan needs must be free; with `running`, only those it does not use yet."""
    wanted = plan.port_purposes()
    if running is not None:
        wanted = {p: w for p, w in wanted.items() if p not in running.port_purposes()}
    busy = [f"{port} ({what})" for port, what in sorted(wanted.items()) if port_in_use(port)]
    if busy:
        raise PreflightError(
            "These ports are in use: " + ", ".join(busy) + ". Stop what uses them, or give "
            "this installation another hub.port in the site file (it uses hub.port to "
            f"hub.port + {max(wanted) - plan.ports.public})."
        )


def prepare(
    site_file: str, data_dir: str, user_env: str | None = None, running: Plan | None = None
) -> Prepared:
    """Check everything, then write the data folder. Raises SiteError or PreflightError.

    `running`: the Plan of the installation while it runs (a live change); its
    ports are in use by itself, so only new ones are checked.
    """
    site = load_site(site_file)  # a bad site file stops here, before anything is written
    data_dir = str(Path(data_dir).absolute())
    user_env = user_env or default_user_env()
    isolated = os.geteuid() == 0
    # Isolated, the machine's registry of ids stays locked from allocation to writing,
    # so that two installations prepared at once never get the same uid.
    with _registry() if isolated else nullcontext() as registry:
        try:
            prepared = _prepare_locked(site, data_dir, user_env, isolated, running, registry)
        except IdsExhaustedError as err:
            raise PreflightError(str(err)) from None
    return prepared


def _prepare_locked(
    site: Site, data_dir: str, user_env: str, isolated: bool, running: Plan | None, registry
) -> Prepared:
    ids_file = Path(layout_paths(data_dir).ids_file)
    ids = Ids.load(ids_file)
    if registry is not None:  # uids unique across the machine's installations
        ids = allocate(
            list(site.everyone),
            [c.id for c in site.courses],
            ids,
            _others(registry, data_dir),
            host_taken=host_taken,  # never a number the host's own accounts or groups have
        )
    plan = derive(site, data_dir, isolated=isolated, ids=ids, owner=(os.getuid(), os.getgid()))
    if isolated:
        if find_nss_wrapper() is None:
            raise PreflightError(
                "libnss_wrapper.so is missing: servers under their own uids need it to "
                "know their names. Install it with 'apt-get install libnss-wrapper' (make setup does)."
            )
        check_reachable(user_env, data_dir)
    elif not Path(user_env, "bin", "jupyterhub-singleuser").exists():
        raise PreflightError(f"No jupyterhub-singleuser in {user_env}/bin; run 'make setup'")
    if running is not None and (running.ports != plan.ports or running.ip != plan.ip):
        raise PreflightError(
            "hub.ip and hub.port cannot change while coursehub runs; run 'coursehub down' first"
        )
    check_ports(plan, running)
    if site.auth.type == LTI11:
        try:
            lti11_credentials(site, secrets_dir=plan.paths.secrets)
        except CredentialsError as err:
            raise PreflightError(str(err)) from None

    # Every check passed: write.
    apply_layout(plan)
    ensure_secrets(plan.paths.secrets, list(plan.courses))
    if site.auth.type == SHARED_PASSWORD:
        store_shared_passwords(
            plan.paths.secrets,
            {"user_password": site.auth.user_password, "admin_password": site.auth.admin_password},
        )
    store_lti_credentials(site, plan.paths.secrets)  # LMS launches: secret from site or env
    if site.auth.type == LTI13:
        ensure_tool_key(plan.paths.secrets)  # its public half is served at /hub/lti13/jwks
    write_private(ids_file, plan.ids.to_json() + "\n")
    if registry is not None:
        registry[data_dir] = json.loads(plan.ids.to_json())
    plan_file = plan.paths.plan_file
    write_private(Path(plan_file), plan.to_json() + "\n")
    hub_config = plan.paths.local_hub_config
    config_d = plan.paths.hub_config_d
    write_private(Path(hub_config), render_jupyterhub_config(plan_file, user_env, config_d))
    return Prepared(site, plan, plan_file, hub_config, user_env)
