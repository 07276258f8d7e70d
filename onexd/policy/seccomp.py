"""The seccomp floor: syscalls no job profile may let through, and the check of a profile against it. Pure.

The reference is Docker's default profile (moby `profiles/seccomp/default.json`): every syscall it allows only
to a container holding a capability, plus those it never allows. onexd never grants those capabilities
(SYS_ADMIN, SYS_PTRACE, SYS_MODULE, ... are outside the safe allowlist), so a profile is at least as strict as
the default only if none of these calls is allowed, logged, traced or handed to a user-space notifier, with any
arguments. The one exception is Docker's own: `clone` may be allowed when its flags argument is filtered so that
no namespace can be created (the mask below, compared with SCMP_CMP_MASKED_EQ against 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Gated by a capability in Docker's default profile (the capability that gates each is in the comment).
CAPABILITY_GATED = frozenset({
    # CAP_SYS_ADMIN
    "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "quotactl",
    "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    # CAP_SYS_BOOT, CAP_SYS_CHROOT, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG
    "reboot", "chroot", "acct", "vhangup",
    # CAP_SYS_MODULE
    "create_module", "delete_module", "finit_module", "init_module", "query_module", "get_kernel_syms",
    # CAP_SYS_PTRACE (Docker lets ptrace and process_vm_* through on kernels >= 4.8; onexd does not)
    "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    # CAP_SYS_RAWIO
    "iopl", "ioperm",
    # CAP_SYS_TIME
    "clock_settime", "clock_settime64", "settimeofday", "stime",
    # CAP_SYS_NICE
    "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",
})
# Never allowed by Docker's default profile, whatever the capabilities.
NEVER_ALLOWED = frozenset({
    "add_key", "keyctl", "request_key",
    "kexec_file_load", "kexec_load",
    "open_by_handle_at",
    "userfaultfd",
    "pivot_root",
    "swapon", "swapoff",
    "_sysctl", "sysfs", "uselib", "ustat", "nfsservctl", "afs_syscall", "bdflush",
    "vm86", "vm86old",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
})
DENYLIST = CAPABILITY_GATED | NEVER_ALLOWED

# Actions that let a call run (or let someone else decide it): a denied syscall may have none of them.
PERMISSIVE_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"})
KNOWN_FLAGS = frozenset({"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"})
# CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET: Docker's mask.
CLONE_NAMESPACE_MASK = 0x7E020000


def _clone_filtered(rule: Mapping[str, Any]) -> bool:
    """True if the rule lets clone through only without namespace flags (Docker's own argument filter)."""
    return any(arg.get("index") in (0, 1) and arg.get("op") == "SCMP_CMP_MASKED_EQ"
               and int(arg.get("value", -1)) & CLONE_NAMESPACE_MASK == CLONE_NAMESPACE_MASK
               and arg.get("valueTwo", 0) == 0
               for arg in rule.get("args") or ())


def seccomp_weaknesses(profile: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(JSON pointer, why) for every way the profile is weaker than the floor. Empty: at least as strict."""
    action = profile.get("defaultAction")
    if action in PERMISSIVE_ACTIONS:
        yield "/defaultAction", f"defaultAction {action} lets unlisted syscalls through"
    if action == "SCMP_ACT_ERRNO" and profile.get("defaultErrnoRet") == 0:
        yield "/defaultErrnoRet", "defaultErrnoRet 0 makes every refused call look successful"
    for i, flag in enumerate(profile.get("flags") or ()):
        if flag not in KNOWN_FLAGS:
            yield f"/flags/{i}", f"flag {flag} is not one of {', '.join(sorted(KNOWN_FLAGS))}"
    for i, rule in enumerate(profile.get("syscalls") or ()):
        rule_action = rule.get("action")
        if rule_action == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == 0:
            yield f"/syscalls/{i}/errnoRet", "errnoRet 0 makes the refused calls look successful"
        if rule_action not in PERMISSIVE_ACTIONS:
            continue
        for name in rule.get("names") or ():
            if name == "clone" and rule_action == "SCMP_ACT_ALLOW" and _clone_filtered(rule):
                continue
            if name in DENYLIST:
                yield (f"/syscalls/{i}/names",
                       f"{rule_action} for {name}, which is on the deny-list (Docker's default profile gates it)")
