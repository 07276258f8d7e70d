"""ContainerSpec: the only thing the engine and the runtime share. Every field is a security setting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MANAGED_LABEL = "onexd.managed"
JOB_LABEL = "onexd.job"
POLICY_LABEL = "onexd.policy"
NODE_MOUNT = "/app/node"
SECRETS_MOUNT = "/run/secrets"
POOL_LABEL = "onexd.pool"  # on warm-pool slots: the slot's key; a claimed slot is renamed to its job's name
LAUNCHER_PATH = "/usr/lib/onexd/launch"  # baked into every runner image (runtime/images.py)


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    target: str
    size_bytes: int
    mode: int  # permission bits, e.g. 0o1777

    @property
    def options(self) -> str:
        # nosuid,nodev always; the size bound is what makes tmpfs safe to offer at all.
        return f"rw,nosuid,nodev,size={self.size_bytes},mode={self.mode:o}"


@dataclass(frozen=True, slots=True)
class BindMount:
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True, slots=True)
class SeccompSetting:
    """`runtime-default` (the engine's profile) or an explicit profile as canonical JSON."""

    name: str
    profile_json: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkPlacement:
    zone: str
    mode: Literal["none", "internal", "egress"]
    network_name: str | None = None  # None for mode none: no network beyond loopback


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    memory_swap_bytes: int
    nano_cpus: int
    pids_limit: int
    nofile_limit: int
    timeout_s: int
    output_limit_bytes: int


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...]
    user: str
    env: tuple[tuple[str, str], ...]
    working_dir: str
    limits: Limits
    seccomp: SeccompSetting
    network: NetworkPlacement
    labels: tuple[tuple[str, str], ...]
    tmpfs: tuple[TmpfsMount, ...] = ()
    mounts: tuple[BindMount, ...] = ()
    cap_add: tuple[str, ...] = ()
    # Not configurable: these are the invariants every job container has.
    cap_drop: tuple[str, ...] = field(default=("ALL",))
    read_only_rootfs: bool = True
    no_new_privileges: bool = True
    privileged: bool = False
