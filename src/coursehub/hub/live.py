"""New courses into the running hub: no restart, nobody dropped.

JupyterHub reads roles, groups and services from its config at start and has
no REST API for roles. A course added while the hub runs (`coursehub course
add`, an edited site file, an instructor's first launch from the LMS) is loaded
by the hub itself from the Plan, the way a start with the new config loads it:
the roles (the course's own, and coursehub's own role with its new group
scopes), the course's groups with their members, and its grader service (API
token, OAuth client, proxy route) as a config service, so the next start finds
the very same thing in its config.

POST /hub/coursehub/courses loads them and answers which. Only a token with
coursehub's own scope (custom:coursehub:load-courses, held by coursehub's
automation service alone) may ask.

Only additions are loaded live. Removing a course or a role assignment,
changing admins, the authenticator or a grader's address still restart the hub
(coursehub.targets.local.apply decides which).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyterhub import orm, roles
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from ..plan import LOAD_COURSES_PATH, LOAD_COURSES_SCOPE, Plan, load_plan
from ..secrets import load_secrets
from .services import course_service


async def hub_started(app: Any) -> None:
    """Return once the hub's own start is over. Its API answers before it has started
    its services, and its start iterates them across awaits: a course loaded then (a
    launch right after 'up') would change the services while the hub walks them, and
    the hub would stop with "dictionary changed size during iteration"."""
    started = getattr(app, "_start_future", None)
    if started is not None and not started.done():
        await asyncio.shield(started)


async def load_courses(
    app: Any, plan: Plan, service_tokens: dict[str, str], no_confirm: set[str]
) -> list[str]:
    """Load the Plan's courses the hub has no service for; returns their ids.

    `app` is the running JupyterHub application; `no_confirm` its set of OAuth
    clients that skip the confirmation page (grader services do).
    """
    await hub_started(app)
    db = app.db
    new = [cid for cid in plan.courses if cid not in app._service_map]

    # roles: new ones, and new scopes of existing ones (coursehub's own role grows
    # with every course's groups)
    for role in plan.roles:
        roles.create_role(
            db,
            {"name": role.name, "description": role.description, "scopes": list(role.scopes)},
            commit=False,
        )
    db.commit()

    # a new course's groups, with their members (later changes: the roster's sync)
    for name, members in plan.groups.items():
        if orm.Group.find(db, name) is not None:
            continue
        group = orm.Group(name=name)
        db.add(group)
        for member in members:
            user = await app._get_or_create_user(member, hint=f"group: {name}")
            group.users.append(user)
        db.commit()
        app.log.info("coursehub: group %s loaded with %d members", name, len(members))

    # grader services, as a start with them in the config makes them
    for cid in new:
        token = service_tokens.get(cid)
        if not token:
            raise web.HTTPError(409, f"no service token for course {cid}: run 'coursehub up'")
        service = app.service_from_spec(course_service(plan, cid, token), from_config=True)
        if service is None:
            raise web.HTTPError(409, f"a service named {cid} was made at runtime by someone else")
        await app._add_tokens({token: cid}, kind="service")
        no_confirm.add(service.oauth_client_id)
        await app.proxy.add_service(service)
        app.log.info("coursehub: grader service %s loaded at %s", cid, service.url)

    # role assignments (additions only)
    for role in plan.roles:
        holders: list[Any] = [orm.Group.find(db, g) for g in role.groups]
        holders += [orm.Service.find(db, s) for s in role.services]
        for name in role.users:
            holders.append(await app._get_or_create_user(name, hint=f"role: {role.name}"))
        for holder in holders:
            if holder is not None:
                roles.grant_role(db, holder, role.name, commit=False)
    db.commit()
    return new


class LoadCoursesHandler(APIHandler):
    """POST /hub/coursehub/courses: load the Plan's new courses; answers {"loaded": [...]}."""

    async def post(self):
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        # checked here, not with @needs_scope: a custom scope is defined at hub start,
        # after this module is imported
        if not has_scope(LOAD_COURSES_SCOPE, self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Loading courses needs the scope {LOAD_COURSES_SCOPE}.")
        plan = load_plan(self.authenticator.plan_file)
        try:
            secrets = load_secrets(plan.paths.secrets)
        except (OSError, KeyError, ValueError):
            raise web.HTTPError(
                409, "This hub has no secrets folder: it loads courses at start; restart it."
            ) from None
        tokens = {
            cid: secrets[f"service_token:{cid}"]
            for cid in plan.courses
            if f"service_token:{cid}" in secrets
        }
        loaded = await load_courses(
            self.app, plan, tokens, self.settings.setdefault("oauth_no_confirm_list", set())
        )
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"loaded": loaded}))


def live_handlers() -> list[tuple[str, type]]:
    """The hub handlers every coursehub authenticator adds (JupyterHub's extension point
    for hub-side endpoints)."""
    return [(LOAD_COURSES_PATH, LoadCoursesHandler)]
