"""The exception tree of onexd. Every exception class in onexd derives from OnexdError.

    OnexdError
    ├── UsageError                a command line or request that cannot be understood
    │   ├── InvalidInput          a job's input does not match its node's inputSchema (carries the errors)
    │   ├── RequestError          an HTTP request body or header that cannot be read (carries its stable code)
    │   │   ├── BodyTooLarge      a request body over the configured limit
    │   │   └── BodyTimeout       a request body not received in time (408)
    │   └── AmbiguousJobId        a job id prefix that matches more than one job
    ├── ConfigError               the daemon configuration is invalid
    │   └── MasterKeyMissing      no master key anywhere, and an offline command may not create one
    ├── PolicyError               a policy could not be loaded
    │   └── SignatureError        a bundle signature is missing, untrusted or does not match
    ├── KeyFileError              a key file could not be read or has the wrong type
    ├── KeystoreError             the keystore cannot serve a key (none active, locked, corrupt)
    ├── JwsError                  a JWS could not be verified
    │   ├── JwsMalformed          not a JWS, or not of the expected type: the signature file is invalid
    │   └── JwsUntrusted          well-formed, but no trusted key verifies it
    ├── AuthenticationError       presented credentials are refused (carries its stable code)
    ├── TokenError                a token problem (base of the token errors)
    │   ├── TokenRejected         a token fails verification (also an AuthenticationError: 401)
    │   └── TokenRequestInvalid   a token cannot be issued as asked (also a UsageError: 400)
    ├── ApiKeyError               an API-key problem (base of the API-key errors)
    │   ├── ApiKeyRejected        malformed, unknown, revoked or expired (also an AuthenticationError: 401)
    │   ├── ApiKeyNameInvalid     a name that is not a DNS label (also a UsageError: 400)
    │   ├── ApiKeyExists          the name is taken (409)
    │   └── ApiKeyNotFound        no key with that name (also a NotFound: 404)
    ├── PermissionDenied          the caller lacks a permission (carries the decision's reasons)
    │   └── LockedOut             the caller is locked out after repeated denials or blocked system calls
    ├── NotFound                  the thing asked for does not exist, or is not the caller's to see
    ├── RateLimited               too many requests from one principal (carries retry_after_s)
    ├── TooManyJobs               the job queue or the caller's share of it is full (carries retry_after_s)
    ├── SecretError               a secret could not be read from its source
    ├── DeliveryError             an audit batch did not reach its sink's receiver (the shipper retries it)
    ├── ServiceUnavailable        a part of the daemon cannot serve now (the message says which)
    │   ├── NotAccepting          the daemon is shutting down
    │   ├── AuditUnavailable      the audit trail cannot be written (enforced delivery)
    │   ├── StorageUnavailable    the job database cannot be written
    │   ├── NotConfigured         this daemon was built without the part (no audit, no keys, no metrics)
    │   └── RuntimeFailure        the container engine failed (not the job: the engine)
    │       ├── SlotLost          a warm-pool slot was gone before its job was handed over (nothing ran)
    │       └── KubernetesUnsupported  a job the kubernetes backend refuses (it cannot lock it down as asked)
    ├── DaemonUnreachable         onexctl: the daemon's socket does not answer (or may not be opened)
    └── ApiFailure                onexctl: the daemon answered with an error (carries status and body)

A denial is never an exception inside the core: it is a Decision value (see onexd.engine.decide). The HTTP
boundary turns a denial into PermissionDenied. Each boundary maps this tree in one table: HTTP statuses in
onexd/api/errors.py, exit codes in onexd/cli/exits.py. This module imports nothing from onexd: it is the bottom
layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class OnexdError(Exception):
    """Root of every error onexd raises on purpose."""


class UsageError(OnexdError):
    """A command line or request that cannot be understood."""


class InvalidInput(UsageError):
    """A job's input does not match its node's inputSchema."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("input does not match the node's inputSchema: " + "; ".join(errors))
        self.errors = errors


class RequestError(UsageError):
    """An HTTP request that cannot be read: bad encoding, too deep, not JSON, a field out of range."""

    def __init__(self, code: str, message: str, details: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.details = list(details)


class BodyTooLarge(RequestError):
    """A request body over the configured limit."""

    def __init__(self, message: str) -> None:
        super().__init__("body-too-large", message)


class BodyTimeout(RequestError):
    """A request body that was not received in time."""

    def __init__(self, message: str) -> None:
        super().__init__("body-timeout", message)


class AmbiguousJobId(UsageError):
    """A job id prefix that matches more than one job (the API answers 400)."""


class ConfigError(OnexdError):
    """The daemon configuration is invalid; the message names the field."""


class MasterKeyMissing(ConfigError):
    """No master key anywhere, and the caller (an offline command) may not create one."""


class PolicyError(OnexdError):
    """A policy directory or bundle could not be loaded."""

    # The problems are onexd.policy.problems.Problem values; typed loosely so this bottom module imports nothing.
    def __init__(self, message: str, problems: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class SignatureError(PolicyError):
    """A bundle signature is missing, untrusted or does not match the files."""


class KeyFileError(OnexdError):
    """A key file could not be read, or holds a key of an unsupported type."""


class KeystoreError(OnexdError):
    """The keystore cannot serve a key."""


class JwsError(OnexdError):
    """A JWS could not be parsed or verified."""


class JwsMalformed(JwsError):
    """Not a compact JWS, or not of the expected `typ`."""


class JwsUntrusted(JwsError):
    """A well-formed JWS that no trusted key verifies (unknown key, refused algorithm, bad signature)."""


class AuthenticationError(OnexdError):
    """Presented credentials are refused; never a silent fall-back to the Unix peer."""

    code = "invalid-credentials"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TokenError(OnexdError):
    """A token problem; the message says why without repeating the token."""


class TokenRejected(TokenError, AuthenticationError):
    """A token failed verification."""

    code = "invalid-token"


class TokenRequestInvalid(TokenError, UsageError):
    """A token cannot be issued as asked (a lifetime out of range)."""


class ApiKeyError(OnexdError):
    """An API-key problem."""


class ApiKeyRejected(ApiKeyError, AuthenticationError):
    """An API key is malformed, unknown, revoked or expired."""

    code = "invalid-api-key"


class ApiKeyNameInvalid(ApiKeyError, UsageError):
    """An API-key name that is not a DNS label."""


class ApiKeyExists(ApiKeyError):
    """An API key of that name exists (revoke it first)."""


class PermissionDenied(OnexdError):
    """The caller lacks a permission; reasons are the decision's `{code, message}` entries."""

    def __init__(self, message: str, reasons: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)


class LockedOut(PermissionDenied):
    """The caller's submissions are suspended (incident response) until the lock expires or is lifted."""


class NotFound(OnexdError):
    """The thing asked for does not exist, or is not the caller's to see (the two are not told apart)."""


class ApiKeyNotFound(ApiKeyError, NotFound):
    """No API key of that name."""


class RateLimited(OnexdError):
    """Too many requests from one principal."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyJobs(OnexdError):
    """The queue (or the caller's share of it) is full; retry_after_s is a hint for Retry-After."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SecretError(OnexdError):
    """A secret could not be read from its source; the message never contains a value."""


class DeliveryError(OnexdError):
    """An audit batch did not reach its receiver; the message is safe to log (never a header value or a
    secret)."""


class ServiceUnavailable(OnexdError):
    """A part of the daemon cannot serve now; the message says which part, never how the code failed."""


class NotAccepting(ServiceUnavailable):
    """The daemon is shutting down and takes no new jobs."""


class AuditUnavailable(ServiceUnavailable):
    """The audit trail cannot be written; in enforced mode the action it would record is refused."""


class StorageUnavailable(ServiceUnavailable):
    """The job database cannot be written."""


class NotConfigured(ServiceUnavailable):
    """This daemon was built without the part a request needs."""


class RuntimeFailure(ServiceUnavailable):
    """The container engine failed (as opposed to the job failing)."""


class SlotLost(RuntimeFailure):
    """A warm-pool slot was gone before its job was handed over: nothing ran, the cold path may take the job."""


class DaemonUnreachable(OnexdError):
    """onexctl: the daemon's socket does not answer, or the caller may not open it."""


class ApiFailure(OnexdError):
    """onexctl: the daemon answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(error.get("message", f"HTTP {status}"))
        self.status, self.body, self.error = status, body, error


class KubernetesUnsupported(RuntimeFailure):
    """A setting the kubernetes backend cannot give a Pod without weakening it (e.g. a capability add that
    Pod Security "restricted" forbids): the job is refused, never run with the setting dropped."""
