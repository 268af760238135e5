"""What differs between two Plans, and what of it the hub loads live or only when it starts.
No I/O: imports only coursehub.plan and pure modules, never coursehub.targets or coursehub.hub."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from .plan import File, Plan


def hub_changes(old: Plan, new: Plan) -> bool:
    """Whether the hub's roles or services change at all (people and groups aside)."""
    return loadable_changes(old, new) or bool(hub_restart_reasons(old, new))


def loadable_changes(old: Plan, new: Plan) -> bool:
    """Whether the running hub can take the change itself (coursehub.hub.live)."""
    return old.roles != new.roles or set(old.courses) != set(new.courses)


def hub_restart_reasons(old: Plan, new: Plan) -> list[str]:
    """What only a hub start loads. New courses and roles, new scopes and new role
    holders are loaded into the running hub instead (coursehub.hub.live)."""
    reasons = []
    if old.admins != new.admins:
        reasons.append("admins changed")
    if old.auth.read_at_start() != new.auth.read_at_start():
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


def _keyed(kind: str, stored: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    out = [f"{kind} {k} is not planned" for k in sorted(set(stored) - set(planned))]
    out += [f"{kind} {k} is missing" for k in sorted(set(planned) - set(stored))]
    for k in sorted(set(stored) & set(planned)):
        a, b = stored[k], planned[k]
        if a == b:
            continue
        if hasattr(a, "__dataclass_fields__"):
            da, db = asdict(a), asdict(b)
            fields = [f for f in da if da[f] != db[f]]
            out.append(f"{kind} {k}: {', '.join(fields)} differ")
        else:
            out.append(f"{kind} {k} differs")
    return out


def _unordered(f: File) -> File:
    """A planned file with its lines sorted: passwd and group follow the site's order."""
    return replace(f, content="\n".join(sorted(f.content.splitlines())))


def plan_differences(stored: Plan, planned: Plan) -> list[str]:
    """How a stored Plan differs from the one coursehub derives now (order aside)."""
    out = [
        f"{name} differs"
        for name in ("org", "ip", "base_url", "isolated", "ports", "paths", "auth", "extensions")
        if getattr(stored, name) != getattr(planned, name)
    ]
    if set(stored.admins) != set(planned.admins):
        out.append("admins differ")
    if (stored.ids.people, stored.ids.courses) != (planned.ids.people, planned.ids.courses):
        out.append("ids differ")
    out += _keyed("person", stored.people, planned.people)
    out += _keyed("course", stored.courses, planned.courses)
    out += _keyed("group", stored.groups, planned.groups)
    roles_a = {r.name: r for r in stored.roles}
    roles_b = {r.name: r for r in planned.roles}
    for name in sorted(set(roles_a) & set(roles_b)):
        a, b = roles_a[name], roles_b[name]
        if set(a.scopes) != set(b.scopes):
            more = sorted(set(a.scopes) - set(b.scopes))
            less = sorted(set(b.scopes) - set(a.scopes))
            out.append(
                f"role {name} has "
                + "; ".join(
                    t
                    for t in (
                        more and f"extra scopes {', '.join(more)}",
                        less and f"no scopes {', '.join(less)}",
                    )
                    if t
                )
            )
        for field in ("users", "groups", "services"):
            if set(getattr(a, field)) != set(getattr(b, field)):
                out.append(f"role {name}: {field} differ")
    out += _keyed(
        "role",
        {n: r for n, r in roles_a.items() if n not in roles_b},
        {n: r for n, r in roles_b.items() if n not in roles_a},
    )
    out += _keyed(
        "folder", {f.path: f for f in stored.folders}, {f.path: f for f in planned.folders}
    )
    out += _keyed(
        "file",
        {f.path: _unordered(f) for f in stored.files},
        {f.path: _unordered(f) for f in planned.files},
    )
    return out
