"""Which system call seccomp stopped: the kernel's type=1326 audit records, read from /dev/kmsg.

The kernel logs a record for every seccomp kill, and for errno/trap actions when the filter was installed with
SECCOMP_FILTER_FLAG_LOG. A record names the pid, comm, exe, arch and syscall number; it is tied to a job only
by one of the job's own processes (pids seen in its cgroup) inside the job's time window. Nothing is guessed:
no matching record means no name (`unknown` for a job that died of SIGSYS).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from onexd.runtime.syscall_table import AUDIT_ARCH, SYSCALLS

log = logging.getLogger("onexd.forensics")

KMSG = Path("/dev/kmsg")
SIGSYS = 31
_RECORD = re.compile(r"type=1326 audit\((?P<ts>\d+\.\d+):\d+\):(?P<fields>.*)$")
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
# SECCOMP_RET_ACTION_FULL values (include/uapi/linux/seccomp.h), as the `code` field carries them.
_ACTIONS = {0x80000000: "kill_process", 0x00000000: "kill_thread", 0x00030000: "trap", 0x00050000: "errno",
            0x7FC00000: "user_notif", 0x7FF00000: "trace", 0x7FFC0000: "log"}
Action = str
MAX_RECORDS = 20_000  # the kernel ring holds far fewer; a bound so a flood cannot keep us reading


@dataclass(frozen=True, slots=True)
class SeccompRecord:
    """One type=1326 record."""

    ts: float
    pid: int
    comm: str
    exe: str
    arch_code: str
    syscall: int
    sig: int
    action: Action


@dataclass(frozen=True, slots=True)
class BlockedSyscall:
    """SPEC §14 `blockedSyscall`. `name` is None only for an architecture without a generated table."""

    name: str | None
    number: int
    arch: str
    action: Action
    comm: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "number": self.number, "arch": self.arch, "action": self.action,
                "comm": self.comm}


UNKNOWN: Literal["unknown"] = "unknown"
Verdict = BlockedSyscall | Literal["unknown"] | None


def parse_record(line: str) -> SeccompRecord | None:
    """A kmsg line (`prio,seq,usec,flags;audit: type=1326 audit(TS:N): k=v ...`) as a record, or None."""
    match = _RECORD.search(line.strip())
    if match is None:
        return None
    fields = {k: v.strip('"') for k, v in _FIELD.findall(match.group("fields"))}
    try:
        code = int(fields.get("code", "0"), 16)
        return SeccompRecord(ts=float(match.group("ts")), pid=int(fields["pid"]), comm=fields.get("comm", ""),
                             exe=fields.get("exe", ""), arch_code=fields["arch"].lower(),
                             syscall=int(fields["syscall"]), sig=int(fields.get("sig", "0")),
                             action=_ACTIONS.get(code & 0xFFFF0000, f"0x{code & 0xFFFF0000:08x}"))
    except (KeyError, ValueError):
        return None


def name_syscall(record: SeccompRecord) -> BlockedSyscall:
    """Name the call from the generated per-architecture table (never from a hand-written list)."""
    arch = AUDIT_ARCH.get(record.arch_code, record.arch_code)
    return BlockedSyscall(name=SYSCALLS.get(arch, {}).get(record.syscall), number=record.syscall, arch=arch,
                          action=record.action, comm=record.comm)


def attribute(records: Iterable[SeccompRecord], pids: frozenset[int], start: float, end: float,
              killed: bool) -> BlockedSyscall | None:
    """The record that explains a job: one of its processes, inside its window, a refusing action (a `log`
    action let the call through). For a job killed by SIGSYS, the kill record comes first."""
    mine = [r for r in records if r.pid in pids and start <= r.ts <= end and r.action != "log"]
    if killed:
        kills = [r for r in mine if r.sig == SIGSYS and r.action.startswith("kill")]
        mine = kills or mine
    return name_syscall(mine[0]) if mine else None


class SyscallEvidence(Protocol):
    """Where the runner asks what seccomp stopped in a finished job (KernelLog; a fake in tests)."""

    def blocked_syscall(self, pids: frozenset[int], start: float, end: float, killed: bool,
                        settle_s: float = 1.0) -> Verdict: ...


def killed_by_seccomp(exit_code: int | None) -> bool:
    """Exit 159: the job's first process died of SIGSYS, which only a seccomp kill sends it."""
    return exit_code == 128 + SIGSYS


class KernelLog:
    """/dev/kmsg as a source of seccomp records. Readability is checked once, at start, and said once."""

    def __init__(self, path: Path = KMSG, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path, self.clock, self.sleep = path, clock, sleep
        self.unavailable: str | None = None

    def probe(self) -> str | None:
        """None when readable; otherwise the reason (logged once as a warning)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self.unavailable = (f"{self.path} is not readable ({exc.strerror}); blocked system calls will be "
                                "recorded as unknown (grant CAP_SYSLOG, see the operator guide)")
            log.warning("kernel log unavailable", extra={"reason": self.unavailable})
            return self.unavailable
        os.close(fd)
        self.unavailable = None
        return None

    def records(self) -> list[SeccompRecord]:
        """Every type=1326 record still in the kernel ring."""
        found: list[SeccompRecord] = []
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return found
        pending = b""  # /dev/kmsg gives one record per read; a plain file (tests, a copy) gives chunks
        try:
            for _ in range(MAX_RECORDS):
                try:
                    raw = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EPIPE:  # the ring overwrote what we were about to read: go on
                        continue
                    break
                if not raw:
                    break
                *lines, pending = (pending + raw).split(b"\n")
                for line in lines:
                    if b"type=1326" in line:
                        record = parse_record(line.decode(errors="replace"))
                        if record is not None:
                            found.append(record)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return found

    def blocked_syscall(self, pids: frozenset[int], start: float, end: float, killed: bool,
                        settle_s: float = 1.0) -> Verdict:
        """What seccomp stopped in a job. A job killed by SIGSYS without a record it can be tied to is
        `unknown`; the kernel's audit thread may lag the exit a little, so a kill is given settle_s."""
        if self.unavailable is not None:
            return UNKNOWN if killed else None
        deadline = self.clock() + (settle_s if killed else 0.0)
        while True:
            found = attribute(self.records(), pids, start - 1.0, end + 2.0, killed)
            if found is not None or self.clock() >= deadline:
                break
            self.sleep(0.1)
        if found is None:
            return UNKNOWN if killed else None
        return found
