"""The policy format: one frozen pydantic model per kind. The single source of truth for schemas/*.json.

Field descriptions here become the descriptions editors show; `onexd policy schemas` writes the files and a test
fails when they drift.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

# Shared with the daemon config; re-exported here because the policy format is where readers look for them.
from onexd.fields import ABS_PATH_MAX as ABS_PATH_MAX
from onexd.fields import ABS_PATH_PATTERN as ABS_PATH_PATTERN
from onexd.fields import NAME_PATTERN as NAME_PATTERN
from onexd.fields import SIZE_PATTERN as SIZE_PATTERN
from onexd.fields import Model as Model
from onexd.fields import Name as Name
from onexd.fields import Size as Size
from onexd.fields import parse_size as parse_size
from onexd.policy import limits as lim
from onexd.policy.limits import ID_MAX, ID_MIN, MemorySize, OutputSize, TmpfsSize
from onexd.policy.patterns import CAPABILITY_PATTERN as CAPABILITY_PATTERN
from onexd.policy.patterns import ENV_NAME_PATTERN as ENV_NAME_PATTERN
from onexd.policy.patterns import LABEL_KEY_PATTERN as LABEL_KEY_PATTERN
from onexd.policy.patterns import PATTERN_WORDS as PATTERN_WORDS
from onexd.policy.patterns import PERMISSION_PATTERN as PERMISSION_PATTERN
from onexd.policy.patterns import REL_PATH_PATTERN as REL_PATH_PATTERN
from onexd.policy.patterns import SEMVER_PATTERN as SEMVER_PATTERN
from onexd.policy.patterns import Permission as Permission
from onexd.policy.patterns import SemVer as SemVer
from onexd.policy.patterns import error_message as error_message
from onexd.policy.patterns import first_error as first_error

API_VERSION = "onexd/v1"


class Metadata(Model):
    name: Name = Field(description="Name, unique per kind across all active bundles (DNS-label syntax).")
    labels: dict[Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)],
                 Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=dict, description="Free-form key/value labels (never secrets).")
    annotations: dict[Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)],
                      Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="Free-form notes for humans and tools (never secrets).")


# --- specs -------------------------------------------------------------------------------------------


class BundleSpec(Model):
    version: SemVer = Field(description="Semantic version of the bundle; a changed bundle needs a higher one.")
    description: str = Field(default="", max_length=4096, description="What this bundle is for.")


class RoleSpec(Model):
    description: str = Field(default="", max_length=4096, description="What the role is for.")
    permissions: tuple[Permission, ...] = Field(
        default=(), description="`resource:action` strings; `*` is a wildcard (`nodes:*`, `*`).")
    inherits: tuple[Name, ...] = Field(default=(), description="Roles whose permissions and capabilities "
                                                                "this role also has.")
    capabilities: tuple[Name, ...] = Field(default=(), description="Capability names this role grants.")


SubjectKind = Literal["UnixUser", "UnixGroup", "Token", "ApiKey"]


class Subject(Model):
    kind: SubjectKind = Field(description="UnixUser and UnixGroup match socket peers (name or numeric "
                                          "uid/gid); Token matches a JWT `sub`; ApiKey an API key's name.")
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,256}$")] = Field(
        description="User/group name or numeric id, token subject, or API key name.")
    issuer: Annotated[str, StringConstraints(pattern=r"^https?://[^\s#]{1,2000}$")] | SkipJsonSchema[None] = Field(
        default=None, description="Token only: the external issuer (`iss`, from auth.jwksIssuers) whose `sub` this is; "
                                  "without it, a subject of a token onexd issued. Matched as `ISSUER#NAME`.")


class RoleBindingSpec(Model):
    roles: tuple[Name, ...] = Field(min_length=1, description="Roles given to the subjects.")
    subjects: tuple[Subject, ...] = Field(min_length=1, description="Who gets the roles.")


class CapabilitySpec(Model):
    nodes: tuple[Annotated[str, StringConstraints(pattern=r"^[a-z0-9*?\[\]!-]{1,63}$")], ...] = Field(
        default=(), description="Globs of Node names this capability may run (`*`, `etl-*`).")
    profiles: tuple[Name, ...] = Field(default=(), description="SandboxProfiles jobs may run with.")
    zones: tuple[Name, ...] = Field(default=(), description="NetworkZones jobs may be placed in "
                                                           "(`none` needs no grant).")
    secrets: tuple[Name, ...] = Field(default=(), description="Secrets jobs may receive.")
    adhoc: bool = Field(default=False, description="May run ad-hoc commands with the listed profiles.")


class TmpfsMount(Model):
    path: Annotated[str, StringConstraints(pattern=ABS_PATH_PATTERN, max_length=ABS_PATH_MAX)] = Field(
        description="Absolute, normalized mount point inside the container (no `//`, `.`, `..` or trailing "
                    "`/`).")
    size: TmpfsSize = Field(description="Size limit of the tmpfs.")
    mode: Annotated[str, StringConstraints(pattern=r"^[0-7]{3,4}$")] = Field(
        default="1777", description="Octal permission bits, as a quoted string (`\"1777\"`).")


class ProfileCapabilities(Model):
    add: tuple[Annotated[str, StringConstraints(pattern=CAPABILITY_PATTERN)], ...] = Field(
        default=(), description="Linux capabilities to add back (without `CAP_`); all others are dropped. "
                                "Only a safe allowlist is accepted.")


class Resources(Model):
    memory: MemorySize = Field(description="Memory limit; swap is set equal, so no swap is used.")
    cpus: float = Field(ge=lim.CPUS_MIN, le=lim.CPUS_MAX, description="CPU quota in cores (`0.5`, `2`).")
    pids: int = Field(ge=lim.PIDS_MIN, le=lim.PIDS_MAX, description="Maximum number of processes/threads.")
    nofile: int = Field(ge=lim.NOFILE_MIN, le=lim.NOFILE_MAX, description="Maximum open files (soft = hard).")
    timeoutSeconds: int = Field(ge=lim.TIMEOUT_MIN_S, le=lim.TIMEOUT_MAX_S,
                                description="Wall-clock limit of a job.")
    outputBytes: OutputSize = Field(description="Captured stdout+stderr beyond this is cut and flagged (it is "
                                                "buffered in the daemon's memory).")


class WarmPool(Model):
    size: int = Field(default=0, ge=0, le=64, description="Containers kept created and started, waiting for a "
                                                          "job (never reused; the host ceiling still applies).")


class SandboxProfileSpec(Model):
    image: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")] = Field(
        description="Container image (built locally: `onexd/runner-python`, `onexd/runner-busybox`).")
    user: Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$")] = Field(
        description=f"`\"uid:gid\"` the job runs as, each from {ID_MIN} to {ID_MAX} (never 0), in plain "
                    "decimal without leading zeros.")
    readOnlyRootFilesystem: bool = Field(default=True, description="Must stay true.")
    tmpfs: tuple[TmpfsMount, ...] = Field(default=(), description="Writable, size-limited scratch space "
                                                                 "(nosuid,nodev).")
    capabilities: ProfileCapabilities = Field(default_factory=ProfileCapabilities,
                                              description="Capabilities to add back; all are dropped.")
    seccompProfile: Name = Field(default="runtime-default",
                                 description="A SeccompProfile name, or `runtime-default` for the engine's.")
    resources: Resources = Field(description="Limits; every one is required.")
    zone: Name = Field(default="none", description="Default NetworkZone of jobs with this profile.")
    env: dict[Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)],
              Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="Static, non-secret environment variables.")
    warmPool: WarmPool | SkipJsonSchema[None] = Field(
        default=None, description="Warm pool for ad-hoc jobs with this profile.")


class SyscallArg(Model):
    index: int = Field(ge=0, le=5)
    value: int = Field(ge=0, le=2**64 - 1)  # a syscall argument is at most 64 bits
    valueTwo: int = Field(default=0, ge=0, le=2**64 - 1)
    op: Literal["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                "SCMP_CMP_MASKED_EQ"]


class SyscallFilter(Model):
    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    minKernel: str = ""


SeccompAction = Literal["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
                        "SCMP_ACT_NOTIFY"]


class SyscallRule(Model):
    names: tuple[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")], ...] = Field(min_length=1)
    action: SeccompAction
    errnoRet: Annotated[int, Field(ge=1, le=4095)] | SkipJsonSchema[None] = None
    args: tuple[SyscallArg, ...] = ()
    comment: str = ""
    includes: SyscallFilter = Field(default_factory=SyscallFilter)
    excludes: SyscallFilter = Field(default_factory=SyscallFilter)


class ArchMap(Model):
    architecture: str
    subArchitectures: tuple[str, ...] = ()


class SeccompJson(Model):
    """A Docker/OCI seccomp profile (the JSON `docker run --security-opt seccomp=FILE` takes)."""

    defaultAction: SeccompAction = Field(description="Action for syscalls no rule matches; may not allow.")
    # errno 0 would make a refused call look successful.
    defaultErrnoRet: Annotated[int, Field(ge=1, le=4095)] | SkipJsonSchema[None] = Field(
        default=None, description="errno for SCMP_ACT_ERRNO (38 = ENOSYS); never 0.")
    architectures: tuple[str, ...] = ()
    archMap: tuple[ArchMap, ...] = ()
    syscalls: tuple[SyscallRule, ...] = ()
    # Only flags that do not weaken the filter: SPEC_ALLOW (no speculative-execution mitigation), NEW_LISTENER
    # and anything unknown are refused.
    flags: tuple[Literal["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"], ...] = ()


class SeccompProfileSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["file"]}, {"required": ["profile"]}]})

    file: Annotated[str, StringConstraints(pattern=REL_PATH_PATTERN)] | SkipJsonSchema[None] = Field(
        default=None, description="Path of a seccomp JSON file, relative to the bundle.")
    profile: SeccompJson | SkipJsonSchema[None] = Field(default=None, description="The profile inline.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SeccompProfileSpec:
        if (self.file is None) == (self.profile is None):
            raise ValueError("exactly one of `file` or `profile` is required")
        return self


class EgressRule(Model):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["host"]}, {"required": ["cidr"]}]})

    host: Annotated[str, StringConstraints(
        pattern=r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        max_length=253)] | SkipJsonSchema[None] = Field(default=None, description="Host name (`*.` prefix "
                                                                                  "for subdomains).")
    cidr: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")] | SkipJsonSchema[None] = \
        Field(default=None, description="Address range (`10.1.0.0/16`).")
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(min_length=1,
                                                                     description="Allowed TCP ports.")

    @model_validator(mode="after")
    def _exactly_one(self) -> EgressRule:
        if (self.host is None) == (self.cidr is None):
            raise ValueError("exactly one of `host` or `cidr` is required")
        if self.cidr is not None:
            # Checked here, at load: the proxy must never meet a range it cannot parse.
            try:
                ipaddress.ip_network(self.cidr, strict=True)
            except ValueError:
                raise ValueError("`cidr` is not a valid address range (prefix length within the address "
                                 "size, no host bits set: `10.1.0.0/16`)") from None
        return self


class NetworkZoneSpec(Model):
    mode: Literal["none", "internal", "egress"] = Field(
        description="`none`: loopback only; `internal`: a private network shared by the zone's jobs; "
                    "`egress`: internal plus a filtering proxy.")
    egress: tuple[EgressRule, ...] = Field(default=(), description="Allowed destinations (mode egress only).")


class SecretSourceSpec(Model):
    type: Literal["env", "file", "encrypted", "vault"] = Field(description="Where values come from.")
    prefix: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)] | SkipJsonSchema[None] = Field(
        default=None, description="env: variable prefix of the daemon's environment.")
    path: Annotated[str, StringConstraints(pattern=ABS_PATH_PATTERN, max_length=ABS_PATH_MAX)] \
        | SkipJsonSchema[None] = Field(default=None, description="file: a directory holding one file per key "
                                                                   "(never onexd's own state or credentials).")
    address: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | SkipJsonSchema[None] = Field(
        default=None, description="vault: server URL.")
    mount: Name | SkipJsonSchema[None] = Field(default=None, description="vault: KV v2 mount.")
    tokenFile: Annotated[str, StringConstraints(pattern=ABS_PATH_PATTERN, max_length=ABS_PATH_MAX)] \
        | SkipJsonSchema[None] = Field(
        default=None, description="vault: file holding the Vault token (path only, never the token).")
    cacheTTLSeconds: int = Field(default=60, ge=0, le=86400, description="How long a value is cached.")


class SecretSpec(Model):
    source: Name = Field(description="SecretSource name.")
    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]{1,256}$")] = Field(
        description="Key inside the source (a name, never the value).")


class NodeSource(Model):
    path: Annotated[str, StringConstraints(pattern=REL_PATH_PATTERN)] = Field(
        description="Directory relative to the bundle, mounted read-only at /app/node.")


class NodeSpec(Model):
    version: SemVer = Field(description="Semantic version of the node.")
    description: str = Field(default="", max_length=4096)
    profile: Name = Field(description="SandboxProfile the node runs with.")
    command: tuple[Annotated[str, StringConstraints(min_length=1, max_length=4096)], ...] = Field(
        min_length=1, description="argv list, never a shell string.")
    source: NodeSource | SkipJsonSchema[None] = Field(default=None, description="The node's code.")
    inputSchema: dict[str, Any] | SkipJsonSchema[None] = Field(
        default=None, description="JSON Schema (2020-12) the job input must satisfy.")
    secrets: tuple[Name, ...] = Field(default=(), description="Secrets delivered as /run/secrets/<name>.")
    zone: Name | SkipJsonSchema[None] = Field(default=None, description="Overrides the profile's zone.")
    timeoutSeconds: Annotated[int, Field(ge=1, le=86400)] | SkipJsonSchema[None] = Field(
        default=None, description="At most the profile's timeout.")
    warmPool: WarmPool | SkipJsonSchema[None] = Field(
        default=None, description="Warm pool: containers for this node created and started ahead of time.")


# --- documents ---------------------------------------------------------------------------------------


class Document(Model):
    apiVersion: Literal["onexd/v1"] = Field(description="Always `onexd/v1`.")
    metadata: Metadata


class BundleDoc(Document):
    """A bundle's manifest: exactly one, in bundle.yaml."""

    kind: Literal["Bundle"]
    spec: BundleSpec


class RoleDoc(Document):
    """A set of permissions and capabilities."""

    kind: Literal["Role"]
    spec: RoleSpec


class RoleBindingDoc(Document):
    """Gives roles to subjects (Unix users and groups, token subjects, API keys)."""

    kind: Literal["RoleBinding"]
    spec: RoleBindingSpec


class CapabilityDoc(Document):
    """What a role may run: nodes, and with which profiles, zones and secrets."""

    kind: Literal["Capability"]
    spec: CapabilitySpec


class SandboxProfileDoc(Document):
    """Container settings of a job: image, user, filesystem, capabilities, seccomp, limits, zone."""

    kind: Literal["SandboxProfile"]
    spec: SandboxProfileSpec


class SeccompProfileDoc(Document):
    """A syscall filter, from a JSON file in the bundle or inline."""

    kind: Literal["SeccompProfile"]
    spec: SeccompProfileSpec


class NetworkZoneDoc(Document):
    """Network placement of jobs."""

    kind: Literal["NetworkZone"]
    spec: NetworkZoneSpec


class SecretSourceDoc(Document):
    """Where secret values come from."""

    kind: Literal["SecretSource"]
    spec: SecretSourceSpec


class SecretDoc(Document):
    """A named secret: a key in a source."""

    kind: Literal["Secret"]
    spec: SecretSpec


class NodeDoc(Document):
    """A registered program."""

    kind: Literal["Node"]
    spec: NodeSpec


AnyDoc = (BundleDoc | RoleDoc | RoleBindingDoc | CapabilityDoc | SandboxProfileDoc | SeccompProfileDoc
          | NetworkZoneDoc | SecretSourceDoc | SecretDoc | NodeDoc)

KINDS: dict[str, type[Document]] = {
    "Bundle": BundleDoc,
    "Role": RoleDoc,
    "RoleBinding": RoleBindingDoc,
    "Capability": CapabilityDoc,
    "SandboxProfile": SandboxProfileDoc,
    "SeccompProfile": SeccompProfileDoc,
    "NetworkZone": NetworkZoneDoc,
    "SecretSource": SecretSourceDoc,
    "Secret": SecretDoc,
    "Node": NodeDoc,
}

KNOWN_PERMISSIONS = frozenset({
    "nodes:read", "nodes:execute", "jobs:read", "jobs:read-all", "jobs:cancel", "jobs:cancel-all",
    "policy:read", "policy:reload", "audit:read", "keys:read", "keys:rotate", "tokens:issue",
    "apikeys:manage", "monitoring:read",
})
# The ONEX platform's own vocabulary (registry, config, users, node creation): accepted without a warning so
# that the ONEX role definitions can be used unchanged, though onexd itself gates nothing with them.
ONEX_PERMISSIONS = frozenset({"nodes:create", "nodes:delete", "registry:read", "registry:write", "config:read",
                              "config:write", "users:read", "users:write", "monitoring:write"})
KNOWN_RESOURCES = frozenset(p.split(":")[0] for p in KNOWN_PERMISSIONS | ONEX_PERMISSIONS)
