"""JupyterHub finds coursehub's classes by their entry-point names."""

from importlib.metadata import entry_points

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import Spawner


def test_authenticators_and_spawner_are_registered():
    auths = {e.name: e for e in entry_points(group="jupyterhub.authenticators")}
    spawners = {e.name: e for e in entry_points(group="jupyterhub.spawners")}
    for name in (
        "coursehub-first-use",
        "coursehub-shared-password",
        "coursehub-lti11",
        "coursehub-lti13",
    ):
        assert issubclass(auths[name].load(), Authenticator)
    assert issubclass(spawners["coursehub-local"].load(), Spawner)


def test_docker_spawner_is_registered():
    from dockerspawner import DockerSpawner

    spawners = {e.name: e for e in entry_points(group="jupyterhub.spawners")}
    assert issubclass(spawners["coursehub-docker"].load(), DockerSpawner)
