"""The kernel provisioner of every grader account: grading kernels run sandboxed.

coursehub starts each course's grader (its server, ``coursehub nbgrader`` and
``coursehub autograde``) with JUPYTER_DEFAULT_PROVISIONER_NAME=coursehub-grading, so
every kernel the grader account starts comes through here. A kernel started while
nbgrader executes a student's notebook (NBGRADER_EXECUTION is set: autograde, and
validate when it runs on the grader side) runs in the bubblewrap sandbox of
coursehub.sandbox; the instructors' own kernels in the grader's notebook start as
usual. nbgrader's configuration cannot turn the sandbox off: this is chosen by the
environment coursehub gives the grader, not by a config file the course owns (a kernel
spec of the grader's own that names another provisioner would bypass it: the instructors,
who can write the grader's home, are trusted with their course).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Integer, List, Unicode

from .. import sandbox
from ..paths import GRADEBOOK

NAME = sandbox.PROVISIONER_NAME
STARTUP_TIMEOUT = 60  # seconds for a grading kernel to listen
GRADING_RUNS = ("autograde", "validate")
_STDERR_KEPT = 8192


class SandboxUnavailable(RuntimeError):
    pass


class GradingProvisioner(LocalProvisioner):
    """LocalProvisioner that starts grading kernels inside coursehub's sandbox."""

    notebook_timeout = Integer(
        sandbox.Limits.notebook_timeout,
        help="Seconds one notebook may run while it is graded (kernel start included); "
        "then its sandbox is stopped and the cells not yet run score nothing.",
    ).tag(config=True)
    memory_limit = Unicode(
        sandbox.format_size(sandbox.Limits.memory),
        help="Address space per process of a grading kernel (512M, 2G): more is a MemoryError.",
    ).tag(config=True)
    process_limit = Integer(
        sandbox.Limits.processes,
        help="Processes and threads a grading kernel may have, its own included.",
    ).tag(config=True)
    disk_limit = Unicode(
        sandbox.format_size(sandbox.Limits.disk),
        help="Size of the scratch copy of the submission a grading kernel may write into.",
    ).tag(config=True)
    readonly_paths = List(
        Unicode(),
        help="More folders of the host a grading kernel may read (shared data sets), read-only.",
    ).tag(config=True)

    sandboxed: bool = False
    stop_reason: str | None = None  # why the sandbox was stopped, when coursehub stopped it

    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(
            notebook_timeout=self.notebook_timeout,
            memory=sandbox.parse_size(self.memory_limit),
            processes=self.process_limit,
            disk=sandbox.parse_size(self.disk_limit),
        )

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        env = kwargs.get("env") or os.environ
        self.sandboxed = env.get("NBGRADER_EXECUTION") in GRADING_RUNS
        if self.sandboxed:
            km = self.parent
            # the kernel's sockets live in the sandbox's own /ipc; the ports are file suffixes
            km.transport = "ipc"
            km.ip = f"{sandbox.IPC}/{self.kernel_id}"
            km.cache_ports = False
            # an interrupt is a message the kernel acts on inside, not a signal to bwrap
            self.kernel_spec.interrupt_mode = "message"
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        if not self.sandboxed:
            return await super().launch_kernel(cmd, **kwargs)
        bwrap = _bwrap()
        submission = _submission_folder(kwargs)
        host_file = os.path.realpath(self.parent.connection_file)
        copy = self._copy_connection_file(host_file)
        kernel_cmd = _sandboxed_command(cmd, host_file)
        limits = self.limits()
        path_env = _kernel_path(kernel_cmd)
        info_r, info_w = os.pipe()
        passed = [info_w]
        seccomp_r = _seccomp_pipe()
        if seccomp_r is not None:
            passed.append(seccomp_r)
        procfs = _procfs(bwrap, self.log)
        argv = sandbox.bwrap_argv(
            bwrap,
            kernel_cmd=kernel_cmd,
            submission=submission,
            connection_file=copy,
            limits=limits,
            env=sandbox.kernel_environment(dict(kwargs.get("env") or os.environ)),
            info_fd=info_w,
            readonly=sandbox.readonly_paths(kernel_cmd, self.readonly_paths),
            path_env=path_env,
            seccomp_fd=seccomp_r,
            procfs=procfs,
        )
        await self._start_bwrap(argv, kwargs, os.path.dirname(host_file), passed)
        child = await self._sandbox_child(info_r)
        self._start_watchdog(limits)
        return await self._connect(child, os.path.dirname(host_file))

    def _copy_connection_file(self, host_file: str) -> str:
        # the sandbox reads its own copy: the manager rewrites its file once the sockets'
        # path as the grader sees them (/proc/PID/root/ipc/...) is known
        copy = f"{host_file}.sandbox"
        with open(host_file, "rb") as src:
            data = src.read()
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self._connection_copy = copy
        return copy

    async def _start_bwrap(
        self, argv: list[str], kwargs: dict[str, Any], runtime_dir: str, passed: list[int]
    ) -> None:
        """Start bwrap with only the pipes it reads and PATH; keep the tail of its stderr."""
        launch = dict(kwargs)
        launch.update(
            cwd=runtime_dir,  # never the student's folder, even outside
            env={"PATH": "/usr/bin:/bin"},
            pass_fds=tuple(passed),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.stop_reason = None
        try:
            await super().launch_kernel(argv, **launch)
        finally:
            for fd in passed:
                os.close(fd)
        self._stderr_tail = bytearray()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    async def _sandbox_child(self, info_r: int) -> int:
        """The sandbox's first process as the host numbers it, once bwrap has set it up."""
        try:
            child = _read_child_pid(info_r, timeout=20)
        finally:
            os.close(info_r)
        if child is None:
            await self.wait()
            raise SandboxUnavailable(f"the grading sandbox did not start: {self.stderr_text()}")
        return child

    def _start_watchdog(self, limits: sandbox.Limits) -> None:
        """Stop the sandbox when the notebook has had its time (kernel start included)."""
        self._started = time.monotonic()
        self._watchdog = threading.Timer(limits.notebook_timeout, self._time_is_up)
        self._watchdog.daemon = True
        self._watchdog.start()

    async def _connect(self, child: int, runtime_dir: str) -> dict[str, Any]:
        """The connection info with the kernel's sockets pinned (see _pin_sockets)."""
        info = dict(self.connection_info)
        try:
            info["ip"] = await self._pin_sockets(child, info, runtime_dir)
        except BaseException:
            await self.cleanup()  # the manager will not: the kernel never started
            raise
        self.connection_info = info
        return info

    async def _pin_sockets(self, child: int, info: dict[str, Any], runtime_dir: str) -> str:
        """Hold the kernel's sockets by their inodes before any student code runs, and give
        the grader side paths to those inodes: the student can write /ipc, and a name there
        swapped for a link later must not take the grader's reconnects anywhere else."""
        ports = [info[f"{name}_port"] for name in ("shell", "iopub", "stdin", "control", "hb")]
        names = [f"{self.kernel_id}-{port}" for port in ports]
        self._pinned: list[int] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(self._pinned) < len(names):
            fd = self._open_socket(child, names[len(self._pinned)])
            if fd is not None:
                self._pinned.append(fd)
                continue
            if self.process is None or self.process.poll() is not None:
                raise self._start_failure()
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"the grading kernel did not start in {STARTUP_TIMEOUT} s")
            await asyncio.sleep(0.02)
        self._pin_dir = tempfile.mkdtemp(prefix="coursehub-kernel-", dir=runtime_dir)
        for port, fd in zip(ports, self._pinned, strict=True):
            os.symlink(f"/proc/{os.getpid()}/fd/{fd}", f"{self._pin_dir}/k-{port}")
        return f"{self._pin_dir}/k"

    @staticmethod
    def _open_socket(child: int, name: str) -> int | None:
        """The kernel's socket `name` in the sandbox's /ipc, or None while it is not there
        (the sandbox is still setting up its mounts, or the kernel has not bound it yet)."""
        try:
            ipc_fd = os.open(f"/proc/{child}/root{sandbox.IPC}", os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=ipc_fd)
        except FileNotFoundError:
            return None
        finally:
            os.close(ipc_fd)
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.close(fd)
            raise SandboxUnavailable(f"{sandbox.IPC}/{name} is not the kernel's socket")
        return fd

    def _start_failure(self) -> Exception:
        """The sandbox ended before its kernel listened: the submission's fault (its copy
        does not fit: the launcher's exit status 3), or the machine's."""
        code = self.process.poll() if self.process is not None else None
        if code == 3:
            return RuntimeError(f"the submission could not be prepared: {self.stderr_text()}")
        return SandboxUnavailable(f"the grading kernel did not start ({self.exit_text()})")

    def _time_is_up(self) -> None:
        self.stop_reason = (
            f"the notebook ran longer than {self.notebook_timeout} s, the time limit for "
            "grading one notebook, and was stopped"
        )
        self.kill_now()

    def kill_now(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()

    def _read_stderr(self) -> None:
        stream = self.process.stderr if self.process else None
        if stream is None:
            return
        while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
            self._stderr_tail += chunk
            del self._stderr_tail[:-_STDERR_KEPT]

    def exit_text(self) -> str:
        proc = self.process
        code = proc.poll() if proc is not None else None
        said = self.stderr_text()
        if code is None:
            return said
        # bwrap reports a command killed by signal N as 128 + N
        signum = -code if code < 0 else code - 128 if code > 128 else None
        how = f"killed by signal {signum}" if signum else f"exit status {code}"
        return how if said == "no message" else f"{how}: {said}"

    def stderr_text(self) -> str:
        text = bytes(getattr(self, "_stderr_tail", b"")).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return " / ".join(lines[-3:]) or "no message"

    async def send_signal(self, signum: int) -> None:
        if self.sandboxed and signum == signal.SIGINT:
            return  # interrupts go as messages (interrupt_mode), never to bwrap itself
        await super().send_signal(signum)

    async def cleanup(self, restart: bool = False) -> None:
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:
            watchdog.cancel()
        self.kill_now()
        for fd in getattr(self, "_pinned", []):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pinned = []
        if getattr(self, "_pin_dir", None):
            shutil.rmtree(self._pin_dir, ignore_errors=True)
            self._pin_dir = None
        copy = getattr(self, "_connection_copy", None)
        if copy:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy)
            self._connection_copy = None
        await super().cleanup(restart=restart)


def _bwrap() -> str:
    bwrap = sandbox.find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "coursehub grades notebooks only in its sandbox, and bubblewrap (bwrap) is not "
            "installed: install Debian's bubblewrap package (coursehub's setup does)"
        )
    return bwrap


_PROCFS: dict[str, bool] = {}


def _procfs(bwrap: str, log: Any) -> bool:
    """Whether this account's sandboxes can have a /proc of their own, found once per
    process. In a container whose engine masks parts of /proc (Docker's default), the
    kernel refuses a new one (bwrap: "Can't mount proc"); only then does the sandbox go
    without /proc, the seccomp filter alone refusing nested user namespaces. Any other
    failure leaves the real start to fail with its own message."""
    if bwrap not in _PROCFS:
        with_proc = _probe(sandbox.probe_argv(bwrap))
        if with_proc is None or sandbox.seccomp_program() is None:
            _PROCFS[bwrap] = True
        elif "mount proc" not in with_proc:
            return True  # another failure (a limit, a timeout): the real start says which
        elif _probe(sandbox.probe_argv(bwrap, procfs=False)) is None:
            log.warning(
                "coursehub grading: no new /proc can be mounted here (%s); grading sandboxes "
                "run without /proc, nested user namespaces refused by their seccomp filter",
                with_proc,
            )
            _PROCFS[bwrap] = False
        else:
            return True
    return _PROCFS[bwrap]


def _probe(argv: list[str]) -> str | None:
    """None when the probe sandbox ran, else what bwrap said."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return (
        None if r.returncode == 0 else (" ".join(r.stderr.split())[:200] or f"exit {r.returncode}")
    )


def _submission_folder(kwargs: dict[str, Any]) -> str:
    """The folder the kernel would have run in, refused when it holds more than a submission."""
    submission = os.path.realpath(kwargs.get("cwd") or os.getcwd())
    if problem := _not_a_submission(submission):
        raise SandboxUnavailable(problem)
    return submission


def _sandboxed_command(cmd: list[str], host_file: str) -> list[str]:
    """The kernel's command, isolated, naming the connection file at its place inside."""
    return [
        sandbox.CONNECTION_FILE if arg == host_file else arg for arg in sandbox.isolated_python(cmd)
    ]


def _kernel_path(kernel_cmd: list[str]) -> str:
    """PATH inside: the kernel's environment's bin first, then the system's."""
    env_root = sandbox.environment_root(kernel_cmd[0])
    return ":".join(
        p for p in (env_root and f"{env_root}/bin", "/usr/local/bin", "/usr/bin", "/bin") if p
    )


def _seccomp_pipe() -> int | None:
    """A pipe holding the seccomp filter for bwrap to read, or None where there is none."""
    program = sandbox.seccomp_program()
    if program is None:
        return None
    seccomp_r, seccomp_w = os.pipe()
    os.write(seccomp_w, program)  # a few hundred bytes: fits in the pipe
    os.close(seccomp_w)
    return seccomp_r


def _not_a_submission(folder: str) -> str | None:
    """The folder a grading kernel runs in is shown to it whole (read-only): refuse one that
    holds more than a notebook's own files (validate run on a notebook outside a folder of
    its own, in the course folder or the grader's home)."""
    home = os.path.realpath(os.path.expanduser("~"))
    course_root = all(os.path.lexists(os.path.join(folder, name)) for name in (GRADEBOOK, "source"))
    if folder in (home, "/") or course_root or os.path.isdir(os.path.join(folder, ".jupyter")):
        return (
            f"{folder} holds more than one submission's files: grade or validate a notebook "
            "in a folder of its own (as submitted/STUDENT/ASSIGNMENT/ is)"
        )
    return None


def _read_child_pid(fd: int, timeout: float) -> int | None:
    """bwrap's --info-fd JSON: the sandbox's first process as the host numbers it."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    return None
