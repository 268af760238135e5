"""The seccomp profile of the grader containers of a Docker host.

A grader grades every notebook in coursehub's bubblewrap sandbox, which makes a user
namespace and mounts inside it. Docker's default profile refuses both to a container
without CAP_SYS_ADMIN, so the graders get this profile instead: everything Docker's
default lets through, namespaces and mounts too, and still refused the system calls no
grader has a use for (modules, kexec, the keyring, bpf, perf, io_uring, clocks, swap,
the kernel log, joining another namespace, the kernel's crypto API and VM sockets). The grader runs with no capability and no-new-privileges, so
what a call needs a capability for stays refused by the kernel all the same; the
sandbox then puts its own, stricter filter on the notebook (coursehub.sandbox).
"""

from __future__ import annotations

import json

from ...sandbox import DENIED_FAMILIES

FILE = "grader-seccomp.json"  # in the rendered folder, read by compose when it starts one

_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "get_kernel_syms", "init_module", "io_uring_enter",
    "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mbind", "migrate_pages", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open",
    "query_module", "quotactl", "quotactl_fd", "reboot", "request_key", "set_mempolicy",
    "setns", "settimeofday", "stime", "swapoff", "swapon", "syslog", "sysfs", "_sysctl",
    "umount", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)  # fmt: skip
EPERM = 1
ENOSYS = 38


def grader_profile() -> dict:
    """The profile as the engine reads it (what `--security-opt seccomp=FILE` takes)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": sorted(_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
            # its flags are in memory a filter cannot read: the C library falls back to clone
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            *(
                {
                    "names": ["socket"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    "args": [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}],
                }
                # the families the grading sandbox's own filter refuses
                for family in sorted(DENIED_FAMILIES.values())
            ),
        ],
    }


def grader_profile_json() -> str:
    return json.dumps(grader_profile(), indent=2, sort_keys=True) + "\n"


# What a grader service adds to its container's security options: the profile above and
# no AppArmor profile (Docker's docker-default refuses mount, which the sandbox needs).
SECURITY_OPT = (f"seccomp=./{FILE}", "apparmor=unconfined")
