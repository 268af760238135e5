"""Every file of a compose folder, rendered from a Plan. Pure: no disk, no Docker.

The Plan (system layout) decides users, uids, folders, modes, roles and
scopes; ``coursehub.containers`` decides what each grader container runs as
and sees. This module only writes those decisions in the formats a Docker
host reads: docker-compose.yml, Dockerfiles, env files, the hub's config and
two shell scripts.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...containers import ContainerSpec, grader_container
from ...exchange.receipts import SCAN_SECONDS, scan_argv
from ...ids import Ids
from ...plan import (
    EXTENSIONS,
    GRADER,
    HUB_HEALTH_PATH,
    INSTRUCTOR,
    PROXY_ROUTES_PATH,
    STANDARD,
    STUDENT,
    SYSTEM,
    SYSTEM_GRADER_PORT,
    SYSTEM_HUB_HOST,
    SYSTEM_PROXY_HOST,
    Plan,
    derive,
    page_config_json,
    proxy_args,
    server_config_json,
)
from ...site import SHARED_PASSWORD, Docker, Site, image_namespace
from . import seccomp
from .envfiles import (
    ADMIN_PASSWORD,
    ENV_JHUB,
    ENV_PROXY,
    ENV_SERVICE,
    JHUB_SECRET_VARIABLES,
    POC_SERVICE_VARIABLES,
    SERVICE_TOKENS,
    USER_PASSWORD,
    complete_secrets,
    env_file,
    env_text,
    env_value_problem,
    service_tokens_value,
)
from .hubconfig import render_jupyterhub_config
from .versions import (
    ENV_PATH,
    PROXY_NODE_MAJOR,
    PROXY_VERSION,
    PROXY_VERSION_OLD_NODE,
    constraints_txt,
)

PROXY_SERVICE, HUB_SERVICE = SYSTEM_PROXY_HOST, SYSTEM_HUB_HOST
PLAN_LABEL = "org.coursehub.plan-sha256"
RECEIPTS_SUFFIX = "-receipts"  # each course's scan of its inbound folder: {course}-receipts
NOBODY = "65534:65534"  # what an image runs as when nothing says otherwise
PROXY_PORT = 8000  # inside the proxy's container; published on hub.ip:hub.port
NOTEBOOK_ENVIRONMENTS = (STUDENT, INSTRUCTOR, GRADER, STANDARD)
DOCKERFILES = {env: f"Dockerfile.{env}" for env in ("base", *NOTEBOOK_ENVIRONMENTS)}
DOCKERFILES["hub"] = "Dockerfile.hub"
DOCKERFILES["proxy"] = "Dockerfile.proxy"
MANIFEST = ".coursehub-render.json"
HEALTHCHECK = {"interval": "30s", "timeout": "10s", "retries": 3, "start_period": "30s"}
RESTART = "unless-stopped"

# What each environment gets, in words, for the Dockerfiles' comments (the Plan decides).
_EXTENSION_WORDS = {
    "assignment_list": "Assignment list",
    "course_list": "Course list",
    "create_assignment": "Create assignment",
    "formgrader": "Formgrader",
    "validate_assignment": "Validate assignment",
}


class ComposeError(ValueError):
    """The site cannot be rendered for a Docker host; says what to change."""


@dataclass(frozen=True)
class Rendered:
    content: bytes
    mode: int
    secret: bool = False  # an env file: mode 0600, the only place secrets may be


@dataclass(frozen=True)
class ComposeInput:
    plan: Plan
    docker: Docker
    secrets: dict[str, str]  # coursehub.secrets names -> values
    pins: dict[str, str]  # distribution -> version of the rendering environment
    wheel: tuple[str, bytes]  # (file name, bytes) of the running coursehub
    site_file: str
    shared_passwords: dict[str, str | None] | None = None


def compose_input(
    site: Site,
    root: str,
    *,
    ids: Ids | None,
    secrets: dict[str, str],
    pins: dict[str, str],
    wheel: tuple[str, bytes],
    site_file: str,
) -> ComposeInput:
    """Everything the renderers need, from a checked site (pure)."""
    plan = derive(site, root, isolated=True, ids=ids, layout=SYSTEM)
    shared = None
    if site.auth.type == SHARED_PASSWORD:
        shared = {
            "user_password": site.auth.user_password,
            "admin_password": site.auth.admin_password,
        }
    return ComposeInput(
        plan=plan,
        docker=site.docker_settings(),
        secrets=complete_secrets(secrets, list(plan.courses)),
        pins=pins,
        wheel=wheel,
        site_file=site_file,
        shared_passwords=shared,
    )


@dataclass(frozen=True)
class Images:
    base: str
    hub: str
    proxy: str
    roles: dict[str, str]  # environment -> image


def images_of(inp: ComposeInput) -> Images:
    ns = image_namespace(inp.plan.org)
    return Images(
        base=f"{ns}/notebook:base",
        hub=f"{ns}/jupyterhub:{inp.pins['jupyterhub']}",
        proxy=f"{ns}/proxy:{PROXY_VERSION}",
        roles={env: inp.docker.image(env) for env in NOTEBOOK_ENVIRONMENTS},
    )


def host_path(plan: Plan, path: str) -> str:
    """A Plan path relative to the layout's root: where it goes under files/."""
    root = plan.layout.root.rstrip("/")
    if not path.startswith(root + "/"):
        raise ValueError(f"{path} is not under the root {plan.layout.root}")
    return path[len(root) + 1 :]


def plan_file(plan: Plan) -> str:
    return plan.paths.plan_file


def hub_config_name(plan: Plan) -> str:
    """The rendered folder's copy of the hub's configuration (named as on the host)."""
    return posixpath.basename(plan.paths.system_hub_config)


def hub_config_file(plan: Plan) -> str:
    return plan.paths.system_hub_config


def check_renderable(plan: Plan) -> None:
    """What a Docker host needs beyond a valid site file."""
    if plan.layout.kind != SYSTEM:
        raise ComposeError("a Docker host runs a Plan of the system layout")
    if plan.auth.is_lti:
        raise ComposeError(
            f"auth.type: {plan.auth.type!r} (launches from an LMS) runs on one machine "
            "('coursehub up'), not on a Docker host yet: a launch adds people and courses to "
            "the site file, the folders and the gradebooks, which the hub's container cannot "
            "do to the host, and grades go back from coursehub's supervisor, which a Docker "
            "host does not run. Use 'first-use' or 'shared-password' here, or run "
            "'coursehub up' on the machine"
        )
    for i, course in enumerate(plan.courses):
        if (
            course.endswith(RECEIPTS_SUFFIX)
            and course.removesuffix(RECEIPTS_SUFFIX) in plan.courses
        ):
            raise ComposeError(
                f"courses[{i}].id: {course!r} is the name of the receipts service of course "
                f"{course.removesuffix(RECEIPTS_SUFFIX)!r} on a Docker host; use another id"
            )
        if course in (PROXY_SERVICE, HUB_SERVICE):
            raise ComposeError(
                f"courses[{i}].id: {course!r} is the name of the {course} service on a Docker "
                "host (each course's grader service is named after the course); use another id"
            )


def _header(inp: ComposeInput, comment: str = "#") -> str:
    name = posixpath.basename(inp.site_file)
    # a file name is the operator's text: a line break in it would end the comment and
    # start a command in the scripts and the Dockerfiles
    shown = name if name.isprintable() else repr(name)
    return (
        f"{comment} Generated by 'coursehub render compose' from {shown}.\n"
        f"{comment} Rendering again replaces it, unless you changed it (then only with --force).\n"
    )


def _compose_str(value: str) -> str:
    """Compose reads '$' as a variable; none of coursehub's values means one."""
    return value.replace("$", "$$")


def _compose_values(value):
    """Every string of a compose file's data with its '$' kept as text (_compose_str)."""
    if isinstance(value, str):
        return _compose_str(value)
    if isinstance(value, list):
        return [_compose_values(v) for v in value]
    if isinstance(value, dict):
        return {k: _compose_values(v) for k, v in value.items()}
    return value


def _healthcheck(test: list[str]) -> dict:
    return {"test": test, **HEALTHCHECK}


def _python_get(url: str, python: str = "python") -> list[str]:
    return [
        "CMD",
        python,
        "-c",
        f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)",
    ]


def grader_spec(inp: ComposeInput, course_id: str) -> ContainerSpec:
    return grader_container(inp.plan, course_id, inp.docker.image(GRADER))


def grader_env_file_values(inp: ComposeInput, course_id: str) -> dict[str, str]:
    """env.service.{course}: the POC's variables, with the course's token."""
    g = inp.plan.courses[course_id]
    env = grader_spec(inp, course_id).environment
    values = {k: env[k] for k in POC_SERVICE_VARIABLES if k in env}
    values.update(
        JUPYTERHUB_API_TOKEN=inp.secrets[f"service_token:{course_id}"],
        NB_USER=g.account.name,
        NB_UID=str(g.account.uid),
        NB_GID=str(g.account.gid),
    )
    return {k: values[k] for k in POC_SERVICE_VARIABLES}


def jhub_env_values(inp: ComposeInput) -> dict[str, str]:
    """env.jhub: the POC's variables and the secrets of the hub."""
    plan, docker = inp.plan, inp.docker
    values = {
        JHUB_SECRET_VARIABLES["proxy_auth_token"]: inp.secrets["proxy_auth_token"],
        "DOCKER_LEARNER_IMAGE": docker.image(STUDENT),
        "DOCKER_GRADER_IMAGE": docker.image(GRADER),
        "DOCKER_INSTRUCTOR_IMAGE": docker.image(INSTRUCTOR),
        "DOCKER_STANDARD_IMAGE": docker.image(STANDARD),
        "DOCKER_NETWORK_NAME": docker.network,
        "DOCKER_NOTEBOOK_DIR": f"{plan.paths.homes}/{{username}}",
        "DOCKER_MEM_LIMIT": docker.memory or "",
        "DOCKER_CPU_LIMIT": "" if docker.cpu is None else f"{docker.cpu:g}",
        "EXCHANGE_DIR": plan.paths.exchange,
        JHUB_SECRET_VARIABLES["crypt_key"]: inp.secrets["crypt_key"],
        JHUB_SECRET_VARIABLES["cookie_secret"]: inp.secrets["cookie_secret"],
        # coursehub's own service token (status, doctor, roster changes)
        JHUB_SECRET_VARIABLES["automation_token"]: inp.secrets["automation_token"],
        "JUPYTERHUB_API_TOKEN_USER": "coursehub",
        "JUPYTERHUB_API_URL": f"http://{HUB_SERVICE}:{plan.ports.hub}",
        SERVICE_TOKENS: service_tokens_value(
            {c: inp.secrets[f"service_token:{c}"] for c in plan.courses}
        ),
        # the POC's variable, for its scripts; the hub shows plan.json's org, exactly
        "ORGANIZATION_NAME": env_text(plan.org),
        "LTI_CONSUMER_KEY": "",  # LMS launches run on one machine only (check_renderable)
        "LTI_SHARED_SECRET": "",
    }
    if inp.shared_passwords:
        values[USER_PASSWORD] = inp.shared_passwords.get("user_password") or ""
        values[ADMIN_PASSWORD] = inp.shared_passwords.get("admin_password") or ""
    return values


def check_env_values(inp: ComposeInput) -> None:
    """The site's own values that go into env files: refused, naming the field, when an
    env file cannot carry them (everything else there is coursehub's: hex secrets,
    checked image and network names, paths under a checked root)."""
    for key in ("user_password", "admin_password"):
        value = (inp.shared_passwords or {}).get(key)
        if value and (problem := env_value_problem(value)):
            raise ComposeError(
                f"auth.{key}: the password has {problem}, which the hub's env file cannot "
                "carry on a Docker host; choose one without it (the password is not shown)"
            )


def render_env_files(inp: ComposeInput) -> dict[str, str]:
    head = "Secrets: keep this file mode 0600 and out of version control.\n"
    out = {
        ENV_JHUB: env_file(
            "The hub's variables (the POC's names) and secrets.\n" + head, jhub_env_values(inp)
        ),
        ENV_PROXY: env_file(
            "The proxy's API token (the same as CONFIGURABLE_HTTP_PROXY in env.jhub).\n" + head,
            {"CONFIGPROXY_AUTH_TOKEN": inp.secrets["proxy_auth_token"]},
        ),
    }
    for course in inp.plan.courses:
        out[ENV_SERVICE.format(course=course)] = env_file(
            f"The grader service of {course} (the POC's names) and its token.\n" + head,
            grader_env_file_values(inp, course),
        )
    return out


def render_compose_file(inp: ComposeInput) -> str:
    """docker-compose.yml: the proxy, the hub and one grader service per course."""
    net = inp.docker.network
    images = images_of(inp)
    services: dict[str, dict] = {
        PROXY_SERVICE: _proxy_service(inp.plan, images, net),
        HUB_SERVICE: _hub_service(inp.plan, images, net),
    }
    for course, g in inp.plan.courses.items():
        services[course] = _grader_service(inp, course, net)
        if g.students:
            services[receipts_service(course)] = _receipts_service(inp, course, net)
    network = {"name": net, "external": True} if inp.docker.network_external else {"name": net}
    body = yaml.safe_dump(
        # the base URL, paths and addresses are text: no '$' of theirs is a variable
        _compose_values({"services": services, "networks": {net: network}}),
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )
    return (
        _header(inp)
        + "# Run start.sh (as root) rather than 'docker compose up' alone: it makes the host\n"
        + "# folders first, with their owners (prepare-host.sh), and builds the images.\n"
        + body
    )


def _proxy_service(plan: Plan, images: Images, net: str) -> dict:
    """configurable-http-proxy in a container of its own, on the public port."""
    args = proxy_args(plan, ip="0.0.0.0", port=PROXY_PORT, api_ip="0.0.0.0", hub_host=HUB_SERVICE)
    return {
        "build": {"context": ".", "dockerfile": DOCKERFILES["proxy"]},
        "image": images.proxy,
        "user": NOBODY,
        "restart": RESTART,
        "command": ["configurable-http-proxy", *args],
        "env_file": [ENV_PROXY],
        # it runs as nobody and needs no privilege at all
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "ports": [f"{plan.ip}:{plan.ports.public}:{PROXY_PORT}"],
        "networks": [net],
        # its API wants the token: asked with the variable, never the value
        "healthcheck": _healthcheck(
            [
                "CMD",
                "node",
                "-e",
                "require('http').get({port: "
                + str(plan.ports.proxy_api)
                + f", path: '{PROXY_ROUTES_PATH}', headers: "
                "{Authorization: 'token ' + process.env.CONFIGPROXY_AUTH_TOKEN}}, "
                "r => process.exit(r.statusCode === 200 ? 0 : 1))"
                ".on('error', () => process.exit(1))",
            ]
        ),
    }


def plan_digest(plan: Plan) -> str:
    """The digest of plan.json as rendered: a label of the hub's service, so that
    'docker compose up -d' starts the hub again exactly when the Plan changed (the hub
    reads its roles, services and people's groups from it when it starts)."""
    return hashlib.sha256(plan_json(plan).encode()).hexdigest()


def plan_json(plan: Plan) -> str:
    """plan.json as the host gets it."""
    return plan.to_json() + "\n"


def _hub_service(plan: Plan, images: Images, net: str) -> dict:
    """The hub, built from the folder's Dockerfile; it spawns people's containers."""
    return {
        "build": {"context": ".", "dockerfile": DOCKERFILES["hub"]},
        "image": images.hub,
        "labels": {PLAN_LABEL: plan_digest(plan)},
        "restart": RESTART,
        "command": ["jupyterhub", "-f", hub_config_file(plan)],
        "env_file": [ENV_JHUB],
        # root, to make each home with its owner; never more than it started with
        "security_opt": ["no-new-privileges:true"],
        "volumes": [
            # DockerSpawner starts each person's container through the engine
            "/var/run/docker.sock:/var/run/docker.sock",
            # hub database, plan.json, people's homes (made before each spawn)
            f"{plan.paths.data_dir}:{plan.paths.data_dir}",
            f"{plan.paths.etc}:{plan.paths.etc}:ro",
        ],
        "networks": [net],
        "depends_on": [PROXY_SERVICE],
        "healthcheck": _healthcheck(
            _python_get(
                f"http://127.0.0.1:{plan.ports.hub}{plan.base_url}{HUB_HEALTH_PATH}", "python3"
            )
        ),
    }


def _grader_service(inp: ComposeInput, course: str, net: str) -> dict:
    """A course's grader server, as coursehub.containers builds it; its token is in its
    env file, so the environment here holds only what that file does not."""
    g = inp.plan.courses[course]
    spec = grader_spec(inp, course)
    in_env_file = set(grader_env_file_values(inp, course))
    return {
        **_as_grader(spec),
        "command": list(spec.command or ()),
        # its grading sandbox makes namespaces and mounts: see seccomp.py
        "security_opt": [*spec.security_opt, *seccomp.SECURITY_OPT],
        "env_file": [ENV_SERVICE.format(course=course)],
        "environment": {k: v for k, v in sorted(spec.environment.items()) if k not in in_env_file},
        "networks": [net],
        "depends_on": [HUB_SERVICE],
        "healthcheck": _healthcheck(
            _python_get(f"http://127.0.0.1:{SYSTEM_GRADER_PORT}{g.prefix}api")
        ),
    }


def _as_grader(spec: ContainerSpec) -> dict:
    """What every service of a course's grader account shares: its image, uid, groups,
    home and folders, and no capability."""
    return {
        "image": spec.image,
        "restart": RESTART,
        "user": spec.user,
        "group_add": [str(gid) for gid in spec.group_add],
        "working_dir": spec.working_dir,
        "cap_drop": list(spec.cap_drop),
        "volumes": [f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in spec.mounts],
    }


def receipts_service(course: str) -> str:
    return f"{course}{RECEIPTS_SUFFIX}"


def _receipts_service(inp: ComposeInput, course: str, net: str) -> dict:
    """The scan that notes each new submission soon after it is made (what the local
    supervisor runs every SCAN_SECONDS): the grader's uid, image and folders, no token."""
    g = inp.plan.courses[course]
    spec = grader_spec(inp, course)
    inbound = f"{inp.plan.paths.exchange}/{course}/inbound"
    return {
        **_as_grader(spec),
        "command": scan_argv("python", inbound, g.receipts, every=SCAN_SECONDS),
        "security_opt": ["no-new-privileges:true"],
        "environment": dict(sorted(spec.environment.items())),
        "network_mode": "none",  # it reads and writes folders, and talks to nobody
    }


def _extension_comment(env: str) -> str:
    wanted = EXTENSIONS[env]
    return (
        ", ".join(w for key, w in _EXTENSION_WORDS.items() if key in wanted)
        or "no nbgrader extension"
    )


_NO_VENV = "! python3 -c 'import ensurepip' 2>/dev/null"  # Debian's python3 without python3-venv


def _coursehub_env(inp: ComposeInput) -> str:
    """The steps after FROM that the hub and the notebook base share, word for word:
    nss_wrapper, bubblewrap and a venv at ENV_PATH with coursehub[docker] at the rendering
    environment's pins. When the two bases are the same image, the engine builds
    these layers once and both images reuse them."""
    wheel = inp.wheel[0]
    return (
        "# hadolint ignore=DL3002\n"
        "USER 0\n"
        "# nss_wrapper: every person runs under their own uid, which it names (no shared\n"
        "# image user); bubblewrap: the grading sandbox; python3-venv only where the\n"
        "# base's python3 lacks ensurepip.\n"
        "# DL3008 does not apply: the base image's tag pins the release, whose archive\n"
        "# keeps only the current (security-fixed) version.\n"
        "# hadolint ignore=DL3008\n"
        "RUN export DEBIAN_FRONTEND=noninteractive \\\n"
        "    && apt-get update --yes \\\n"
        "    && apt-get install --yes --no-install-recommends libnss-wrapper bubblewrap \\\n"
        f"    && if {_NO_VENV}; then \\\n"
        "        apt-get install --yes --no-install-recommends python3-venv; fi \\\n"
        "    && apt-get clean \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        f"COPY constraints.txt wheels/{wheel} /tmp/coursehub/\n"
        f"RUN python3 -m venv {ENV_PATH} \\\n"
        f"    && {ENV_PATH}/bin/pip install --no-cache-dir --disable-pip-version-check \\\n"
        "        --constraint /tmp/coursehub/constraints.txt \\\n"
        f'        "/tmp/coursehub/{wheel}[docker]" \\\n'
        "    && rm -rf /tmp/coursehub\n"
        f"ENV PATH={ENV_PATH}/bin:$PATH\n"
    )


def render_dockerfiles(inp: ComposeInput) -> dict[str, str]:
    """The images, FROM the site's base images (docker.base_images): the hub, the proxy,
    the notebook base and one image per environment on top of it. Nothing depends on a
    base's own layout: the Python environment is a venv these files make, owned by
    root (no server can change it)."""
    images = images_of(inp)
    docker = inp.docker
    jh, nbg = inp.pins["jupyterhub"], inp.pins["nbgrader"]
    out: dict[str, str] = {}
    out[DOCKERFILES["hub"]] = (
        _header(inp)
        + f"# The hub: JupyterHub {jh} with coursehub and DockerSpawner, at the versions of\n"
        "# the coursehub that rendered it (constraints.txt). It runs as root: it starts\n"
        "# containers through the engine's socket and makes each person's home with\n"
        "# their uid before their container starts.\n"
        f"FROM {docker.base_image('hub')}\n"
        + _coursehub_env(inp)
        + f"WORKDIR {inp.plan.paths.state}\n"
        f"EXPOSE {inp.plan.ports.hub}\n"
        f"CMD {json.dumps(['jupyterhub', '-f', hub_config_file(inp.plan)])}\n"
    )
    node_check = (
        f'node -e \'process.exit(+process.versions.node.split(".")[0] >= {PROXY_NODE_MAJOR}'
        " ? 0 : 1)'"
    )
    out[DOCKERFILES["proxy"]] = (
        _header(inp)
        + f"# The proxy: configurable-http-proxy {PROXY_VERSION} from npm, the version one\n"
        f"# machine runs ({PROXY_VERSION_OLD_NODE} on a Node.js older than {PROXY_NODE_MAJOR}),"
        " as nobody.\n"
        f"FROM {docker.base_image('proxy')}\n"
        "USER 0\n"
        f"RUN if {node_check}; then v={PROXY_VERSION}; else v={PROXY_VERSION_OLD_NODE}; fi \\\n"
        '    && npm install --global --no-fund --no-audit "configurable-http-proxy@$v" \\\n'
        "    && npm cache clean --force\n"
        f"USER {NOBODY}\n"
        f"EXPOSE {PROXY_PORT} {inp.plan.ports.proxy_api}\n"
    )
    out[DOCKERFILES["base"]] = (
        _header(inp) + f"# What every notebook image shares: JupyterHub {jh} (the hub's version),\n"
        f"# nbgrader {nbg} and coursehub (its private exchange).\n"
        f"FROM {docker.base_image('notebook')}\n"
        + _coursehub_env(inp)
        + "# People and graders never run as the image's user: each container gets the\n"
        "# account's uid from the Plan.\n"
        f"USER {NOBODY}\n"
    )
    for env in NOTEBOOK_ENVIRONMENTS:
        out[DOCKERFILES[env]] = (
            _header(inp)
            + f"# The {env} environment ({images.roles[env]}): {_extension_comment(env)}\n"
            "# (the POC's table, as the Plan decides it); every other nbgrader extension is\n"
            "# off on the server and in Lab.\n"
            f"FROM {images.base}\n"
            f"COPY images/{env}/jupyter_server_config.json "
            f"{ENV_PATH}/etc/jupyter/jupyter_server_config.json\n"
            f"COPY images/{env}/page_config.json "
            f"{ENV_PATH}/etc/jupyter/labconfig/page_config.json\n"
        )
    return out


def render_image_configs(inp: ComposeInput) -> dict[str, str]:
    out = {}
    for env in NOTEBOOK_ENVIRONMENTS:
        settings = inp.plan.extensions[env]
        out[f"images/{env}/jupyter_server_config.json"] = server_config_json(settings)
        out[f"images/{env}/page_config.json"] = page_config_json(settings)
    return out


@dataclass(frozen=True)
class HostFile:
    source: str  # in the output folder
    path: str  # on the host
    uid: int
    gid: int
    mode: int
    keep: bool  # written once, then the owner's (nbgrader layer 3)


def host_files(inp: ComposeInput) -> tuple[dict[str, str], list[HostFile]]:
    """files/ mirroring host paths (the Plan's files, plan.json, ids.json), and where each goes."""
    plan = inp.plan
    contents: dict[str, str] = {}
    placed: list[HostFile] = []
    for f in plan.files:
        source = f"files/{host_path(plan, f.path)}"
        contents[source] = f.content
        placed.append(HostFile(source, f.path, f.uid, f.gid, f.mode, not f.overwrite))
    for path, content in (
        (plan_file(plan), plan_json(plan)),
        (plan.paths.ids_file, plan.ids.to_json() + "\n"),
    ):
        source = f"files/{host_path(plan, path)}"
        contents[source] = content
        placed.append(HostFile(source, path, 0, 0, 0o600, False))
    placed.append(HostFile(hub_config_name(plan), hub_config_file(plan), 0, 0, 0o644, False))
    return contents, placed


def render_prepare_host(inp: ComposeInput) -> str:
    """The script an operator runs as root: it hands over to prepare_host.py, which
    makes the folders and files of host-layout.json through coursehub.safefs (the
    same no-link-following walk as on one machine; a shell cannot open folders by
    descriptor)."""
    return (
        "\n".join(
            [
                "#!/bin/sh",
                *_header(inp).splitlines(),
                "# Makes the Plan's host folders and files, with their owners and modes, BEFORE",
                "# the first 'docker compose up': a bind mount of a missing folder is made by",
                "# Docker, owned by root, and the grader's and people's uids then cannot use it",
                "# (the POC's volume-order gotcha). Needs root and python3, not Docker; safe to",
                "# run again. Many of these folders belong to graders and students: nothing is",
                "# followed through a link they could have put there (prepare_host.py).",
                "set -eu",
                'HERE=$(CDPATH="" cd -- "$(dirname -- "$0")" && pwd)',
                'if [ "$(id -u)" -ne 0 ]; then',
                '    echo "error: prepare-host.sh sets owners, so it needs root: sudo $0" >&2',
                "    exit 1",
                "fi",
                "if ! command -v python3 >/dev/null 2>&1; then",
                '    echo "error: prepare-host.sh needs python3: apt-get install python3" >&2',
                "    exit 1",
                "fi",
                'exec python3 -I "$HERE/prepare_host.py"',
            ]
        )
        + "\n"
    )


_PREPARE_HOST_MAIN = """

def main() -> int:
    import json
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "host-layout.json"), encoding="utf-8") as f:
        layout = json.load(f)
    os.umask(0o022)  # the host's parent folders get ordinary modes; planned ones their own
    try:
        print("==> Host folders under " + layout["root"], flush=True)
        for path in layout["parents"]:  # the host's own folders: made if missing, never changed
            os.makedirs(path, mode=0o755, exist_ok=True)
        for path, uid, gid, mode in layout["folders"]:
            ensure_folder(path, uid, gid, mode)
        print("==> Configuration files", flush=True)
        for source, path, uid, gid, mode, keep in layout["files"]:
            with open(os.path.join(here, source), "rb") as f:
                write_file(path, f.read(), uid, gid, mode, overwrite=not keep)
    except UnsafePathError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("==> Host ready", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
"""


def render_prepare_host_py() -> str:
    """prepare_host.py: coursehub.safefs itself (standard library only) and a main."""
    from ... import safefs

    source = Path(safefs.__file__).read_text(encoding="utf-8")
    return (
        "# Generated by 'coursehub render compose': coursehub.safefs and the steps of\n"
        "# host-layout.json. Run by prepare-host.sh as root.\n" + source + _PREPARE_HOST_MAIN
    )


def render_host_layout(inp: ComposeInput, placed: list[HostFile]) -> str:
    """What prepare_host.py makes: the host's parent folders, the Plan's folders
    (outermost first) and files, as data (no text of the site's is ever a command)."""
    plan = inp.plan
    planned = {f.path for f in plan.folders}
    parents: list[str] = []
    for f in plan.folders:
        parent = posixpath.dirname(f.path)
        if parent not in planned and parent not in parents:
            parents.append(parent)
    layout = {
        "root": plan.layout.root or "/",
        "parents": parents,
        "folders": [[f.path, f.uid, f.gid, f.mode] for f in plan.folders],
        "files": [[h.source, h.path, h.uid, h.gid, h.mode, h.keep] for h in placed],
    }
    return json.dumps(layout, indent=1) + "\n"


def render_start(inp: ComposeInput) -> str:
    images = images_of(inp)
    net = inp.docker.network
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        *_header(inp).splitlines(),
        "# Prepares the host (folders first: the POC's volume-order gotcha), makes the",
        "# network, builds the images and starts proxy, hub and grader services.",
        "# Needs root and a Docker engine with Compose ('docker compose'; set COMPOSE",
        "# to use another, for example COMPOSE=docker-compose).",
        "set -eu",
        'cd -- "$(dirname -- "$0")"',
        'COMPOSE=${COMPOSE:-"docker compose"}',
        "./prepare-host.sh",
    ]
    if inp.docker.network_external:
        lines += [
            f"if ! docker network inspect {q(net)} >/dev/null 2>&1; then",
            f"    echo {q('==> Creating the Docker network ' + net)}",
            f"    docker network create {q(net)}",
            "fi",
        ]
    lines.append("echo '==> Building the notebook images'")
    lines.append(f"docker build --file {DOCKERFILES['base']} --tag {q(images.base)} .")
    for env in NOTEBOOK_ENVIRONMENTS:
        lines.append(f"docker build --file {DOCKERFILES[env]} --tag {q(images.roles[env])} .")
    lines += [
        "echo '==> Building the hub and proxy images'",
        "$COMPOSE build",
        "echo '==> Starting proxy, hub and grader services'",
        "$COMPOSE up -d",
        "$COMPOSE ps",
    ]
    return "\n".join(lines) + "\n"


def render_dockerignore() -> str:
    return (
        "# The images' build context: only what the Dockerfiles copy. The env files hold\n"
        "# secrets and must never enter an image.\n"
        "*\n"
        "!constraints.txt\n"
        "!wheels/\n"
        "!images/\n"
    )


def render_all(inp: ComposeInput) -> dict[str, Rendered]:
    """Every file of the output folder, by its path in the folder."""
    check_renderable(inp.plan)
    check_env_values(inp)
    text: dict[str, tuple[str, int]] = {}
    text["docker-compose.yml"] = (render_compose_file(inp), 0o644)
    for name, content in render_dockerfiles(inp).items():
        text[name] = (content, 0o644)
    for name, content in render_image_configs(inp).items():
        text[name] = (content, 0o644)
    text["constraints.txt"] = (constraints_txt(inp.pins), 0o644)
    text[seccomp.FILE] = (seccomp.grader_profile_json(), 0o644)
    text[hub_config_name(inp.plan)] = (
        render_jupyterhub_config(plan_file(inp.plan), inp.plan.paths.hub_config_d),
        0o644,
    )
    contents, placed = host_files(inp)
    for name, content in contents.items():
        text[name] = (content, 0o644)
    text["prepare-host.sh"] = (render_prepare_host(inp), 0o755)
    text["prepare_host.py"] = (render_prepare_host_py(), 0o644)
    text["host-layout.json"] = (render_host_layout(inp, placed), 0o644)
    text["start.sh"] = (render_start(inp), 0o755)
    text[".dockerignore"] = (render_dockerignore(), 0o644)
    out = {name: Rendered(content.encode(), mode) for name, (content, mode) in text.items()}
    for name, content in render_env_files(inp).items():
        out[name] = Rendered(content.encode(), 0o600, secret=True)
    out[f"wheels/{inp.wheel[0]}"] = Rendered(inp.wheel[1], 0o644)
    return out
