"""The grading sandbox itself, without a hub: the exact bubblewrap command coursehub builds,
run as an unprivileged account with a probe program in place of a kernel.

Each property the grading of a student's notebook rests on is checked from inside:
no network (a server listening on the host's loopback is out of reach), nothing of
the host but the system, the submission read-only, a scratch copy that is the only
writable place and is size-limited, no environment, its own processes only, and the
process limit counted per sandbox (two sandboxes and the account's other processes
do not share it).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from coursehub import sandbox

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip("runs the sandbox as an account of its own: needs root", allow_module_level=True)

UID = 64991  # an account of no one's
# the launcher as the servers' environment has it (a checkout may sit in a 0700 home)
USER_ENV = os.environ.get("COURSEHUB_USER_ENV", "/opt/coursehub/user-env")
LAUNCHER = next(Path(USER_ENV).glob("lib/python3*/site-packages/coursehub/sandbox_inside.py"))
LIMITS = sandbox.Limits(notebook_timeout=60, memory=512 << 20, processes=24, disk=8 << 20)

PROBE = textwrap.dedent(
    """
    import ctypes, json, os, socket, sys, time
    out = {"uid": os.getuid(), "cwd": os.getcwd(), "root": sorted(os.listdir("/"))}
    out["env"] = dict(os.environ)
    if os.path.isdir("/proc"):
        out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["scratch"] = sorted(os.listdir("."))
    def attempt(fn):
        try:
            fn()
            return "done"
        except OSError as err:
            return type(err).__name__
    out["write_root"] = attempt(lambda: open("/evil", "w").write("x"))
    out["write_submission"] = attempt(lambda: open("/submission/evil", "w").write("x"))
    out["write_usr"] = attempt(lambda: open("/usr/evil", "w").write("x"))
    out["write_scratch"] = attempt(lambda: open("mine.txt", "w").write("x"))
    out["fill_scratch"] = attempt(lambda: open("big", "wb").write(b"0" * (9 << 20)))
    port = int(sys.argv[1])
    out["write_dev"] = attempt(lambda: open("/dev/evil", "w").write("x"))
    out["fill_shm"] = attempt(lambda: open("/dev/shm/big", "wb").write(b"0" * (80 << 20)))
    out["memfd"] = attempt(lambda: os.memfd_create("hold"))
    out["setsid"] = attempt(os.setsid)
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        def run():
            if getattr(libc, name)(*args) == -1:
                raise OSError(ctypes.get_errno(), name)
        return run
    CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
    # a user namespace of its own: capabilities inside it, and every other namespace
    out["unshare_user"] = attempt(call("unshare", CLONE_NEWUSER))
    out["unshare_user_net"] = attempt(call("unshare", CLONE_NEWUSER | CLONE_NEWNET))
    nr = {"x86_64": (56, 435), "aarch64": (220, 435)}[os.uname().machine]
    def clone_user():
        pid = libc.syscall(nr[0], CLONE_NEWUSER | 17, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)  # the child, in a user namespace of its own
        if pid == -1:
            raise OSError(ctypes.get_errno(), "clone")
        os.waitpid(pid, 0)
    out["clone_user"] = attempt(clone_user)
    out["clone3"] = 0 if libc.syscall(nr[1], 0, 0) == 0 else ctypes.get_errno()
    # the kernel's crypto API: with splice, a way to write into files it can only read
    out["af_alg"] = attempt(lambda: socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET).close())
    out["connect"] = attempt(lambda: socket.create_connection(("127.0.0.1", port), 2).close())
    out["memory"] = "done"
    try:
        bytearray(1 << 30)
    except MemoryError:
        out["memory"] = "MemoryError"
    forked = 0
    try:
        for _ in range(int(sys.argv[2])):
            if os.fork() == 0:
                time.sleep(3)
                os._exit(0)
            forked += 1
    except OSError:
        pass
    out["forked"] = forked
    print(json.dumps(out), flush=True)
    """
)


@pytest.fixture
def folders():
    # not under pytest's tmp_path: its parent is root's alone (0700)
    tmp_path = Path(tempfile.mkdtemp(prefix="coursehub-sandbox-", dir="/tmp"))
    tmp_path.chmod(0o755)
    submission = tmp_path / "autograded-ada-ps1"
    submission.mkdir()
    (submission / "ps1.ipynb").write_text("{}")
    (submission / "data.csv").write_text("1,2\n")
    conn = tmp_path / "connection.json.sandbox"
    conn.write_text("{}")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    for p in (tmp_path, submission, *submission.iterdir(), conn, probe):
        os.chown(p, UID, UID)
    yield submission, conn, probe
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def listener():
    """A server on the host's loopback: reachable from the host, not from the sandbox."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    threading.Thread(target=lambda: srv.accept(), daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def run_probe(folders, port: int, forks: int, env: dict | None = None, procfs: bool = True) -> dict:
    submission, conn, probe = folders
    bwrap = sandbox.find_bwrap()
    assert bwrap, "bubblewrap is installed by coursehub's setup"
    read_r, read_w = os.pipe()
    seccomp_r, seccomp_w = os.pipe()
    os.write(seccomp_w, sandbox.seccomp_program())
    os.close(seccomp_w)
    cmd = sandbox.bwrap_argv(
        bwrap,
        kernel_cmd=["/usr/bin/python3", "-I", "/probe.py", str(port), str(forks)],
        submission=str(submission),
        connection_file=str(conn),
        limits=LIMITS,
        env=sandbox.kernel_environment(env or {}),
        info_fd=read_w,
        launcher=LAUNCHER,
        seccomp_fd=seccomp_r,
        procfs=procfs,
    )
    # the probe is shown read-only at /probe.py, like the launcher (before / turns read-only)
    cut = cmd.index("--remount-ro")
    cmd = [*cmd[:cut], "--ro-bind", str(probe), "/probe.py", *cmd[cut:]]
    proc = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        pass_fds=(read_w, seccomp_r),
        env={"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": "must-not-pass"},
        check=False,
    )
    for fd in (read_w, read_r, seccomp_r):
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# With a /proc of its own (one machine), and without (a container whose engine masks parts
# of /proc, as Docker does: the grader containers of a Docker host), where the seccomp
# filter alone refuses nested user namespaces.
@pytest.mark.parametrize("procfs", [True, False], ids=["with-proc", "without-proc"])
def test_the_probe_reaches_only_its_own_sandbox(folders, listener, procfs):
    with socket.create_connection(("127.0.0.1", listener), 2):
        pass  # the host can reach it
    out = run_probe(
        folders, listener, forks=5, env={"NBGRADER_EXECUTION": "autograde"}, procfs=procfs
    )
    assert out["uid"] == UID
    assert out["cwd"] == sandbox.SCRATCH
    # the host's filesystem: the system folders and the sandbox's own, nothing else
    assert set(out["root"]) <= {
        "bin",
        "dev",
        "etc",
        "ipc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "probe.py",
        "run",
        "sbin",
        "scratch",
        "submission",
        "tmp",
        "usr",
    }
    assert "home" not in out["root"] and "srv" not in out["root"] and "root" not in out["root"]
    assert out["scratch"] == ["data.csv", "ps1.ipynb"]  # a copy of the submission
    assert out["write_root"] != "done" and out["write_usr"] != "done"
    assert out["write_submission"] != "done"
    assert out["write_scratch"] == "done"
    assert out["fill_scratch"] == "OSError"  # 9 MiB into an 8 MiB scratch folder
    assert out["write_dev"] != "done"  # /dev is read-only
    assert out["fill_shm"] == "OSError"  # 80 MiB into the 64 MiB /dev/shm
    assert out["memfd"] == "PermissionError"  # memory no limit of a process would count
    assert out["setsid"] == "PermissionError"  # a scheduling group of its own
    assert out["connect"] in ("ConnectionRefusedError", "OSError")
    assert out["memory"] == "MemoryError"
    assert not any("TOKEN" in k or "JUPYTERHUB" in k for k in out["env"])
    assert out["env"]["NBGRADER_EXECUTION"] == "autograde"
    if procfs:
        assert max(out["pids"]) < 10  # its own pid namespace: the host's are not there
    else:
        assert "pids" not in out and "proc" not in out["root"]
    assert out["forked"] == 5
    for attempt in ("unshare_user", "unshare_user_net", "clone_user"):
        assert out[attempt] in ("PermissionError", "OSError"), (attempt, out[attempt])
    assert out["clone3"] == errno.ENOSYS  # the C library falls back to clone
    assert out["af_alg"] == "PermissionError"


def test_the_process_limit_is_per_sandbox(folders, listener):
    """Many processes of the same account outside, and a sandbox that forks to its limit
    beside another: each gets its own budget."""
    outside = [
        subprocess.Popen(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "sleep", "30"]
        )
        for _ in range(LIMITS.processes + 5)
    ]
    try:
        results: list[dict] = []
        workers = [
            threading.Thread(target=lambda: results.append(run_probe(folders, listener, 100)))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(90)
    finally:
        for p in outside:
            p.kill()
            p.wait()
    assert len(results) == 2
    for out in results:
        # stopped by its own limit (the launcher and bwrap's init count too), not at once by
        # the account's 29 other processes
        assert LIMITS.processes - 6 <= out["forked"] < LIMITS.processes, out["forked"]
