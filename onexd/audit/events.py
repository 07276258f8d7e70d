"""The catalogue of audit event types: each type, when it is written, and the fields of its `data`.

docs/audit-events.md is generated from it (`onexd docs audit-events`; `make generate`), and a test fails when a
module writes an event type the catalogue does not name, or when the document drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class NewEvent(NamedTuple):
    """An event to append: its type (one of CATALOGUE), who, the outcome, its data, the policy digest."""

    type: str
    principal: str | None = None
    outcome: str = "success"
    data: dict[str, Any] | None = None
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    when: str
    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()


def _t(name: str, when: str, *fields: str, optional: tuple[str, ...] = ()) -> EventType:
    return EventType(name, when, fields, optional)


_JOB = ("job", "node", "profile", "zone")

CATALOGUE: dict[str, EventType] = {t.name: t for t in (
    _t("daemon.start", "the daemon started", "version", "pid"),
    _t("daemon.stop", "the daemon stopped", "pid"),
    _t("auth.success", "a bearer token or API key was accepted", "method"),
    _t("auth.failure", "credentials were refused (outcome failure)", "method", "code", "reason"),
    _t("authz.decision", "an authorization decision (outcome allowed or denied)", "permission",
       optional=("roles", "target", "capability", "reasons", "lockedUntil", "reads")),
    _t("job.submitted", "a job was accepted and queued", *_JOB),
    _t("job.started", "a job started running", *_JOB),
    _t("job.finished", "a job ended (outcome success only when it succeeded)", *_JOB, "status", "exitCode",
       "reason", "usage", "blockedSyscall"),
    _t("pool.slot.created", "a warm-pool slot was created and started (policy: the digest it was made from)",
       "slot", "key", "target", "image"),
    _t("pool.slot.removed", "a warm-pool slot was removed: after its one job (job), or drained, too old, lost or "
       "at stop (why)", "slot", "key", "target", "why", "job"),
    _t("secret.accessed", "a job's secret was read from its source", "job", "secret", "source"),
    _t("egress.refused", "an egress proxy refused a connection (outcome denied)", "job", "zone", "destination",
       "why"),
    _t("policy.activated", "a bundle version became active", "bundle", "version", "reason"),
    _t("policy.rejected", "a bundle was rejected; the last good version stays", "bundle", "version", "codes",
       "reason"),
    _t("policy.removed", "a bundle directory went away", "bundle", "reason"),
    _t("policy.rollback-allowed", "a reload was allowed to lower these bundles' versions", "bundles"),
    _t("principal.locked", "repeated denials or blocked system calls locked a principal out (outcome denied)",
       "principal", "lockedAt", "until", "strikes", "lastStrike"),
    _t("principal.unlocked", "an operator lifted a principal's lockout", "subject", "lock"),
    _t("token.issued", "onexd issued a token", "subject", "jti", "kid", "expiresAt"),
    _t("apikey.created", "an API key was created", "apikey", "keyId", "expiresAt"),
    _t("apikey.revoked", "an API key was revoked", "apikey"),
    _t("audit.checkpoint", "a signed checkpoint covers the trail up to toSeq", "fromSeq", "toSeq", "kid",
       optional=("reason",)),
    _t("key.key-created", "a signing key was generated", "kid", "state", "algorithm"),
    _t("key.key-activated", "a signing key became the active one", "kid", "reason"),
    _t("key.key-rotated-out", "a signing key stopped signing; it verifies until graceUntil", "kid", "graceUntil",
       "reason"),
    _t("key.key-retired", "a signing key no longer verifies", "kid"),
    _t("key.secret-store-data-key-created", "the secret store's data key was created", "keyId"),
    _t("key.secret-store-data-key-rotated", "the secret store was re-encrypted under a new data key", "from",
       "to", "entries", "reason"),
)}


def key_event_type(kind: str) -> str:
    """The audit type of a keystore or secret-store event (`key rotated out` -> `key.key-rotated-out`)."""
    return "key." + kind.replace(" ", "-")


def problems_of(event: dict[str, object]) -> list[str]:
    """What is wrong with a written event against the catalogue: an unknown type, missing or unknown fields."""
    known = CATALOGUE.get(str(event.get("type")))
    if known is None:
        return [f"unknown event type {event.get('type')!r}"]
    data = event.get("data")
    keys = set(data) if isinstance(data, dict) else set()
    out = [f"{known.name}: missing field {f}" for f in known.fields if f not in keys]
    out += [f"{known.name}: field {f} not in the catalogue" for f in sorted(keys - set(known.fields)
                                                                           - set(known.optional))]
    return out


def catalogue_markdown() -> str:
    """docs/audit-events.md."""
    lines = ["# Audit event types", "",
             "Generated from `onexd/audit/events.py` by `make generate`; a test fails when this file drifts.",
             "Every event also carries `seq`, `id`, `ts`, `type`, `principal`, `outcome`, `policy`, "
             "`correlationId`, `prevHash` and `hash`; the fields below are those of its `data`.", "",
             "| Type | Written when | Data fields |", "|---|---|---|"]
    for t in CATALOGUE.values():
        fields = ", ".join(f"`{f}`" for f in t.fields)
        if t.optional:
            fields += (", " if fields else "") + ", ".join(f"`{f}` (optional)" for f in t.optional)
        lines.append(f"| `{t.name}` | {t.when} | {fields} |")
    return "\n".join(lines) + "\n"
