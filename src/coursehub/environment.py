"""The environment of every server: a person's, a grader's (no secrets; pure).

One place for the variables each target gives a server, so that a server on one
machine, in a container or in a pod sees the same identity and configuration.
"""

from __future__ import annotations

from .plan import Account, Plan


def account_env(plan: Plan, account: Account, nss_wrapper: str | None) -> dict[str, str]:
    """Variables every server of this account needs (no secrets)."""
    env = {
        "USER": account.name,
        "LOGNAME": account.name,
        "HOME": account.home,
        "SHELL": "/bin/bash",
        "COURSEHUB_DATA_DIR": plan.paths.data_dir,  # marks every process of this installation
        "JUPYTERLAB_SETTINGS_DIR": f"{account.home}/.jupyter/lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": f"{account.home}/.jupyter/lab/workspaces",
    }
    if nss_wrapper:
        env.update(
            LD_PRELOAD=nss_wrapper,
            NSS_WRAPPER_PASSWD=plan.passwd_file(account.name),
            NSS_WRAPPER_GROUP=plan.group_file(account.name),
        )
    return env


def person_env(
    plan: Plan, name: str, nss_wrapper: str | None, bin_dir: str | None = None
) -> dict[str, str]:
    """A person's server environment (no secrets): their identity through nss_wrapper,
    the Jupyter config of their environment and nbgrader layer 1; with `bin_dir` (the
    servers' environment on this machine) the PATH that finds it first."""
    person = plan.people[name]
    env = account_env(plan, person.account, nss_wrapper)
    env["JUPYTER_CONFIG_DIR"] = person.config_dir
    env["JUPYTER_CONFIG_PATH"] = plan.paths.jupyter_config
    if bin_dir:
        env["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    return env


def grader_env(
    plan: Plan, course_id: str, nss_wrapper: str | None, bin_dir: str | None = None
) -> dict[str, str]:
    """A course's grader server environment, without its token (a secret)."""
    env = account_env(plan, plan.courses[course_id].account, nss_wrapper)
    env.update(plan.grader_env(course_id))
    if bin_dir:
        env["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    return env
