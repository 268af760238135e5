"""A DockerSpawner that takes everything from the Plan.

Each person's server runs in a container of their environment's image, under
the uid the Plan gives them (never the images' shared ``jovyan``), with their
course groups added and only the folders their uid may use on the local
target mounted (``coursehub.containers.person_container``).
"""

from __future__ import annotations

import inspect
from typing import Any

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Dict, TraitError, Unicode, default, validate

from ..containers import (
    NSS_WRAPPER,
    PERSON_ENVIRONMENTS,
    ContainerSpec,
    person_container,
    planned_person,
)
from ..folders import make_home
from ..plan import Person
from ..workspaces import person_landing_url
from .planned import PlanReader


def plan_server_token_scopes(spawner: CourseDockerSpawner) -> list[str]:
    """The scopes of a person's server token, as the Plan gives them (read at each spawn)."""
    return list(spawner.person.server_token_scopes)


def _on_top(configured: Any, ours: dict[str, Any]):
    """DockerSpawner's extra kwargs as configured (a dict or a callable, maybe
    async), with coursehub's keys set over them: configuration may add to a
    container, never change who it runs as or what it may do."""

    async def merged(spawner: DockerSpawner) -> dict[str, Any]:
        base = configured(spawner) if callable(configured) else configured
        if inspect.isawaitable(base):
            base = await base
        return {**(base or {}), **ours}

    return merged


class CourseDockerSpawner(PlanReader, DockerSpawner):
    """Spawn a person's server in a Docker container, from the Plan.

    - image by the person's environment (``images``: ``student``,
      ``instructor``, ``standard`` for people in no course); no image choice
      for users;
    - runs as the Plan's ``uid:gid`` with the person's course gids added
      (``group_add``); names resolve through nss_wrapper and the Plan's
      read-only passwd and group files;
    - mounts only the person's home (made before the container starts), the
      read-only configuration and, per course, ``outbound`` read-only, and for
      a student their own ``inbound/{name}`` read-write and their own feedback
      read-only;
    - refuses names not in the Plan and the courses' grader accounts;
    - the server token's scopes come from the Plan;
    - all capabilities dropped, no new privileges; containers removed when they
      stop (``remove``), since everything to keep lives in the bind mounts.

    Config traits: ``plan_file``, ``images``, ``nss_wrapper``, and
    DockerSpawner's own ``network_name``, ``mem_limit``, ``cpu_limit``,
    ``remove``, ``pull_policy``, ``prefix``/``name_template``. Configured
    ``mounts``, ``extra_create_kwargs`` and ``extra_host_config`` are added to,
    never replace, what the Plan decides.
    """

    images = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""Image of each environment: keys 'student', 'instructor' and 'standard'
        (people in no course), e.g. {'student': 'myedu/notebook:student'}.
        The images' JupyterHub must be the hub's version.""",
    ).tag(config=True)

    nss_wrapper = Unicode(
        NSS_WRAPPER,
        help="""libnss_wrapper.so inside the images (Debian/Ubuntu 'libnss-wrapper'),
        so that the Plan's uids resolve to their names without /etc/passwd entries.""",
    ).tag(config=True)

    @validate("images")
    def _valid_images(self, proposal):
        images = proposal["value"]
        unknown = sorted(set(images) - set(PERSON_ENVIRONMENTS))
        if unknown:
            raise TraitError(
                f"CourseDockerSpawner.images: unknown environment(s) {', '.join(unknown)}; "
                f"use {', '.join(PERSON_ENVIRONMENTS)}"
            )
        empty = sorted(k for k, v in images.items() if not v)
        if empty:
            raise TraitError(f"CourseDockerSpawner.images: no image given for {', '.join(empty)}")
        return images

    @default("remove")
    def _default_remove(self):
        return True

    @default("pull_policy")
    def _default_pull_policy(self):
        # The images are built on the Docker host; pulling a name that is
        # missing could fetch someone else's image of that name.
        return "never"

    @default("default_url")
    def _default_default_url(self):
        # students land on their Assignments, instructors on their Courses
        return person_landing_url(self.plan, self.user.name)

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        return plan_server_token_scopes

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # what configuration asked for; the Plan's part is set over it at each start
        self._configured_mounts = list(self.mounts)
        self._configured_create_kwargs = self.extra_create_kwargs
        self._configured_host_config = self.extra_host_config

    @property
    def person(self) -> Person:
        """The Plan's person of this server (refuses grader accounts and unknown names)."""
        return planned_person(self.plan, self.user.name)

    def container_spec(self) -> ContainerSpec:
        return person_container(self.plan, self.user.name, self.images, self.nss_wrapper)

    def get_env(self):
        env = super().get_env()
        # last, so that identity and configuration cannot be overridden
        env.update(self.container_spec().environment)
        return env

    async def check_allowed(self, image):
        raise web.HTTPError(
            400, "coursehub chooses the image by the person's role; no other can be asked for"
        )

    async def start(self):
        spec = self.container_spec()  # refuses unknown names and graders before anything is made
        make_home(self.plan, self.user.name)
        self.image = spec.image
        self.cmd = list(spec.command or ())
        self.notebook_dir = spec.working_dir
        self.mounts = self._configured_mounts + [
            {"type": "bind", "source": m.source, "target": m.target, "read_only": m.read_only}
            for m in spec.mounts
        ]
        self.extra_create_kwargs = _on_top(
            self._configured_create_kwargs,
            {"user": spec.user, "working_dir": spec.working_dir},
        )
        self.extra_host_config = _on_top(
            self._configured_host_config,
            {
                "group_add": list(spec.group_add),
                "cap_drop": list(spec.cap_drop),
                "security_opt": list(spec.security_opt),
            },
        )
        return await super().start()
