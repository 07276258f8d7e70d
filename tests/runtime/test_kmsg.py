"""Blocked system calls from the kernel log: record parsing, naming from the generated table, attribution."""

from __future__ import annotations

from pathlib import Path

from onexd.runtime.kmsg import UNKNOWN, BlockedSyscall, KernelLog, attribute, killed_by_seccomp, parse_record

SAMPLE = Path(__file__).parent / "fixtures" / "kmsg-sample"
KILL_LINE = SAMPLE.read_text().splitlines()[1]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_parse_record_reads_a_kill_record_as_this_host_writes_it() -> None:
    """pid, comm, exe, arch, syscall, sig and the action come out of a real type=1326 line."""
    record = parse_record(KILL_LINE)
    assert record is not None
    assert (record.pid, record.comm, record.exe, record.arch_code, record.syscall, record.sig, record.action) == (
        2542, "mkdir", "/bin/busybox", "c000003e", 83, 31, "kill_process")
    assert record.ts == 1795637964.189


def test_parse_record_ignores_other_kernel_lines() -> None:
    """Only type=1326 records are seccomp records."""
    assert parse_record("6,700,467000000,-;docker0: port 1(veth1) entered blocking state") is None
    assert parse_record("5,1,2,-;audit: type=1326 audit(1.5:2): pid=notanumber syscall=1 arch=c000003e") is None


def test_attribute_names_the_kill_of_the_jobs_process_from_the_generated_table() -> None:
    """A job's pid inside its window: mkdir (83 on x86_64), action kill_process."""
    records = KernelLog(SAMPLE).records()
    found = attribute(records, frozenset({2542}), 1795637960.0, 1795637970.0, killed=True)
    assert found == BlockedSyscall(name="mkdir", number=83, arch="x86_64", action="kill_process", comm="mkdir")


def test_attribute_uses_the_table_of_the_records_architecture() -> None:
    """An i386 (compat) record is named from the i386 table: 40 is rmdir there, not lstat as on x86_64."""
    found = attribute(KernelLog(SAMPLE).records(), frozenset({2700}), 0.0, 2e9, killed=True)
    assert found is not None and (found.name, found.arch) == ("rmdir", "i386")


def test_attribute_reports_an_errno_refusal_but_not_a_logged_allowed_call() -> None:
    """SCMP_ACT_LOG let getpid through (not blocked); the errno refusal of mkdir is the answer."""
    found = attribute(KernelLog(SAMPLE).records(), frozenset({2600}), 0.0, 2e9, killed=False)
    assert found is not None and (found.name, found.action) == ("mkdir", "errno")


def test_attribute_never_takes_another_process_or_another_time() -> None:
    """A record of a pid the job never had, or outside its window, is not the job's."""
    records = KernelLog(SAMPLE).records()
    assert attribute(records, frozenset({9999}), 0.0, 2e9, killed=True) is None
    assert attribute(records, frozenset({2542}), 1795637965.5, 1795637999.0, killed=True) is None


def test_sigsys_death_without_a_record_is_unknown_after_the_settle_time(tmp_path: Path) -> None:
    """Exit 159 with no record to tie: `unknown`, never a guess; the wait uses the injected clock."""
    empty = tmp_path / "kmsg"
    empty.write_text("")
    clock = _Clock()
    log = KernelLog(empty, clock=clock, sleep=clock.sleep)
    assert log.probe() is None
    assert log.blocked_syscall(frozenset({1}), 0.0, 1.0, killed=True) == UNKNOWN
    assert clock.now >= 1001.0
    assert log.blocked_syscall(frozenset({1}), 0.0, 1.0, killed=False) is None


def test_unreadable_kernel_log_is_said_once_and_gives_unknown(tmp_path: Path) -> None:
    """Without /dev/kmsg (a container, no CAP_SYSLOG) the probe says why; kills are `unknown`."""
    log = KernelLog(tmp_path / "missing")
    reason = log.probe()
    assert reason is not None and "CAP_SYSLOG" in reason
    assert log.blocked_syscall(frozenset({2542}), 0.0, 2e9, killed=True) == UNKNOWN
    assert log.blocked_syscall(frozenset({2542}), 0.0, 2e9, killed=False) is None


def test_only_exit_159_is_a_seccomp_kill() -> None:
    """128 + SIGSYS (31); SIGKILL's 137 or a plain failure are not."""
    assert killed_by_seccomp(159)
    assert not killed_by_seccomp(137) and not killed_by_seccomp(1) and not killed_by_seccomp(None)
