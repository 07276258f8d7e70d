"""DaemonConfig: how the daemon runs. Frozen; building it has no side effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from onexd.addresses import parse_syslog_address, parse_webhook_url
from onexd.errors import ConfigError
from onexd.fields import AbsPath, Model, Name, Size, first_error


class SocketConfig(Model):
    path: AbsPath = Field(default="/run/onexd/onexd.sock", description="Unix socket the API listens on.")
    mode: Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")] = Field(
        default="0660", description="Octal file mode of the socket (quoted).")
    group: str | SkipJsonSchema[None] = Field(default=None, description="Group owning the socket.")


class KubernetesConfig(Model):
    """Where the kubernetes backend runs jobs (docs/kubernetes.md)."""

    namespace: Name = Field(default="onexd", description="Namespace of every object onexd creates; its Role "
                                                         "is limited to it.")
    kubeconfig: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
    inCluster: bool = Field(default=False, description="Use the pod's service account (onexd runs in the "
                                                       "cluster); excludes kubeconfig.")
    context: str | SkipJsonSchema[None] = Field(default=None, description="Kubeconfig context (default: current).")
    seccompDir: str = Field(default="onexd", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
                            description="Directory of custom seccomp profiles under the kubelet's seccomp root "
                                        "(`operator/NAMESPACE` with the Security Profiles Operator).")
    requestTimeoutSeconds: int = Field(default=30, ge=1, le=600, description="Timeout of one API request.")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesConfig:
        if self.inCluster and self.kubeconfig is not None:
            raise ValueError("give kubeconfig or inCluster, not both")
        return self


class RuntimeConfig(Model):
    backend: Literal["docker", "fake", "kubernetes"] = Field(
        default="docker", description="`docker`; `kubernetes` (Pods in one namespace, see `kubernetes`); `fake` "
                                      "runs no containers (API tests and benchmarks only).")
    dockerHost: str = Field(default="unix:///var/run/docker.sock", description="Docker engine address.")
    egressNetwork: str = Field(default="bridge", description="Network egress proxies reach out through.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig,
                                         description="Settings of the kubernetes backend.")


class TrustConfig(Model):
    requireSignedBundles: bool = Field(default=False, description="Refuse bundles without a trusted "
                                                                  "signature.")
    bundleKeys: tuple[AbsPath, ...] = Field(default=(), description="PEM public keys trusted for bundles.")


class LimitsConfig(Model):
    maxFileBytes: Size = Field(default=1024 * 1024, description="Largest policy file.")
    maxBundleBytes: Size = Field(default=16 * 1024 * 1024, description="Largest bundle, all files.")
    maxBundleFiles: int = Field(default=10_000, ge=1, description="Most files in one bundle.")
    maxRequestBytes: Size = Field(default=1024 * 1024, description="Largest API request body.")


class ReloadConfig(Model):
    debounceMs: int = Field(default=300, ge=0, le=60_000, description="Quiet time before a reload.")


class TokenConfig(Model):
    issuer: str = Field(default="onexd", description="`iss` of tokens onexd issues.")
    audience: str = Field(default="onexd", description="`aud` of tokens onexd issues and accepts.")
    ttlSeconds: int = Field(default=3600, ge=1, le=86400 * 30,
                            description="Default and longest lifetime of tokens onexd issues.")
    algorithm: Literal["EdDSA", "RS256"] = Field(default="EdDSA", description="Signing algorithm.")


class JwksIssuer(Model):
    issuer: str = Field(description="`iss` of the external issuer.")
    audience: str = Field(description="`aud` its tokens must carry.")
    jwksFile: AbsPath | SkipJsonSchema[None] = Field(default=None, description="JWKS file.")
    jwksUrl: str | SkipJsonSchema[None] = Field(default=None, description="JWKS URL.")


class RateLimitConfig(Model):
    requestsPerMinute: int = Field(default=600, ge=1, description="Sustained requests per principal.")
    burst: int = Field(default=100, ge=1, description="Burst size per principal.")


class ApiKeyConfig(Model):
    defaultTTLDays: int = Field(default=90, ge=1, le=3650, description="Default API key lifetime.")
    warnDays: int = Field(default=14, ge=0, description="Rotation warning window before expiry.")


class AuthConfig(Model):
    tokens: TokenConfig = Field(default_factory=TokenConfig)
    jwksIssuers: tuple[JwksIssuer, ...] = Field(default=(), description="Trusted external issuers.")
    apiKeys: ApiKeyConfig = Field(default_factory=ApiKeyConfig)
    rateLimit: RateLimitConfig = Field(default_factory=RateLimitConfig)


class SecretsConfig(Model):
    stagingDir: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="Memory-backed directory for secret files (default: runtime dir or "
                                  "/dev/shm).")


class CheckpointConfig(Model):
    everyEvents: int = Field(default=1000, ge=1)
    everySeconds: int = Field(default=60, ge=1)


# --- audit sinks: every requirement of a sink lives here, so `onexd config validate` and `onexd serve` refuse a
# bad sink before anything is written. Field validators run in declaration order and see the fields above them.

SinkType = Literal["file", "syslog", "webhook"]
_USED_BY: dict[str, SinkType] = {"path": "file", "address": "syslog", "url": "webhook"}
_SD_ID = r"^[!#-<>-\\^-~]{1,32}$"  # RFC 5424 SD-NAME: printable ASCII except '=', ' ', ']', '"'
UDP_MAX_MESSAGE_BYTES = 65_000  # below the 65,507-byte IPv4 datagram limit, with room for headers


class SinkTls(Model):
    caFile: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="CA bundle (PEM) the receiver's certificate must chain to (required for tls://; "
                                  "https:// uses the system's CAs without it).")
    certFile: AbsPath | SkipJsonSchema[None] = Field(default=None, description="Client certificate (PEM).")
    keyFile: AbsPath | SkipJsonSchema[None] = Field(default=None, description="Client private key (PEM).")
    serverName: str | SkipJsonSchema[None] = Field(
        default=None, description="Name the certificate must carry (default: the address's host).")

    @model_validator(mode="after")
    def _pair(self) -> SinkTls:
        if (self.certFile is None) != (self.keyFile is None):
            raise ValueError("certFile and keyFile go together")
        return self


class SinkAuthorization(Model):
    file: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="File holding the Authorization header value (e.g. `Bearer ...`).")
    credential: Name | SkipJsonSchema[None] = Field(
        default=None, description="systemd credential ($CREDENTIALS_DIRECTORY/NAME) holding the value.")

    @model_validator(mode="after")
    def _one(self) -> SinkAuthorization:
        if (self.file is None) == (self.credential is None):
            raise ValueError("set exactly one of file or credential")
        return self


class AuditSink(Model):
    name: Name = Field(description="Unique per daemon: the sink's cursor, metrics and logs use it.")
    type: SinkType = Field(description="file, syslog or webhook.")
    path: AbsPath | SkipJsonSchema[None] = Field(default=None, validate_default=True,
                                                 description="file: the JSON Lines file appended to.")
    url: str | SkipJsonSchema[None] = Field(
        default=None, validate_default=True, description="webhook: http(s)://host[:port]/path, no credentials.")
    address: str | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="syslog: unix:///dev/log, udp://host:port, tcp://host:port or tls://host:port.")
    batchSize: int = Field(default=500, ge=1, le=100_000, description="Most events per batch (one connection).")
    timeoutSeconds: float = Field(default=10.0, gt=0, le=300, description="Per connection and batch.")
    delivery: Literal["at-least-once", "best-effort"] = Field(
        default="at-least-once", validate_default=True,
        description="best-effort (required for, and only for, udp://): sends are counted, losses are not retried.")
    framing: Literal["octet-counting", "lf"] = Field(
        default="octet-counting", description="syslog over tcp/tls: RFC 6587 octet counting or LF-terminated.")
    format: Literal["rfc5424", "local", "journal"] | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="syslog: rfc5424; local (what /dev/log readers parse; the default for unix://); journal "
                    "(journald's native protocol on unix:///run/systemd/journal/socket).")
    sdId: Annotated[str, StringConstraints(pattern=_SD_ID)] = Field(
        default="onexd@0", description="SD-ID of the structured data element; set your enterprise number.")
    maxMessageBytes: int = Field(default=8192, ge=1024, le=1024 * 1024, validate_default=True,
                                 description="syslog: larger events are truncated with a marker (seq, hash).")
    tls: SinkTls | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="tls:// (required, with caFile) and https:// (optional CA and client certificate).")
    authorization: SinkAuthorization | SkipJsonSchema[None] = Field(
        default=None, validate_default=True, description="webhook: Authorization header, from a file or credential.")

    @field_validator("path", "url", "address")
    @classmethod
    def _used_by_its_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        owner, kind = _USED_BY[info.field_name or ""], info.data.get("type")
        if kind is None:
            return value
        if kind != owner and value is not None:
            raise ValueError(f"not used by type {kind} (only by type {owner})")
        if kind == owner and value is None:
            raise ValueError(f"type {kind} needs `{info.field_name}`")
        if value is not None and info.field_name == "address":
            parse_syslog_address(value)
        if value is not None and info.field_name == "url":
            parse_webhook_url(value)
        return value

    @field_validator("delivery")
    @classmethod
    def _udp_is_best_effort(cls, value: str, info: ValidationInfo) -> str:
        udp = str(info.data.get("address") or "").startswith("udp://")
        if udp and value != "best-effort":
            raise ValueError("udp:// cannot deliver at least once; set `delivery: best-effort` to accept losses")
        if not udp and value == "best-effort":
            raise ValueError("best-effort is only for udp:// syslog sinks")
        return value

    @field_validator("format")
    @classmethod
    def _format_for_syslog(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("type") != "syslog":
            raise ValueError("only syslog sinks have a format")
        if value in ("local", "journal") and not str(info.data.get("address") or "unix://").startswith("unix://"):
            raise ValueError(f"format {value} is for unix:// sinks (the local logger)")
        return value

    @field_validator("maxMessageBytes")
    @classmethod
    def _fits_a_datagram(cls, value: int, info: ValidationInfo) -> int:
        if str(info.data.get("address") or "").startswith("udp://") and value > UDP_MAX_MESSAGE_BYTES:
            raise ValueError(f"a udp:// message cannot exceed {UDP_MAX_MESSAGE_BYTES} bytes")
        return value

    @field_validator("tls")
    @classmethod
    def _tls_where_it_applies(cls, value: SinkTls | None, info: ValidationInfo) -> SinkTls | None:
        target = str(info.data.get("address") or info.data.get("url") or "")
        if target.startswith("tls://") and (value is None or value.caFile is None):
            raise ValueError("tls:// needs `tls: {caFile}`: onexd never falls back to an unverified connection")
        if value is not None and not target.startswith(("tls://", "https://")):
            raise ValueError("only tls:// syslog and https:// webhook sinks use tls")
        return value

    @field_validator("authorization")
    @classmethod
    def _authorization_for_webhooks(cls, value: SinkAuthorization | None,
                                    info: ValidationInfo) -> SinkAuthorization | None:
        if value is not None and info.data.get("type") != "webhook":
            raise ValueError("only webhook sinks send an Authorization header")
        return value

    @property
    def syslog_format(self) -> Literal["rfc5424", "local", "journal"]:
        return self.format or ("local" if str(self.address).startswith("unix://") else "rfc5424")


class AuditConfig(Model):
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    shipEverySeconds: int = Field(default=5, ge=1)
    delivery: Literal["enforced", "best_effort"] = Field(default="enforced")
    sinks: tuple[AuditSink, ...] = ()
    maxSegmentBytes: Size = Field(default=64 * 1024 * 1024)
    keepSegments: int = Field(default=100, ge=1)

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: tuple[AuditSink, ...]) -> tuple[AuditSink, ...]:
        names = [s.name for s in sinks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # each sink has its own cursor, keyed by name
            raise ValueError(f"sink names must be unique: {', '.join(twice)}")
        return sinks


class RotationConfig(Model):
    signingKeysEverySeconds: int = Field(default=30 * 86400, ge=1, description="Signing key rotation period.")
    secretStoreEverySeconds: int = Field(default=90 * 86400, ge=1, description="Data key rotation period.")
    graceSeconds: int | SkipJsonSchema[None] = Field(
        default=None, ge=1, description="How long a rotated-out key still verifies (default and minimum: the "
                                        "longest token lifetime, auth.tokens.ttlSeconds).")


class ConcurrencyConfig(Model):
    maxJobs: int = Field(default=4, ge=1, le=1024, description="Jobs running at once.")
    maxQueued: int = Field(default=100, ge=0, description="Jobs waiting; beyond this, 429.")
    maxJobsPerPrincipal: int = Field(default=8, ge=1, description="Running + queued jobs per principal.")


class PoolConfig(Model):
    """The host's ceiling on warm-pool slots (sizes themselves are policy: Node/SandboxProfile warmPool)."""

    maxContainers: int = Field(default=16, ge=0, le=1024, description="Idle warm slots on this host, all keys "
                                                                     "together; 0 turns the pool off.")
    maxIdleSeconds: int = Field(default=600, ge=1, description="An idle slot older than this is replaced.")


class LockoutConfig(Model):
    """Incident response: suspend a principal's submissions after repeated denials or blocked system calls."""

    enabled: bool = Field(default=False, description="Count strikes and lock principals out.")
    threshold: int = Field(default=5, ge=1, description="Denied decisions or blocked syscalls that lock.")
    windowSeconds: int = Field(default=300, ge=1, description="Within this many seconds.")
    lockSeconds: int = Field(default=900, ge=1, description="How long submissions stay refused.")


class DaemonConfig(Model):
    """onexd.yaml: every setting of the daemon."""

    apiVersion: Literal["onexd/v1"] = "onexd/v1"
    kind: Literal["DaemonConfig"] = "DaemonConfig"
    socket: SocketConfig = Field(default_factory=SocketConfig)
    policyDir: AbsPath = Field(default="/etc/onexd/policies.d", description="Directory of bundles.")
    stateDir: AbsPath = Field(default="/var/lib/onexd", description="Jobs, audit, keys, active bundles.")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    reload: ReloadConfig = Field(default_factory=ReloadConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    rotation: RotationConfig = Field(default_factory=RotationConfig)
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    lockout: LockoutConfig = Field(default_factory=LockoutConfig)

    @model_validator(mode="after")
    def _grace_covers_tokens(self) -> DaemonConfig:
        grace = self.rotation.graceSeconds
        if grace is not None and grace < self.auth.tokens.ttlSeconds:
            raise ValueError(f"rotation.graceSeconds ({grace}) must be at least auth.tokens.ttlSeconds "
                             f"({self.auth.tokens.ttlSeconds}): a token may not outlive its key")
        return self

    @property
    def grace_s(self) -> int:
        return self.rotation.graceSeconds or self.auth.tokens.ttlSeconds


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a daemon config: the dotted field (or `(file)`), and why."""

    field: str
    message: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "line": self.line, "message": self.message}


def config_or_problems(data: object) -> tuple[DaemonConfig | None, list[ConfigProblem]]:
    """Validate parsed data: the config, or one problem per bad field (all of them, not only the first)."""
    try:
        return DaemonConfig.model_validate({} if data is None else data), []
    except ValidationError as exc:
        return None, [ConfigProblem(".".join(str(p) for p in e["loc"]) or "(top level)",
                                    e["msg"].removeprefix("Value error, ")) for e in exc.errors()]


def config_from_data(data: object, source: str) -> DaemonConfig:
    """Build a DaemonConfig from parsed data; a bad field raises ConfigError naming it."""
    if data is None:
        data = {}
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        field, message = first_error(exc, "(top level)")
        raise ConfigError(f"{source}: field {field}: {message}") from None
