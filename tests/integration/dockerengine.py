"""A Docker engine for the tests, and the base image the stack is built FROM.

No container registry is reachable here, so nothing is pulled: the base is made
with Debian's debootstrap (bookworm, minbase) and `docker import`, then Python 3,
its venv module, Node.js and npm are installed on top in a `docker build`. Every
coursehub image builds FROM it (the site file's docker.base_images), which is what
a site with its own hardened base or mirror does.

When no engine answers, one is started with a data root of its own and stopped,
with everything it holds, at the end of the run. An engine that was already
running is used and left running; what the tests made on it is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SOCKET = "/var/run/docker.sock"  # the rendered hub mounts it by this path
DATA_ROOT = Path("/var/lib/coursehub-test-docker")
EXEC_ROOT = Path("/run/coursehub-test-docker")
PIDFILE = Path("/run/coursehub-test-docker.pid")
MINBASE = "coursehub-test/minbase:bookworm"
BASE = "coursehub-test/base:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR = "http://deb.debian.org/debian"

BASE_DOCKERFILE = f"""\
FROM {MINBASE}
RUN export DEBIAN_FRONTEND=noninteractive \\
    && apt-get update --yes \\
    && apt-get install --yes --no-install-recommends \\
        ca-certificates python3 python3-venv nodejs npm \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists/*
# this machine's certificate authorities, which its registries' TLS needs
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
"""


def docker(
    *args: str, timeout: float = 600, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def answers() -> bool:
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Engine:
    started: bool  # by the tests: stopped and its data root removed at the end
    log: Path
    process: subprocess.Popen | None = None
    images: list[str] = field(default_factory=list)  # made by the tests, removed at the end

    def logs(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no engine log)"


def start() -> Engine:
    """The engine the tests use: the one running, or one started here."""
    log = Path(tempfile.mkdtemp(prefix="coursehub-dockerd-", dir="/tmp")) / "dockerd.log"
    if answers():
        return Engine(started=False, log=log)
    if not shutil.which("dockerd"):
        raise AssertionError("dockerd is not installed: 'make setup' installs Debian's docker.io")
    DATA_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(DATA_ROOT),
                "--exec-root", str(EXEC_ROOT),
                "--pidfile", str(PIDFILE),
                "--host", f"unix://{SOCKET}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    engine = Engine(started=True, log=log, process=process)
    deadline = time.monotonic() + 60
    while not answers():
        if process.poll() is not None or time.monotonic() > deadline:
            logs = engine.logs()
            stop(engine)
            raise AssertionError(f"dockerd did not start:\n{logs}")
        time.sleep(0.5)
    return engine


def stop(engine: Engine) -> None:
    """Remove what the tests made; stop an engine they started, with its data root."""
    for image in engine.images:
        docker("image", "rm", "--force", image, check=False, timeout=120)
    if not engine.started or engine.process is None:
        shutil.rmtree(engine.log.parent, ignore_errors=True)
        return
    engine.process.terminate()
    try:
        engine.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        engine.process.kill()
        engine.process.wait(timeout=30)
    subprocess.run(["umount", "-R", str(EXEC_ROOT)], capture_output=True, check=False)
    shutil.rmtree(EXEC_ROOT, ignore_errors=True)
    subprocess.run(["umount", "-R", str(DATA_ROOT)], capture_output=True, check=False)
    shutil.rmtree(DATA_ROOT, ignore_errors=True)
    shutil.rmtree(engine.log.parent, ignore_errors=True)


def has_image(name: str) -> bool:
    return docker("image", "inspect", name, check=False, timeout=30).returncode == 0


def base_image(engine: Engine) -> str:
    """A Debian bookworm image with python3, python3-venv, nodejs and npm, made here."""
    if has_image(BASE):
        return BASE
    work = Path(tempfile.mkdtemp(prefix="coursehub-base-", dir="/tmp"))
    try:
        if not has_image(MINBASE):
            rootfs = work / "rootfs"
            # npm's configuration step fails inside debootstrap: a bare minbase first
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if proc.returncode != 0:
                raise AssertionError(f"debootstrap failed:\n{proc.stdout[-3000:]}\n{proc.stderr}")
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            docker("import", "-", MINBASE, stdin=tar.stdout, timeout=300)
            tar.wait(timeout=60)
            engine.images.append(MINBASE)
        context = work / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(BASE_DOCKERFILE)
        shutil.copy(CA_BUNDLE, context / "ca-certificates.crt")
        docker("build", "--tag", BASE, str(context), timeout=900, env=build_env())
        engine.images.append(BASE)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return BASE


def build_env() -> dict[str, str]:
    """The classic builder, as Debian's engine 20.10 has it (no BuildKit daemon)."""
    return {**os.environ, "DOCKER_BUILDKIT": "0"}
