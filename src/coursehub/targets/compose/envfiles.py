"""env files: the only rendered files that hold secrets (mode 0600).

Variable names are the POC's (its README's two tables), plus the few a hub of
several courses needs. Secrets keep the names of ``coursehub.secrets`` inside
coursehub; this module maps them to and from the variables, so that rendering
again reads the secrets back instead of making new ones.
"""

from __future__ import annotations

import secrets as _random
import unicodedata

from ...secrets import secret_names

ENV_JHUB = "env.jhub"
ENV_PROXY = "env.proxy"
ENV_SERVICE = "env.service.{course}"

# The POC's tables, as its README lists them.
POC_JHUB_VARIABLES = (
    "CONFIGURABLE_HTTP_PROXY",
    "DOCKER_LEARNER_IMAGE",
    "DOCKER_GRADER_IMAGE",
    "DOCKER_INSTRUCTOR_IMAGE",
    "DOCKER_STANDARD_IMAGE",
    "DOCKER_NETWORK_NAME",
    "DOCKER_NOTEBOOK_DIR",
    "EXCHANGE_DIR",
    "JUPYTERHUB_CRYPT_KEY",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_TOKEN_USER",
    "JUPYTERHUB_API_URL",
    "ORGANIZATION_NAME",
    "LTI_CONSUMER_KEY",
    "LTI_SHARED_SECRET",
)
POC_SERVICE_VARIABLES = (
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_BASE_URL",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_SERVICE_NAME",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_USER",
    "NB_USER",
    "NB_UID",
    "NB_GID",
)

# Secret name (coursehub.secrets) -> variable of env.jhub that carries it.
JHUB_SECRET_VARIABLES = {
    "cookie_secret": "JPY_COOKIE_SECRET",  # JupyterHub's own name for it
    "crypt_key": "JUPYTERHUB_CRYPT_KEY",
    "proxy_auth_token": "CONFIGURABLE_HTTP_PROXY",
    "automation_token": "JUPYTERHUB_API_TOKEN",  # coursehub's own service token
}
SERVICE_TOKENS = "COURSEHUB_SERVICE_TOKENS"  # course:token,course:token (ids have no ':' or ',')
USER_PASSWORD, ADMIN_PASSWORD = "COURSEHUB_USER_PASSWORD", "COURSEHUB_ADMIN_PASSWORD"


def env_value_problem(value: str) -> str | None:
    """Why `value` cannot be written in an env file so that docker compose v1 and v2 both
    read it back exactly, or None. An env file has no quoting they share: a line break
    starts another variable, v2 reads '$' as a variable and quotes as quoting, ' #'
    starts a comment, and surrounding spaces are dropped."""
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        return "a control character or line break"
    if "$" in value:
        return "a '$' (docker compose v2 reads it as a variable)"
    if value[:1] in ("'", '"'):
        return "a quote at its start"
    if " #" in value:
        return "' #' (the start of a comment)"
    if value != value.strip():
        return "a space at its start or end"
    return None


def env_file(header: str, variables: dict[str, str]) -> str:
    """KEY=VALUE lines, read the same by docker compose v1 and v2 (no quotes, no ' #')."""
    lines = [f"# {line}\n" if line else "#\n" for line in header.splitlines()]
    for key, value in variables.items():
        if problem := env_value_problem(value):
            # the value is not shown: it may be a secret
            raise ValueError(f"{key}: its value has {problem}; an env file cannot carry it")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def env_text(text: str) -> str:
    """Text for a variable that only shows it (the org's name): what an env file cannot
    carry becomes a space, runs of spaces one."""
    kept = "".join(
        " " if ch in "$#'\"" or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
    )
    return " ".join(kept.split())


def parse_env_file(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def service_tokens_value(tokens: dict[str, str]) -> str:
    return ",".join(f"{course}:{token}" for course, token in sorted(tokens.items()))


def parse_service_tokens(value: str) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in value.split(",") if ":" in item)
    return {course: token for course, token in pairs if course and token}


def secrets_from_env_files(
    jhub: dict[str, str], services: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The secrets a previous render wrote (env.jhub first, then each env.service)."""
    found = {name: jhub[var] for name, var in JHUB_SECRET_VARIABLES.items() if jhub.get(var)}
    for course, env in services.items():
        if env.get("JUPYTERHUB_API_TOKEN"):
            found[f"service_token:{course}"] = env["JUPYTERHUB_API_TOKEN"]
    for course, token in parse_service_tokens(jhub.get(SERVICE_TOKENS, "")).items():
        found[f"service_token:{course}"] = token
    return found


def complete_secrets(previous: dict[str, str], course_ids: list[str]) -> dict[str, str]:
    """Every secret these courses need: the previous ones kept, the missing ones
    generated as coursehub.secrets makes them (32 random bytes, hex)."""
    return {name: previous.get(name) or _random.token_hex(32) for name in secret_names(course_ids)}
