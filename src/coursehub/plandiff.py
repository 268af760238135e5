"""What differs between two Plans, and what of it the hub loads live or only when it starts.
No I/O: imports only coursehub.plan and pure modules, never coursehub.targets or coursehub.hub."""

from __future__ import annotations

from .plan import Plan


def hub_changes(old: Plan, new: Plan) -> bool:
    """Whether the hub's roles or services change at all (people and groups aside)."""
    return loadable_changes(old, new) or bool(hub_restart_reasons(old, new))


def loadable_changes(old: Plan, new: Plan) -> bool:
    """Whether the running hub can take the change itself (coursehub.hub.live)."""
    return old.roles != new.roles or set(old.courses) != set(new.courses)


def _read_at_start(auth: dict) -> dict:
    # the LMS context -> course mapping and the accepted deployments are read at every
    # launch, not at hub start
    return {k: v for k, v in auth.items() if k not in ("contexts", "deployment_ids")}


def hub_restart_reasons(old: Plan, new: Plan) -> list[str]:
    """What only a hub start loads. New courses and roles, new scopes and new role
    holders are loaded into the running hub instead (coursehub.hub.live)."""
    reasons = []
    if old.admins != new.admins:
        reasons.append("admins changed")
    if _read_at_start(old.auth) != _read_at_start(new.auth):
        reasons.append("the login changed")
    removed = sorted(set(old.courses) - set(new.courses))
    if removed:
        reasons.append(f"courses removed: {', '.join(removed)}")
    moved = sorted(
        c for c in set(old.courses) & set(new.courses) if old.courses[c].url != new.courses[c].url
    )
    if moved:
        reasons.append(f"grader servers moved: {', '.join(moved)}")
    now = {r.name: r for r in new.roles}
    for role in old.roles:
        after = now.get(role.name)
        if after is None:
            reasons.append(f"role {role.name} removed")
        elif not (
            set(role.users) <= set(after.users)
            and set(role.groups) <= set(after.groups)
            and set(role.services) <= set(after.services)
        ):
            reasons.append(f"role {role.name} lost holders")
    return reasons
