"""The automated checks of CIS Docker Benchmark section 5, as docker-bench-security runs them, over `docker inspect`.

Each check returns None when it passes, else why not. Numbering follows docker-bench-security's current
section 5 (CIS 1.6). Excepted, as SPEC §5 allows for batch jobs: 5.7 (sshd, needs `docker exec ps`) and 5.27
(health checks); 5.2 runs only where the host has AppArmor. Manual and note-only items (5.9, 5.23, 5.24,
5.28) are not automated checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Inspect = dict[str, Any]
SENSITIVE_DIRS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")


def host_has_apparmor() -> bool:
    path = Path("/sys/module/apparmor/parameters/enabled")
    return path.exists() and path.read_text().strip() == "Y"


def _hc(c: Inspect) -> dict[str, Any]:
    return dict(c["HostConfig"])


def c5_2(c: Inspect) -> str | None:
    return None if c.get("AppArmorProfile") not in (None, "", "unconfined") else "no AppArmor profile"


def c5_3(c: Inspect) -> str | None:
    return None if _hc(c).get("SecurityOpt") else "no security options"


def c5_4(c: Inspect) -> str | None:
    added = set(_hc(c).get("CapAdd") or [])
    bad = added & {"NET_ADMIN", "SYS_ADMIN", "SYS_MODULE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "ALL"}
    return f"capabilities added: {sorted(bad)}" if bad else None


def c5_5(c: Inspect) -> str | None:
    return "privileged" if _hc(c).get("Privileged") else None


def c5_6(c: Inspect) -> str | None:
    for m in c.get("Mounts") or []:
        if m.get("Source") in SENSITIVE_DIRS and m.get("RW"):
            return f"sensitive directory {m['Source']} mounted read-write"
    return None


def _ports(c: Inspect) -> list[tuple[str, str]]:
    out = []
    for container_port, bindings in (c.get("NetworkSettings", {}).get("Ports") or {}).items():
        for b in bindings or []:
            out.append((container_port, b.get("HostIp", "")))
    return out


def c5_8(c: Inspect) -> str | None:
    low = [p for p, _ in _ports(c) if int(p.split("/")[0]) < 1025]
    return f"privileged ports mapped: {low}" if low else None


def c5_10(c: Inspect) -> str | None:
    return "host network" if _hc(c).get("NetworkMode") == "host" else None


def c5_11(c: Inspect) -> str | None:
    return "no memory limit" if not _hc(c).get("Memory") else None


def c5_12(c: Inspect) -> str | None:
    return "default CPU shares" if _hc(c).get("CpuShares") in (0, 1024, None) else None


def c5_13(c: Inspect) -> str | None:
    return None if _hc(c).get("ReadonlyRootfs") else "root filesystem writable"


def c5_14(c: Inspect) -> str | None:
    wild = [p for p, ip in _ports(c) if ip in ("0.0.0.0", "", "::")]  # noqa: S104 - looking for them
    return f"ports bound to a wildcard address: {wild}" if wild else None


def c5_15(c: Inspect) -> str | None:
    policy = _hc(c).get("RestartPolicy") or {}
    name, count = policy.get("Name") or "no", policy.get("MaximumRetryCount", 0)
    if name in ("always", "unless-stopped") or (name == "on-failure" and count != 5):
        return f"restart policy {name}:{count}"
    return None


def c5_16(c: Inspect) -> str | None:
    return "host PID namespace" if _hc(c).get("PidMode") == "host" else None


def c5_17(c: Inspect) -> str | None:
    return "host IPC namespace" if _hc(c).get("IpcMode") == "host" else None


def c5_18(c: Inspect) -> str | None:
    return "host devices exposed" if _hc(c).get("Devices") else None


def c5_19(c: Inspect) -> str | None:
    return None if _hc(c).get("Ulimits") else "no ulimit set"


def c5_20(c: Inspect) -> str | None:
    shared = [m for m in c.get("Mounts") or [] if "shared" in (m.get("Propagation") or "")]
    return "shared mount propagation" if shared else None


def c5_21(c: Inspect) -> str | None:
    return "host UTS namespace" if _hc(c).get("UTSMode") == "host" else None


def c5_22(c: Inspect) -> str | None:
    opts = " ".join(_hc(c).get("SecurityOpt") or [])
    return "seccomp disabled" if "seccomp:unconfined" in opts or "seccomp=unconfined" in opts else None


def c5_25(c: Inspect) -> str | None:
    return "custom cgroup parent" if _hc(c).get("CgroupParent") else None


def c5_26(c: Inspect) -> str | None:
    opts = _hc(c).get("SecurityOpt") or []
    return None if any(o.startswith("no-new-privileges") and not o.endswith("false") for o in opts) \
        else "no-new-privileges not set"


def c5_29(c: Inspect) -> str | None:
    limit = _hc(c).get("PidsLimit")
    return None if limit and limit > 0 else "no PIDs limit"


def c5_30(c: Inspect) -> str | None:
    networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
    return "on the default bridge" if "bridge" in networks or _hc(c).get("NetworkMode") in ("bridge", "default") \
        else None


def c5_31(c: Inspect) -> str | None:
    return "host user namespace" if _hc(c).get("UsernsMode") == "host" else None


def c5_32(c: Inspect) -> str | None:
    socks = [m for m in c.get("Mounts") or [] if "docker.sock" in (m.get("Source") or "")
             or "docker.sock" in (m.get("Destination") or "")]
    return "Docker socket mounted" if socks else None


CHECKS: dict[str, Callable[[Inspect], str | None]] = {
    "5.3": c5_3, "5.4": c5_4, "5.5": c5_5, "5.6": c5_6, "5.8": c5_8, "5.10": c5_10, "5.11": c5_11,
    "5.12": c5_12, "5.13": c5_13, "5.14": c5_14, "5.15": c5_15, "5.16": c5_16, "5.17": c5_17, "5.18": c5_18,
    "5.19": c5_19, "5.20": c5_20, "5.21": c5_21, "5.22": c5_22, "5.25": c5_25, "5.26": c5_26, "5.29": c5_29,
    "5.30": c5_30, "5.31": c5_31, "5.32": c5_32,
}


def failures(container: Inspect) -> dict[str, str]:
    """Every failing automated check, by CIS number."""
    checks = dict(CHECKS)
    if host_has_apparmor():
        checks["5.2"] = c5_2
    return {cid: why for cid, check in checks.items() if (why := check(container)) is not None}
