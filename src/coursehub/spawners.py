"""Spawners for coursehub's targets, by their public names.

``coursehub.spawners.CourseDockerSpawner`` runs each person's server in a
Docker container (the compose target); it needs the 'docker' extra
(dockerspawner).
"""

from __future__ import annotations

from .hub.docker_spawner import CourseDockerSpawner

__all__ = ["CourseDockerSpawner"]
