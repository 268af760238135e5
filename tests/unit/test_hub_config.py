"""hub_config(): the Plan as JupyterHub config; grader_spec(): a grader's process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sites import ADMIN_PASSWORD, DATA_DIR, USER_PASSWORD, shared_password_data

from coursehub.hub.config import hub_config
from coursehub.plan import derive
from coursehub.site import parse_site
from coursehub.targets.local.processes import grader_spec

USER_ENV = "/opt/env"


@pytest.fixture
def plan_file(tmp_path, plan) -> str:
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    return str(path)


@pytest.fixture
def config(plan, plan_file, fake_secrets):
    return hub_config(plan, plan_file, fake_secrets, USER_ENV)


def services_by_name(config) -> dict[str, dict]:
    return {s["name"]: s for s in config.JupyterHub.services}


def test_one_service_per_course_named_as_the_course(config, plan, fake_secrets):
    services = services_by_name(config)
    assert set(services) == {"algebra", "biology", "coursehub"}
    for cid, g in plan.courses.items():
        service = services[cid]
        assert service["url"] == f"http://127.0.0.1:{g.port}"
        assert service["oauth_no_confirm"] is True
        assert not service.get("admin")
        assert service["api_token"] == fake_secrets[f"service_token:{cid}"]
        assert service["oauth_client_id"] == f"service-{cid}"
        assert service["oauth_redirect_uri"] == f"/services/{cid}/oauth_callback"


def test_automation_service_has_its_token_and_no_admin(config, fake_secrets):
    service = services_by_name(config)["coursehub"]
    assert service["api_token"] == fake_secrets["automation_token"]
    assert not service.get("admin")
    assert "url" not in service


def test_roles_and_groups_come_from_the_plan(config, plan):
    assert config.JupyterHub.load_roles == [r.to_hub() for r in plan.roles]
    assert config.JupyterHub.load_groups == {
        name: {"users": list(members)} for name, members in plan.groups.items()
    }
    assert config.JupyterHub.load_groups["nbgrader-biology"] == {"users": ["sam", "tom"]}


def test_only_site_people_may_log_in(config, plan):
    auth = config.Authenticator
    assert auth.allow_existing_users is False
    assert auth.allowed_users == {"ada", "ines", "sam", "tom", "pat"}
    assert auth.allowed_users == set(plan.people)
    assert auth.admin_users == {"ada"}
    assert config.JupyterHub.authenticator_class == (
        "coursehub.hub.auth.CourseFirstUseAuthenticator"
    )


def test_proxy_and_servers_outlive_the_hub(config, plan, fake_secrets):
    assert config.ConfigurableHTTPProxy.should_start is False
    assert config.ConfigurableHTTPProxy.auth_token == fake_secrets["proxy_auth_token"]
    assert config.ConfigurableHTTPProxy.api_url == f"http://127.0.0.1:{plan.ports.proxy_api}"
    assert config.JupyterHub.cleanup_servers is False
    assert config.JupyterHub.cleanup_proxy is False


def test_hub_paths_and_keys(config, plan, fake_secrets):
    assert config.JupyterHub.cookie_secret_file == f"{DATA_DIR}/secrets/jupyterhub_cookie_secret"
    assert config.JupyterHub.db_url == f"sqlite:///{DATA_DIR}/state/jupyterhub.sqlite"
    assert config.JupyterHub.bind_url == f"http://127.0.0.1:{plan.ports.public}/"
    # Config.keys is the dict method, so read the trait as an item
    assert config.CryptKeeper["keys"] == [bytes.fromhex(fake_secrets["crypt_key"])]


def test_spawner_is_the_course_spawner(config, plan_file):
    assert config.JupyterHub.spawner_class == "coursehub.hub.spawner.CourseLocalSpawner"
    assert config.CourseLocalSpawner.plan_file == plan_file
    assert config.CourseLocalSpawner.python_env == USER_ENV


def test_server_token_scopes_come_from_the_plan_file(config, plan):
    scopes = config.CourseLocalSpawner.server_token_scopes
    assert callable(scopes)
    for name in ("sam", "ines"):
        spawner = SimpleNamespace(user=SimpleNamespace(name=name))
        assert scopes(spawner) == list(plan.people[name].server_token_scopes)
    sam = scopes(SimpleNamespace(user=SimpleNamespace(name="sam")))
    assert not any("services" in s for s in sam)


def test_shared_password_config(tmp_path, fake_secrets):
    plan = derive(parse_site(shared_password_data()), DATA_DIR, isolated=True)
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    passwords = {"user_password": USER_PASSWORD, "admin_password": ADMIN_PASSWORD}
    config = hub_config(plan, str(path), fake_secrets, USER_ENV, passwords)
    assert config.JupyterHub.authenticator_class == (
        "coursehub.hub.auth.CourseSharedPasswordAuthenticator"
    )
    assert config.SharedPasswordAuthenticator.user_password == USER_PASSWORD
    assert config.SharedPasswordAuthenticator.admin_password == ADMIN_PASSWORD
    assert "FirstUseAuthenticator" not in config


# The grader's process.


def test_grader_spec_env_holds_only_its_own_token(plan, fake_secrets):
    spec = grader_spec(plan, "algebra", fake_secrets, USER_ENV, None)
    env = spec.env
    assert env["JUPYTERHUB_USER"] == "grader-algebra"
    assert env["JUPYTERHUB_SERVICE_NAME"] == "algebra"
    assert env["JUPYTERHUB_API_TOKEN"] == fake_secrets["service_token:algebra"]
    others = {k: v for k, v in fake_secrets.items() if k != "service_token:algebra"}
    assert set(others) >= {
        "proxy_auth_token",
        "crypt_key",
        "cookie_secret",
        "automation_token",
        "service_token:biology",
    }
    for name, secret in others.items():
        for key, value in env.items():
            assert secret not in value, f"{name} leaks into {key}"


def test_grader_spec_runs_as_the_grader_account_when_isolated(plan, fake_secrets):
    spec = grader_spec(plan, "algebra", fake_secrets, USER_ENV, None)
    g = plan.courses["algebra"]
    assert spec.account == g.account
    assert spec.account.name == "grader-algebra"
    assert spec.name == "grader-algebra"
    assert spec.cwd == g.account.home
    assert spec.env["HOME"] == g.account.home
    assert spec.argv[0] == f"{USER_ENV}/bin/jupyterhub-singleuser"
    assert f"--ServerApp.port={g.port}" in spec.argv
    assert "--ServerApp.ip=127.0.0.1" in spec.argv
    assert spec.health_url == f"{g.url}/services/algebra/api"


def test_grader_spec_keeps_coursehubs_account_when_not_isolated(site, fake_secrets):
    plan = derive(site, DATA_DIR, isolated=False, owner=(1234, 1234))
    spec = grader_spec(plan, "biology", fake_secrets, USER_ENV, "/usr/lib/libnss_wrapper.so")
    assert spec.account is None
    assert spec.env["NSS_WRAPPER_PASSWD"] == plan.passwd_file("grader-biology")
    assert spec.env["JUPYTERHUB_API_TOKEN"] == fake_secrets["service_token:biology"]


def test_the_org_name_on_the_login_page_is_text_not_markup():
    """JupyterHub renders announcements with `| safe`: the site's org name is escaped."""
    from coursehub.hub.config import login_announcement

    line = login_announcement('Evil <script>alert("x")</script> & Co')
    assert "<script>" not in line
    assert "&lt;script&gt;" in line and "&amp; Co" in line


# -- the escape hatch: the operator's own *.py in jupyterhub_config.d, loaded last


def _hub_config_files(tmp_path, plan):
    """The generated jupyterhub_config.py, read by traitlets' own loader (as the hub
    reads it), with coursehub's `configure` left out: the order of loading is the point."""
    from traitlets.config.loader import PyFileConfigLoader

    from coursehub.hub.config import render_jupyterhub_config

    config_d = tmp_path / "jupyterhub_config.d"
    config_d.mkdir(mode=0o700)
    main = tmp_path / "jupyterhub_config.py"
    text = render_jupyterhub_config(plan.paths.plan_file, "/opt/env", str(config_d))
    # coursehub's part, as configure() would set one value
    text = text.replace(
        "configure(c,", "c.JupyterHub.concurrent_spawn_limit = 100  # coursehub's\n_ = (c,"
    )
    main.write_text(text)

    def load():
        return PyFileConfigLoader(main.name, path=str(tmp_path)).load_config()

    return config_d, load


def test_files_of_jupyterhub_config_d_load_after_coursehubs_in_name_order(tmp_path, plan):
    config_d, load = _hub_config_files(tmp_path, plan)
    (config_d / "20-later.py").write_text("c.JupyterHub.concurrent_spawn_limit = 20\n")
    (config_d / "10-first.py").write_text(
        "c.JupyterHub.concurrent_spawn_limit = 10\nc.JupyterHub.shutdown_on_logout = True\n"
    )
    (config_d / "notes.txt").write_text("c.JupyterHub.concurrent_spawn_limit = 1\n")
    c = load()
    assert c.JupyterHub.concurrent_spawn_limit == 20  # the last file's word is final
    assert c.JupyterHub.shutdown_on_logout is True
    for f in config_d.iterdir():
        f.unlink()
    assert load().JupyterHub.concurrent_spawn_limit == 100  # nothing there: coursehub's


@pytest.mark.parametrize("unsafe", ["group-writable", "world-writable", "a link", "folder"])
def test_a_file_another_account_could_change_stops_the_hub(tmp_path, plan, unsafe):
    from coursehub.hub.config import UnsafeConfig

    config_d, load = _hub_config_files(tmp_path, plan)
    target = config_d / "50-site.py"
    if unsafe == "a link":
        elsewhere = tmp_path / "elsewhere.py"
        elsewhere.write_text("c.JupyterHub.concurrent_spawn_limit = 1\n")
        target.symlink_to(elsewhere)
    else:
        target.write_text("c.JupyterHub.concurrent_spawn_limit = 1\n")
        mode = {"group-writable": 0o664, "world-writable": 0o646, "folder": 0o644}[unsafe]
        target.chmod(mode)
        if unsafe == "folder":
            config_d.chmod(0o777)
    with pytest.raises(UnsafeConfig, match="jupyterhub_config.d: .*then start again"):
        load()


def test_the_folder_of_jupyterhub_config_d_is_in_the_plan_for_root_only(plan):
    [folder] = [f for f in plan.folders if f.path == plan.paths.hub_config_d]
    assert (folder.uid, folder.mode) == (0, 0o700)
    assert folder.path.startswith(plan.paths.etc + "/")


# -- each update_* function sets its concern on a bare Config


def test_update_functions_each_set_their_own_concern(plan):
    from traitlets.config import Config

    from coursehub.hub.config import update_hub, update_roles, update_services, update_spawner
    from coursehub.secrets import secret_names

    secrets = {n: "ab" * 32 for n in secret_names(list(plan.courses))}
    c = Config()
    update_roles(c, plan)
    assert set(c.JupyterHub) == {"load_groups", "load_roles", "custom_scopes"}
    c = Config()
    update_services(c, plan, secrets)
    assert [s["name"] for s in c.JupyterHub.services] == ["coursehub", *plan.courses]
    assert all(
        s["oauth_redirect_uri"].endswith("/oauth_callback") for s in c.JupyterHub.services[1:]
    )
    c = Config()
    update_hub(c, plan, secrets)
    assert c.JupyterHub.db_url == plan.paths.hub_db_url
    assert c.ConfigurableHTTPProxy.api_url == plan.proxy_api_url
    assert "services" not in c.JupyterHub and "authenticator_class" not in c.JupyterHub
    c = Config()
    update_spawner(c, plan, plan.paths.plan_file, "/opt/env")
    assert c.JupyterHub.spawner_class == "coursehub.hub.spawner.CourseLocalSpawner"
    assert set(c.JupyterHub) == {"spawner_class"}
