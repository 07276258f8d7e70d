"""DaemonConfig: how the daemon runs. Frozen; building it has no side effects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from onexd.errors import ConfigError
from onexd.fields import AbsPath, Model, Name, Size, first_error


class SocketConfig(Model):
    path: AbsPath = Field(default="/run/onexd/onexd.sock", description="Unix socket the API listens on.")
    mode: Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")] = Field(
        default="0660", description="Octal file mode of the socket (quoted).")
    group: str | SkipJsonSchema[None] = Field(default=None, description="Group owning the socket.")


class RuntimeConfig(Model):
    backend: Literal["docker", "fake"] = Field(
        default="docker", description="`docker`; `fake` runs no containers (API tests and benchmarks only).")
    dockerHost: str = Field(default="unix:///var/run/docker.sock", description="Docker engine address.")
    egressNetwork: str = Field(default="bridge", description="Network egress proxies reach out through.")


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


class AuditSink(Model):
    name: Name
    type: Literal["file", "syslog", "webhook"]
    path: AbsPath | SkipJsonSchema[None] = None
    url: str | SkipJsonSchema[None] = None
    address: str | SkipJsonSchema[None] = None
    batchSize: int = Field(default=500, ge=1, le=100_000)


class AuditConfig(Model):
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    shipEverySeconds: int = Field(default=5, ge=1)
    delivery: Literal["enforced", "best_effort"] = Field(default="enforced")
    sinks: tuple[AuditSink, ...] = ()
    maxSegmentBytes: Size = Field(default=64 * 1024 * 1024)
    keepSegments: int = Field(default=100, ge=1)


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


def config_from_data(data: object, source: str) -> DaemonConfig:
    """Build a DaemonConfig from parsed data; a bad field raises ConfigError naming it."""
    if data is None:
        data = {}
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        field, message = first_error(exc, "(top level)")
        raise ConfigError(f"{source}: field {field}: {message}") from None
