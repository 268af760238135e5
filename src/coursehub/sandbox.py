"""The grading sandbox: how a student's notebook runs when a grader executes it.

Pure builders only (the bubblewrap command line and the limits); the kernel
manager that starts it is coursehub.grading.kernel. The mechanism is bubblewrap
in unprivileged user namespaces: new mount, pid, network, ipc, uts and cgroup
namespaces; a read-only root holding only the system, the kernel's Python
environment and a read-only view of the one submission; a size-limited tmpfs
scratch copy of it as the working folder; no environment but a few plain
variables; limits on processes, memory, file sizes and time. The kernel protocol
runs over Unix sockets inside the sandbox's own tmpfs (``/ipc``), which the grader
side reaches through ``/proc/PID/root``: no folder of the grader's is writable
from inside, and the network namespace has nothing but its own loopback.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# The kernel provisioner (entry point) every grader account's kernels come through.
PROVISIONER_NAME = "coursehub-grading"

# Inside the sandbox: fixed places, nothing named after the host's folders.
SCRATCH = "/scratch"  # the working folder: a copy of the submission, writable
SUBMISSION = "/submission"  # the submission as graded, read-only (copied to SCRATCH)
IPC = "/ipc"  # the kernel's sockets and its connection file
CONNECTION_FILE = f"{IPC}/connection.json"
LAUNCHER = "/run/coursehub-sandbox.py"  # coursehub/sandbox_inside.py, read-only
TMP = "/tmp"  # noqa: S108 - the sandbox's own tmpfs

# What of /etc a Python kernel needs; nothing else of the host's configuration is seen.
_ETC = (
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/ssl/certs",
)
# The top-level system folders: a symlink into /usr on merged-/usr systems, else a folder.
_SYSTEM = ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin", "/usr")

_SIZE = re.compile(r"^([0-9]+)([KMGT]?)$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """'512M', '2G', '1048576' -> bytes (binary units, as Docker and ulimit count them)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text.strip().upper().removesuffix("B") if text else "")
    if not m:
        raise ValueError(f"{text!r} is not a size: write it as 512M, 2G or a number of bytes")
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit] and n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


@dataclass(frozen=True)
class Limits:
    """What one notebook may use while it is graded."""

    cell_timeout: int = 30  # seconds of one cell
    notebook_timeout: int = 300  # seconds of the whole notebook, kernel start included
    memory: int = 2 << 30  # bytes of address space per process
    processes: int = 64  # processes and threads in the sandbox
    disk: int = 512 << 20  # bytes in the scratch folder (and as much again in /tmp)

    def describe(self) -> dict[str, str]:
        return {
            "cell_timeout": f"{self.cell_timeout} s",
            "notebook_timeout": f"{self.notebook_timeout} s",
            "memory": format_size(self.memory),
            "processes": str(self.processes),
            "disk": format_size(self.disk),
        }


def launcher_file() -> str:
    from . import sandbox_inside

    return os.path.abspath(sandbox_inside.__file__)


def find_bwrap() -> str | None:
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap") if os.access(p, os.X_OK)), None
    )


def environment_root(executable: str) -> str | None:
    """The virtual environment an interpreter belongs to (the folder with pyvenv.cfg)."""
    folder = os.path.dirname(os.path.dirname(os.path.abspath(executable)))
    return folder if os.path.isfile(os.path.join(folder, "pyvenv.cfg")) else None


def readonly_paths(kernel_cmd: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Folders of the host the kernel sees read-only, besides the system folders."""
    paths: list[str] = []
    exe = kernel_cmd[0] if kernel_cmd else ""
    for candidate in (environment_root(exe), os.path.dirname(os.path.realpath(exe)), *extra):
        if candidate and not _under_system(candidate) and candidate not in paths:
            paths.append(os.path.abspath(candidate))
    return paths


def _under_system(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == s or real.startswith(s + "/") for s in ("/usr",))


def kernel_environment(passed: dict[str, str]) -> dict[str, str]:
    """All the environment the kernel gets: plain settings, never a token or a path of the
    grader's. `passed` may carry NBGRADER_EXECUTION (notebooks may check it)."""
    env = {
        "HOME": f"{TMP}/home",
        "IPYTHONDIR": f"{TMP}/ipython",
        "MPLCONFIGDIR": f"{TMP}/matplotlib",
        "TMPDIR": TMP,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": "student",
        "LOGNAME": "student",
        "PYTHONDONTWRITEBYTECODE": "1",
        # fewer threads and smaller malloc arenas: they count against the process and
        # memory limits, and the graders run notebooks side by side
        "MALLOC_ARENA_MAX": "2",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if passed.get("NBGRADER_EXECUTION") in ("autograde", "validate"):
        env["NBGRADER_EXECUTION"] = passed["NBGRADER_EXECUTION"]
    return env


def bwrap_argv(
    bwrap: str,
    *,
    kernel_cmd: Sequence[str],
    submission: str,
    connection_file: str,
    limits: Limits,
    env: dict[str, str],
    info_fd: int,
    readonly: Sequence[str] = (),
    path_env: str = "",
    launcher: str | None = None,
    seccomp_fd: int | None = None,
    procfs: bool = True,
) -> list[str]:
    """The whole command that runs `kernel_cmd` sandboxed. `submission` is the folder the
    grader would have run the kernel in; `connection_file` the host's copy of the kernel's
    connection file (shown read-only at CONNECTION_FILE, which kernel_cmd must name);
    `launcher` coursehub/sandbox_inside.py as installed beside the kernel (default: this
    coursehub's); `seccomp_fd` a pipe holding seccomp_program(). `procfs` False where no
    new /proc can be mounted (a container whose engine masks parts of its /proc): the
    sandbox then has no /proc at all, and only the seccomp filter refuses nested user
    namespaces (--disable-userns writes to /proc/sys), so it needs `seccomp_fd`."""
    if not procfs and seccomp_fd is None:
        raise ValueError("a sandbox without /proc needs the seccomp filter")
    argv = [bwrap, *_namespace_args(procfs)]
    argv += _system_binds()
    argv += _host_readonly_binds(readonly)
    argv += _scratch_mounts(limits, procfs)
    argv += _kernel_binds(submission, connection_file, launcher or launcher_file())
    # nothing writable but the tmpfs folders; the kernel starts in its scratch copy, tells
    # the grader its pid on info_fd and gets none of the grader's environment
    argv += [
        "--remount-ro",
        "/",
        "--chdir",
        SCRATCH,
        "--info-fd",
        str(info_fd),
        "--clearenv",
    ]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += _env_args(env, path_env)
    return [*argv, "--", *_inside_argv(kernel_cmd, limits)]


def _namespace_args(procfs: bool = True) -> list[str]:
    """Every namespace new, no privilege, nothing that outlives the grader or types into it."""
    return [
        "--unshare-all",  # user, mount, pid, network, ipc, uts, cgroup
        "--unshare-user",
        # no namespaces of its own inside (the seccomp filter refuses them too)
        *(["--disable-userns"] if procfs else []),
        "--die-with-parent",
        "--new-session",  # no terminal to type into (TIOCSTI)
        "--cap-drop",
        "ALL",
        "--hostname",
        "grading",
    ]


def _host_readonly_binds(readonly: Sequence[str]) -> list[str]:
    """What of /etc a kernel needs (where the host has it), and the kernel's own folders."""
    argv: list[str] = []
    for path in _ETC:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for path in readonly:
        argv += ["--ro-bind", path, path]
    return argv


def _scratch_mounts(limits: Limits, procfs: bool = True) -> list[str]:
    """/proc, /dev, and the sandbox's own size-limited tmpfs folders."""
    return [
        *(["--proc", "/proc"] if procfs else []),
        "--dev",
        "/dev",
        # /dev is a tmpfs of bwrap's, unbounded: /dev/shm gets a size, the rest turns read-only
        "--size",
        str(SHM_SIZE),
        "--tmpfs",
        "/dev/shm",  # noqa: S108 - the sandbox's own tmpfs
        "--remount-ro",
        "/dev",
        "--size",
        str(limits.disk),
        "--tmpfs",
        SCRATCH,
        "--size",
        str(limits.disk),
        "--tmpfs",
        TMP,
        "--size",
        str(1 << 20),
        "--tmpfs",
        IPC,
    ]


def _kernel_binds(submission: str, connection_file: str, launcher: str) -> list[str]:
    """The submission, the connection file and the launcher, each read-only at its place."""
    return [
        "--ro-bind",
        submission,
        SUBMISSION,
        "--ro-bind",
        connection_file,
        CONNECTION_FILE,
        "--ro-bind",
        launcher,
        LAUNCHER,
    ]


def _env_args(env: dict[str, str], path_env: str) -> list[str]:
    """The kernel's whole environment (bwrap cleared the grader's), sorted."""
    argv: list[str] = []
    for key, value in sorted({**env, "PATH": path_env or "/usr/bin:/bin"}.items()):
        argv += ["--setenv", key, value]
    return argv


def _inside_argv(kernel_cmd: Sequence[str], limits: Limits) -> list[str]:
    """The launcher inside, isolated, that sets the limits and then runs the kernel."""
    python = kernel_cmd[0]
    return [
        python,
        "-I",
        "-S",
        LAUNCHER,
        "--nproc",
        str(limits.processes),
        "--memory",
        str(limits.memory),
        "--fsize",
        str(limits.disk),
        "--cpu",
        str(limits.notebook_timeout + 5),
        "--",
        *kernel_cmd,
    ]


def _system_binds() -> list[str]:
    """The system folders as the host has them: links into /usr as links, folders read-only."""
    argv: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    return argv


def probe_argv(bwrap: str, procfs: bool = True) -> list[str]:
    """The smallest sandbox of the same kind: whether this account can start one here."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", *_system_binds()]
    if procfs:
        argv += ["--disable-userns", "--proc", "/proc"]
    return [*argv, "--dev", "/dev", "--tmpfs", TMP, "--", "true"]


# The IPython kernel, started isolated (-I: no PYTHONPATH, no user site, not the working
# folder on sys.path), so that a student's file named like a module the kernel loads at start
# (ipykernel_launcher.py, IPython/) is not run as the kernel; the working folder goes on
# sys.path once the kernel is loaded, so the submission's own modules import as they did.
_KERNEL_MAIN = (
    "import sys; from ipykernel import kernelapp; sys.path.insert(0, ''); "
    "kernelapp.launch_new_instance()"
)


def isolated_python(kernel_cmd: Sequence[str]) -> list[str]:
    """`python -m ipykernel_launcher ARGS` as `python -I -c KERNEL_MAIN ARGS`; any other
    Python kernel command gets -I; other kernels are left as they are."""
    cmd = list(kernel_cmd)
    if not (len(cmd) > 1 and os.path.basename(cmd[0]).startswith("python")):
        return cmd
    if cmd[1:3] == ["-m", "ipykernel_launcher"]:
        return [cmd[0], "-I", "-c", _KERNEL_MAIN, *cmd[3:]]
    return [cmd[0], "-I", *cmd[1:]]


# ---- seccomp: system calls a graded notebook has no use for ------------------------------
# memfd and SysV shared memory (memory no limit of a process counts), the kernel keyring
# (shared with the account's other processes), setsid (each new session is a scheduling
# group of its own: many would starve the notebooks graded beside it), kernel interfaces
# with a record of holes (userfaultfd, perf, bpf, io_uring), and joining other namespaces
# (setns). Refused with EPERM.
_DENIED = {
    "x86_64": {
        "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "keyctl": 250,
        "add_key": 248, "request_key": 249, "setsid": 112, "userfaultfd": 323,
        "perf_event_open": 298, "bpf": 321, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "setns": 308,
    },
    "aarch64": {
        "memfd_create": 279, "memfd_secret": 447, "shmget": 194, "keyctl": 219,
        "add_key": 217, "request_key": 218, "setsid": 157, "userfaultfd": 282,
        "perf_event_open": 241, "bpf": 280, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "setns": 268,
    },
}  # fmt: skip
# New user namespaces (the way to every other kind of namespace and to a kernel's
# capability checks) are refused by their flag: clone and unshare take it in their first
# argument; clone3 takes it in memory a filter cannot read, so clone3 answers ENOSYS and
# the C library falls back to clone, as it does under Docker's and systemd's filters.
_NAMESPACE_CALLS = {
    "x86_64": {"clone": 56, "unshare": 272, "clone3": 435},
    "aarch64": {"clone": 220, "unshare": 97, "clone3": 435},
}
CLONE_NEWUSER = 0x10000000
# Socket families a notebook has no use for and the kernel has a record of holes in: the
# kernel's crypto API (AF_ALG, with splice a way to write into the page cache of files it
# can only read) and VM sockets (AF_VSOCK). Refused by socket()'s first argument.
_SOCKET_CALL = {"x86_64": 41, "aarch64": 198}
DENIED_FAMILIES = {"AF_ALG": 38, "AF_VSOCK": 40}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000
SHM_SIZE = 64 << 20  # /dev/shm (multiprocessing's semaphores and small buffers)

# classic BPF: opcodes, seccomp_data offsets and return values
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_NR, _ARCH, _ARG0 = 0, 4, 16  # arguments are 64-bit: the low word first (little-endian)
ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp filter (what bwrap --seccomp reads) refusing _DENIED, new
    user namespaces and sockets of DENIED_FAMILIES with EPERM and clone3 with ENOSYS; any other architecture's system
    calls (i386 on x86_64, x32) are refused too. None on a machine coursehub has no table
    for."""
    machine = machine or platform.machine()
    if machine not in _DENIED:
        return None
    ns = _NAMESPACE_CALLS[machine]
    # (opcode, true target, false target, k): targets are labels or None (next)
    prog: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _ARCH),
        (_JEQ_K, None, "eperm", _AUDIT_ARCH[machine]),
        (_LD_W_ABS, None, None, _NR),
    ]
    if machine == "x86_64":
        prog.append((_JGE_K, "eperm", None, _X32_BIT))
    prog += [(_JEQ_K, "eperm", None, nr) for nr in sorted(_DENIED[machine].values())]
    prog.append((_JEQ_K, "enosys", None, ns["clone3"]))
    prog.append((_JEQ_K, "family", None, _SOCKET_CALL[machine]))
    prog.append((_JEQ_K, "flags", None, ns["clone"]))
    prog.append((_JEQ_K, "flags", "allow", ns["unshare"]))
    labels = {"flags": len(prog)}
    prog += [(_LD_W_ABS, None, None, _ARG0), (_JSET_K, "eperm", "allow", CLONE_NEWUSER)]
    labels["family"] = len(prog)
    prog.append((_LD_W_ABS, None, None, _ARG0))
    prog += [(_JEQ_K, "eperm", None, family) for family in sorted(DENIED_FAMILIES.values())]
    prog.append((_JEQ_K, "allow", "allow", 0))  # an unconditional jump to ALLOW
    for name, value in (("allow", ALLOW), ("eperm", EPERM), ("enosys", ENOSYS)):
        labels[name] = len(prog)
        prog.append((_RET_K, None, None, value))

    def offset(pc: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - pc - 1

    return b"".join(
        struct.pack("=HBBI", code, offset(pc, jt), offset(pc, jf), k)
        for pc, (code, jt, jf, k) in enumerate(prog)
    )
