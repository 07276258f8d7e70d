"""DaemonConfig: how the daemon runs. Frozen; building it has no side effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from onexd.errors import ConfigError
from onexd.fields import AbsPath, Model, Name, Size, first_error
from onexd.sinkconfig import AuditSink as AuditSink  # the sink models live there; re-exported for their users


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
    graceSeconds: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description="How long a rotated-out key still verifies (default and minimum: the "
                                        "longest token lifetime, auth.tokens.ttlSeconds).")


class ConcurrencyConfig(Model):
    maxJobs: int = Field(default=4, ge=1, le=1024, description="Jobs running at once.")
    maxQueued: int = Field(default=100, ge=0, description="Jobs waiting, all principals; beyond this, 429.")
    maxJobsPerPrincipal: int = Field(default=8, ge=1, description="Jobs of one principal running at once; its "
                                                                  "further jobs wait in the queue.")
    maxQueuedPerPrincipal: int = Field(default=64, ge=0, description="Jobs of one principal waiting for a slot; "
                                                                     "beyond this (or a full queue), 429.")


class MetricsConfig(Model):
    listen: Annotated[str, StringConstraints(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")] | \
        SkipJsonSchema[None] = Field(
        default=None, description="`HOST:PORT` (`[::1]:9464` for IPv6) of a TCP listener serving only "
                                  "GET /metrics, without authentication, for Prometheus; off by default. Keep it "
                                  "on loopback or a monitoring network.")

    def address(self) -> tuple[str, int] | None:
        """(host, port) of the listener, or None when it is off."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


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


# --- api: the bounds on hostile callers of the socket. Each has a floor (below it the daemon would refuse its own
# clients) and a ceiling (past it one caller could hold the daemon's connections, memory or patience). The fields are
# strict: a quoted number or a boolean is refused, not read as a number (`headerTimeoutSeconds: true` is no 1 s).

class ApiConfig(Model):
    """Bounds on hostile callers of the API (docs/operator-guide.md, section 5)."""

    # Strict: `true`, `"64"` or (for a count) `8.0` is refused, not read as the number it resembles.

    headerTimeoutSeconds: float = Field(
        default=10.0, ge=0.1, le=120, strict=True,
        description="A request's line and headers must arrive within this many seconds of the connection opening "
                    "(or of the previous answer, on a kept-alive connection); a stalled or idle connection is "
                    "closed. 0.1 to 120: longer lets a slow caller hold a connection slot for minutes.")
    bodyTimeoutSeconds: float = Field(
        default=10.0, ge=0.1, le=300, strict=True,
        description="A request body must arrive within this many seconds once its headers have, else 408 and the "
                    "connection is closed. 0.1 to 300: the largest body (`limits.maxRequestBytes`) crosses a local "
                    "socket in far less; longer only helps a stalled sender hold a handler.")
    maxConnections: int = Field(
        default=256, ge=8, le=4096, strict=True,
        description="Connections served at once; one more is answered 503 and closed. 8 to 4096: at least a few "
                    "for onexctl and health probes, at most what the daemon's open-file limit leaves room for "
                    "(each connection holds a file descriptor and buffers).")
    authFailureBurst: int = Field(
        default=10, ge=1, le=1000, strict=True,
        description="Failed authentications one peer uid may have at once before it is held to "
                    "`authFailuresPerMinute` (a success in between gives none back); a held uid's credentials are "
                    "answered 429 without being looked at. 1 to 1000.")
    authFailuresPerMinute: int = Field(
        default=30, ge=1, le=6000, strict=True,
        description="Failed authentications per minute a peer uid gets back after its burst. 1 to 6000 (100 a "
                    "second): above that the limit no longer slows a caller guessing API keys or tokens.")


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
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig, description="Bounds on hostile callers of the API: "
                                                                  "timeouts, connections, failed authentications.")

    @model_validator(mode="after")
    def _grace_covers_tokens(self) -> DaemonConfig:
        grace = self.rotation.graceSeconds
        if grace is not None and grace < self.auth.tokens.ttlSeconds:
            raise ValueError(f"rotation.graceSeconds ({grace}) must be at least auth.tokens.ttlSeconds "
                             f"({self.auth.tokens.ttlSeconds}): a token may not outlive its key")
        return self

    @model_validator(mode="after")
    def _metrics_port_in_range(self) -> DaemonConfig:
        address = self.metrics.address()
        if address is not None and not 1 <= address[1] <= 65535:
            raise ValueError(f"metrics.listen: port {address[1]} is not between 1 and 65535")
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
