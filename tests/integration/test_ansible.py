"""The provisioning playbook (deploy/ansible): syntax, ansible-lint, and real runs.

The runs go against this machine (`-i localhost, -c local`) with every path under
a temporary folder, and skip the tags `docker` (installing Docker, building and
starting the stack: those run for real in test_docker_host.py, where the tests'
Docker engine is) and `systemd` (enabling and starting the unit: no systemd runs as
PID 1 here). Everything else runs for real:
Debian packages, coursehub built from this checkout and installed into a fresh
venv, the site file, `coursehub render compose`, `prepare-host.sh`,
configurable-http-proxy from npm, and the systemd unit, checked by
`systemd-analyze verify`.

Installing coursehub into a fresh venv takes about 40 s: pip gets the locked
versions of requirements/constraints.txt from its cache. With the three runs
after it (about 25 s each) that stays within `make test`, so the test installs
from a real source folder, as a host gets it, rather than from a shortcut.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from coursehub.plan import Plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
BIN = Path(sys.executable).parent  # ansible-playbook and ansible-lint of this venv

SITE = {
    "org": "Ansible University",
    "auth": {"type": "first-use", "min_password_length": 8},
    "admins": ["ada"],
    "people": ["grace", "alan", "barbara"],
    "courses": [
        {
            "id": "intro101",
            "title": "Introduction to Programming",
            "instructors": ["grace"],
            "students": ["alan", "barbara"],
        },
        {"id": "stats2", "title": "Statistics 2", "instructors": ["grace"], "students": ["alan"]},
    ],
}

RUN_TIMEOUT = 600


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
    )
    return env


def _run(args: list[str], cwd: Path = ANSIBLE_DIR) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def task_results(output: str) -> dict[str, set[str]]:
    """Each task's name -> the statuses it printed (ok, changed, skipping, failed)."""
    results: dict[str, set[str]] = {}
    task = None
    for line in output.splitlines():
        m = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\] \**$", line)
        if m:
            task = m.group(1)
            results.setdefault(task, set())
            continue
        m = re.match(r"^(ok|changed|skipping|fatal|failed): \[", line)
        if m and task is not None:
            results[task].add(m.group(1))
    return results


def recap(output: str) -> dict[str, int]:
    m = re.search(r"^localhost\s+:\s+(.*)$", output, re.MULTILINE)
    assert m, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def test_syntax_check():
    r = _run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "provisioning.yml"]
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ansible_lint_production_profile_without_skips():
    config = yaml.safe_load((ANSIBLE_DIR / ".ansible-lint").read_text())
    assert config["profile"] == "production"
    # nothing hidden: no rule skipped or downgraded to a warning
    assert not {"skip_list", "warn_list", "exclude_paths", "mock_modules", "mock_roles"} & set(
        config
    )
    r = _run([str(BIN / "ansible-lint"), "-c", ".ansible-lint", "--format=pep8"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out, out
    assert "0 failure(s), 0 warning(s)" in out, out


def test_every_variable_has_a_default_with_a_comment():
    text = (ANSIBLE_DIR / "group_vars" / "all.yml").read_text()
    defaults = yaml.safe_load(text)
    used = set()
    for path in ANSIBLE_DIR.rglob("*"):
        if path.suffix in (".yml", ".j2") and path.name != "all.yml":
            used |= set(re.findall(r"\b(coursehub_[a-z_]+|org_name)\b", path.read_text()))
    # variables the roles register or set themselves are not settings
    registered = set()
    for path in (ANSIBLE_DIR / "roles").rglob("*.yml"):
        body = path.read_text()
        registered |= set(re.findall(r"register: (coursehub_[a-z_]+)", body))
        registered |= set(re.findall(r"^\s+(coursehub_[a-z_]+):", body, re.MULTILINE))
    settings = used - registered
    assert settings - set(defaults) == set(), "used but without a default in group_vars/all.yml"
    # and no default that nothing reads (the roles, or another default's value)
    in_defaults = set(re.findall(r"\{\{[^}]*?\b(coursehub_[a-z_]+|org_name)\b", text))
    assert set(defaults) - settings - in_defaults == set(), "defaults that nothing uses"
    for name in [
        "org_name",
        "coursehub_target",
        "coursehub_site_file",
        "coursehub_site",
        "coursehub_images",
        "coursehub_network",
        "coursehub_root",
        "coursehub_source",
    ]:
        assert name in defaults
    # each variable has a comment above it, or shares the one of its group (no blank line)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            block = []
            for above in reversed(lines[:i]):
                if not above.strip():
                    break
                block.append(above)
            assert any(b.startswith("#") for b in block), f"no comment above {line!r}"
    assert defaults["coursehub_target"] == "compose"


def _role_tasks() -> dict[str, dict]:
    """'role : task name' -> the task, for every task of every role (blocks opened)."""
    tasks = {}

    def walk(role: str, items: list[dict]) -> None:
        for task in items:
            if "block" in task:
                walk(role, task["block"])
            else:
                tasks[f"{role} : {task['name']}"] = task

    for path in sorted((ANSIBLE_DIR / "roles").glob("*/tasks/main.yml")):
        walk(path.parent.parent.name, yaml.safe_load(path.read_text()))
    return tasks


def test_docker_and_systemd_tasks_carry_their_tags():
    """What the local runs skip is exactly what needs a Docker engine or systemd."""
    r = _run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "provisioning.yml", "--list-tasks"]
    )
    assert r.returncode == 0, r.stdout + r.stderr
    listed = {
        m.group(1): set(filter(None, re.split(r",\s*", m.group(2))))
        for m in re.finditer(r"^\s+(.+?)\tTAGS: \[(.*)\]$", r.stdout, re.MULTILINE)
    }
    tasks = _role_tasks()
    assert tasks, "no role task found"
    assert set(tasks) <= set(listed), "every role task is in the playbook"
    for name, task in tasks.items():
        tags = listed[name]
        module = next(k for k in task if k.startswith("ansible.builtin."))
        argv = (task[module].get("argv") or [""]) if isinstance(task[module], dict) else [""]
        uses_systemd = module == "ansible.builtin.systemd_service"
        uses_docker = name.startswith("docker_host : ") or (
            module == "ansible.builtin.command"
            and (
                argv[0] == "docker"
                or "coursehub_compose_command" in str(argv)
                or str(argv[0]).endswith("/start.sh")
            )
        )
        assert ("systemd" in tags) == uses_systemd, name
        assert ("docker" in tags) == uses_docker, name


def test_hosts_example_is_an_inventory():
    r = _run([str(BIN / "ansible-inventory"), "-i", "hosts.example", "--list"])
    assert r.returncode == 0, r.stderr
    inventory = json.loads(r.stdout)
    assert inventory["coursehub"]["hosts"] == ["hub.example.edu"]
    # group_vars/all.yml reaches the hosts of the inventory
    assert inventory["_meta"]["hostvars"]["hub.example.edu"]["coursehub_target"] == "compose"


# --- real runs on this machine ---------------------------------------------------


def _source_snapshot(dest: Path) -> Path:
    """The checkout's package as it is now (other work in the tree may change
    while the test runs; the idempotency check needs a source that does not)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    (dest / "requirements").mkdir()
    shutil.copy2(ROOT / "requirements" / "constraints.txt", dest / "requirements")
    return dest


class Host:
    """The temporary places one playbook run provisions on this machine."""

    def __init__(self, base: Path):
        self.base = base
        self.install = base / "opt" / "coursehub"
        self.venv = self.install / "venv"
        self.config = base / "etc" / "coursehub"
        self.site = self.config / "site.yaml"
        self.root = base / "root"
        self.compose = self.install / "compose"
        self.data = base / "srv" / "coursehub"
        self.units = base / "etc" / "systemd" / "system"
        self.unit = self.units / "coursehub.service"

    def extra_vars(self, target: str, source: Path) -> dict:
        return {
            "org_name": "myedu",
            "coursehub_target": target,
            "coursehub_source": str(source),
            "coursehub_constraints_file": str(source / "requirements" / "constraints.txt"),
            "coursehub_install_dir": str(self.install),
            "coursehub_config_dir": str(self.config),
            "coursehub_root": str(self.root),
            "coursehub_data_dir": str(self.data),
            "coursehub_unit_dir": str(self.units),
            # The tests run as root already, and this machine has no sudo.
            "ansible_become": False,
            # The host's own Python, as on Ubuntu (not whatever python3 PATH finds first).
            "ansible_python_interpreter": "/usr/bin/python3",
            # The packages are here already (make setup installs them): do not refresh
            # apt's lists of this machine at every run.
            "coursehub_apt_cache_valid_time": 10 * 365 * 24 * 3600,
        }


def build_wheel(source: Path, dest: Path) -> Path:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(dest),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = dest.glob("coursehub-*.whl")
    return wheel


def provision(
    host: Host,
    target: str,
    source: Path,
    site: Path | dict,
    wheel: Path | None = None,
    skip_tags: str = "docker,systemd",
    **more_vars,
) -> str:
    """One run: the site from a file on the control machine or inline (coursehub_site);
    coursehub from the source folder, or from `wheel` when given."""
    extra = {**host.extra_vars(target, source), **more_vars}
    if isinstance(site, dict):
        extra["coursehub_site"] = site
    else:
        extra["coursehub_site_file"] = str(site)
    if wheel is not None:
        extra["coursehub_source"] = str(wheel)
    vars_file = host.base / f"vars-{target}.json"
    vars_file.write_text(json.dumps(extra))
    r = _run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "provisioning.yml",
            "--skip-tags",
            skip_tags,
            "--extra-vars",
            f"@{vars_file}",
        ]
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    return out


class Runs:
    """The outputs of the playbook runs, in order, on one temporary host."""

    def __init__(self, host: Host, **outputs: str):
        self.host = host
        self.__dict__.update(outputs)


MARK = "# a new build of the same version"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """compose and compose again, with the site inline and coursehub from the source
    folder; then local and local again, with the site file and a wheel of the changed
    source (the same version, a new build)."""
    if os.geteuid() != 0:
        pytest.skip("prepare-host.sh and the install set owners: they need root")
    base = tmp_path_factory.mktemp("ansible-host")
    source = _source_snapshot(base / "source")
    site_file = base / "control" / "site.yaml"
    site_file.parent.mkdir()
    site_file.write_text(yaml.safe_dump(SITE, sort_keys=False))
    host = Host(base)
    host.units.mkdir(parents=True)  # /etc/systemd/system exists on every host
    compose = provision(host, "compose", source, SITE)
    compose_again = provision(host, "compose", source, SITE)
    # A wheel this time (the other kind of coursehub_source), of a changed source.
    with (source / "src" / "coursehub" / "__init__.py").open("a") as f:
        f.write(f"{MARK}\n")
    wheel = build_wheel(source, base / "dist")
    local = provision(host, "local", source, site_file, wheel)
    local_again = provision(host, "local", source, site_file, wheel)
    return Runs(
        host,
        compose=compose,
        compose_again=compose_again,
        local=local,
        local_again=local_again,
    )


def test_coursehub_runs_from_its_own_venv(runs):
    host = runs.host
    r = subprocess.run(
        [str(host.venv / "bin" / "coursehub"), "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("coursehub "), r.stderr
    where = subprocess.run(
        [str(host.venv / "bin" / "python"), "-c", "import coursehub; print(coursehub.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    # installed from a wheel, not linked to the checkout
    assert where.stdout.strip().startswith(str(host.venv)), where.stdout + where.stderr
    # at the locked versions
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    freeze = subprocess.run(
        [str(host.venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True
    ).stdout
    installed = dict(line.split("==") for line in freeze.splitlines() if "==" in line)
    assert installed["jupyterhub"] == pins["jupyterhub"]
    assert installed["nbgrader"] == pins["nbgrader"]


def test_site_file_on_the_host(runs):
    host = runs.host
    st = host.site.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    written = yaml.safe_load(host.site.read_text())
    # the site file as given, and (last run: local target) no docker section added
    assert written == SITE


def test_render_wrote_the_compose_folder_with_private_env_files(runs):
    host = runs.host
    assert task_results(runs.compose)[
        "compose_stack : Render docker-compose.yml, Dockerfiles, env files and scripts from the site file"
    ] == {"changed"}
    for name in (
        "docker-compose.yml",
        "Dockerfile.hub",
        "Dockerfile.base",
        "Dockerfile.student",
        "Dockerfile.instructor",
        "Dockerfile.grader",
        "Dockerfile.standard",
        "jupyterhub_config.py",
        "prepare-host.sh",
        "start.sh",
    ):
        assert (host.compose / name).is_file(), name
    env_files = sorted(p.name for p in host.compose.glob("env.*"))
    assert {"env.jhub", "env.service.intro101", "env.service.stats2"} <= set(env_files)
    for name in env_files:
        st = (host.compose / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, name
    # the playbook's images and network reached the compose file, under the host root
    compose_file = yaml.safe_load((host.compose / "docker-compose.yml").read_text())
    assert set(compose_file["services"]) >= {"proxy", "jupyterhub", "intro101", "stats2"}
    assert compose_file["services"]["intro101"]["image"] == "myedu/notebook:grader"
    assert compose_file["networks"]["jupyter-network"]["external"] is True
    assert str(host.root) in compose_file["services"]["jupyterhub"]["command"][-1]
    assert "DOCKER_LEARNER_IMAGE=myedu/notebook:learner" in (host.compose / "env.jhub").read_text()
    # What the docker-tagged tasks run (for real in test_docker_host.py): start.sh,
    # executable, and the service the playbook restarts to load a new Plan.
    assert os.access(host.compose / "start.sh", os.X_OK)
    restart = _role_tasks()["compose_stack : Restart the hub to load the new Plan"]
    argv = restart["ansible.builtin.command"]["argv"]
    defaults = yaml.safe_load((ANSIBLE_DIR / "group_vars" / "all.yml").read_text())
    for source, compose in [
        ("docker", ["docker", "compose"]),
        ("distribution", ["docker-compose"]),
    ]:
        env = jinja2.Environment()  # noqa: S701 - a command line, not HTML
        command = env.from_string(defaults["coursehub_compose_command"]).render(
            coursehub_docker_source=source
        )
        expr = argv.strip().removeprefix("{{").removesuffix("}}")
        got = env.compile_expression(expr)(coursehub_compose_command=command)
        assert got == [*compose, "restart", "jupyterhub"], source
    assert "jupyterhub" in compose_file["services"]


def test_prepare_host_made_every_folder_of_the_plan_with_its_owner_and_mode(runs):
    host = runs.host
    plan = Plan.from_json((host.root / "srv/jupyterhub/state/plan.json").read_text())
    assert plan.layout.root.rstrip("/") == str(host.root)
    assert plan.folders, "the Plan lists the host folders"
    for folder in plan.folders:
        st = os.stat(folder.path)
        assert stat.S_ISDIR(st.st_mode), folder.path
        assert (st.st_uid, st.st_gid) == (folder.uid, folder.gid), folder.path
        assert stat.S_IMODE(st.st_mode) == folder.mode, folder.path
    # the ones that keep students apart, by name
    grader = plan.courses["intro101"].account
    home = host.root / "home" / "grader-intro101"
    assert (home.stat().st_uid, stat.S_IMODE(home.stat().st_mode)) == (grader.uid, 0o700)
    alan = plan.people["alan"].account
    inbound = host.root / "srv/nbgrader/exchange/intro101/inbound/alan"
    assert (inbound.stat().st_uid, stat.S_IMODE(inbound.stat().st_mode)) == (alan.uid, 0o2750)
    assert (host.root / "etc/jupyterhub/jupyterhub_config.py").is_file()


def test_a_second_run_changes_nothing(runs):
    assert recap(runs.compose_again)["changed"] == 0, runs.compose_again[-6000:]
    assert recap(runs.local_again)["changed"] == 0, runs.local_again[-6000:]
    results = task_results(runs.compose_again)
    assert results, runs.compose_again[-3000:]  # the tasks that ran were read
    # the Docker and systemd tasks were left out, not failed
    assert "compose_stack : Build the images and start the stack (start.sh)" not in results
    assert "docker_host : Install Docker Engine and the Compose plugin" not in results


def test_a_new_build_of_the_same_version_replaces_coursehub_alone(runs):
    # the compose runs built a wheel of the source folder; the local runs took the wheel
    assert task_results(runs.compose)["coursehub : Build the wheel with pip"] == {"ok"}
    results = task_results(runs.local)
    assert results["coursehub : Build the wheel with pip"] == {"skipping"}
    assert results["coursehub : Copy coursehub to the host"] == {"changed"}
    assert results["coursehub : Install coursehub and its dependencies into the venv"] == {"ok"}
    assert results[
        "coursehub : Reinstall coursehub alone when a new build of the same version arrived"
    ] == {"changed"}
    installed = subprocess.run(
        [
            str(runs.host.venv / "bin" / "python"),
            "-c",
            "import coursehub; print(coursehub.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()
    assert Path(installed).read_text().endswith(f"{MARK}\n")


def test_local_target_proxy_and_data_folder(runs):
    host, local = runs.host, runs.local
    proxy = host.venv / "bin" / "configurable-http-proxy"
    assert proxy.is_symlink()
    r = subprocess.run([str(proxy), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and re.match(r"^\d+\.\d+\.\d+", r.stdout.strip()), r.stderr
    st = host.data.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0
    results = task_results(local)
    # the compose role did nothing for the local target
    assert results[
        "compose_stack : Render docker-compose.yml, Dockerfiles, env files and scripts from the site file"
    ] == {"skipping"}
    assert "embedded : Start coursehub and enable it at boot" not in results  # tag systemd


def test_local_target_systemd_unit(runs):
    host = runs.host
    unit = host.unit.read_text()
    assert stat.S_IMODE(host.unit.stat().st_mode) == 0o644
    if shutil.which("systemd-analyze"):
        r = subprocess.run(
            ["systemd-analyze", "verify", str(host.unit)], capture_output=True, text=True
        )
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # systemd's keys are case-sensitive
    parsed.read_string(unit)
    service = parsed["Service"]
    coursehub = str(host.venv / "bin" / "coursehub")
    common = [
        "--site",
        str(host.site),
        "--data-dir",
        str(host.data),
        "--user-env",
        str(host.venv),
    ]
    start = service["ExecStart"].split()
    assert start[:2] == [coursehub, "up"] and start[2:8] == common
    assert "--detach" not in start  # systemd supervises the foreground process
    reload = service["ExecReload"].split()
    assert reload[:2] == [coursehub, "up"] and reload[2:8] == common and "--detach" in reload
    assert service["Type"] == "simple"
    assert service["KillMode"] == "mixed"  # coursehub stops its children itself on SIGTERM
    assert service["Restart"] == "on-failure"
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in parsed["Unit"]["After"]
    # every path in the unit exists on the host
    for path in (coursehub, str(host.site), str(host.venv)):
        assert Path(path).exists(), path
