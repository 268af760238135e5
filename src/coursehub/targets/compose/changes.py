"""What rendering again changes on a running Docker host, in words. Pure: it compares
the compose file before and after, and names the files written.

`docker compose up -d` (which start.sh runs) recreates a service whose definition or
env file changed and leaves the others running; the hub's service carries the Plan's
digest (render.PLAN_LABEL), so the hub starts again exactly when the Plan changed.
"""

from __future__ import annotations

import yaml

# What a changed key of a service means, for the operator.
_KEY_WORDS = {
    "labels": "the Plan changed",
    "volumes": "its folders changed",
    "environment": "its environment changed",
    "env_file": "its environment changed",
    "command": "its command changed",
    "image": "its image changed",
    "user": "its uid changed",
    "group_add": "its groups changed",
}
_IMAGE_INPUTS = ("Dockerfile.", "wheels/", "constraints.txt", "images/")


def _services(text: str | None) -> dict[str, dict]:
    if not text:
        return {}
    data = yaml.safe_load(text) or {}
    return dict(data.get("services") or {})


def _env_files_written(written: list[str], services: dict[str, dict]) -> set[str]:
    """Services one of whose env files was written again (a secret or variable changed)."""
    return {name for name, svc in services.items() if set(svc.get("env_file") or ()) & set(written)}


def stack_changes(old_compose: str | None, new_compose: str, written: list[str]) -> list[str]:
    """One line per service that 'start.sh' (docker compose up -d) starts, starts again
    or removes, and one for rebuilt images; nothing when the stack stays as it is.
    `old_compose` is None for a first render: then everything is new, and said once."""
    new = _services(new_compose)
    if old_compose is None:
        return [f"a new stack: {len(new)} services start ({', '.join(new)})"]
    old = _services(old_compose)
    lines = [f"{name}: new, starts" for name in new if name not in old]
    lines += [f"{name}: no longer rendered, removed" for name in old if name not in new]
    env_changed = _env_files_written(written, new)
    for name, after in new.items():
        before = old.get(name)
        if before is None:
            continue
        reasons = sorted(
            {_KEY_WORDS.get(k, f"its {k} changed") for k in set(before) | set(after)
             if before.get(k) != after.get(k)}
        )  # fmt: skip
        if name in env_changed and _KEY_WORDS["env_file"] not in reasons:
            reasons.append(_KEY_WORDS["env_file"])
        if reasons:
            lines.append(f"{name}: starts again ({'; '.join(reasons)})")
    rebuilt = sorted({n for n in written if n.startswith(_IMAGE_INPUTS)})
    if rebuilt:
        lines.append(
            f"images built again ({', '.join(rebuilt)}): the services on them start again, "
            "and people's servers take the new image at their next start"
        )
    return lines
