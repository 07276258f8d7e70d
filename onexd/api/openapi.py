"""The OpenAPI 3.1 document of the socket API, built from the route table and the request models.

A test checks that every route is documented and every documented operation is routed.
"""

from __future__ import annotations

from typing import Any

from onexd import API_VERSION, __version__
from onexd.engine.request import JobRequest

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message", "correlationId"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "correlationId": {"type": "string"},
                   "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                   "details": {"type": "array"}}}}}
_REASON = {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
_JOB = {"type": "object", "required": ["id", "status", "principal", "policy", "createdAt"], "properties": {
    "id": {"type": "string"},
    "status": {"enum": ["queued", "running", "succeeded", "failed", "timed_out", "oom_killed", "cancelled", "error"]},
    "node": {"type": ["string", "null"]}, "profile": {"type": ["string", "null"]}, "zone": {"type": ["string", "null"]},
    "exitCode": {"type": ["integer", "null"]}, "stdout": {"type": "string"}, "stderr": {"type": "string"},
    "truncated": {"type": "boolean"}, "durationMs": {"type": ["integer", "null"]}, "principal": {"type": "string"},
    "policy": {"type": "object", "properties": {"digest": {"type": "string"},
                                                 "bundles": {"type": "object",
                                                             "additionalProperties": {"type": "string"}}}},
    "createdAt": {"type": "string", "format": "date-time"},
    "startedAt": {"type": ["string", "null"], "format": "date-time"},
    "finishedAt": {"type": ["string", "null"], "format": "date-time"}, "reason": {"type": "string"},
    "usage": {"type": ["object", "null"], "description": "cpuMs, memoryPeakBytes, pidsPeak, outputBytes, wallMs"},
    "blockedSyscall": {"description": "{name, number, arch, action, comm}, \"unknown\", or null",
                       "type": ["object", "string", "null"]}}}
_DECISION = {"type": "object", "required": ["allowed", "reasons"], "properties": {
    "allowed": {"type": "boolean"}, "principal": {"type": "string"}, "target": {"type": "string"},
    "roles": {"type": "array", "items": {"type": "string"}}, "capability": {"type": ["string", "null"]},
    "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
    "sandbox": {"type": ["object", "null"]}, "policy": {"type": "object"},
    "inputErrors": {"type": "array", "items": {"type": "string"}}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any], status: str = "200", media: str = "application/json"
        ) -> dict[str, Any]:
    return {status: {"description": description, "content": {media: {"schema": schema}}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "invalid request", 401: "bad credentials", 403: "denied (with reasons)", 404: "not found",
            413: "body too large", 429: "rate or concurrency limit (Retry-After)", 503: "not ready"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ref("Error")}}}
            for c in codes}


def _job_id() -> list[dict[str, Any]]:
    return [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]


def _job_paths(common: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """/version, /v1/health and /v1/jobs."""
    return {
    "/version": {"get": {"summary": "Daemon and API version (no permission needed)", "operationId": "version",
                         "responses": _ok("versions", {"type": "object", "properties": {
                             "version": {"type": "string"}, "apiVersion": {"type": "string"}}})}},
    "/v1/health": {"get": {"summary": "ok, or degraded while a bundle is rejected or the engine is unreachable",
                           "operationId": "health", "responses": _ok("health", _ref("Health"))}},
    "/v1/jobs": {
        "post": {"summary": "Submit a job (nodes:execute and a covering capability)", "operationId": "submitJob",
                 "parameters": [{"name": "wait", "in": "query", "schema": {"type": "boolean"},
                                 "description": "answer 200 with the finished record"}],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("JobRequest")}}},
                 "responses": {**_ok("finished (wait=true)", _ref("Job")), **_ok("queued", _ref("Job"), "202"),
                               **_errors(400, 403, 413, 503, *common)}},
        "get": {"summary": "List own jobs (jobs:read), or all with all=true (jobs:read-all)", "operationId":
                "listJobs", "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "before", "in": "query", "schema": {"type": "string"}, "description": "page token"},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "all", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {**_ok("a page of jobs, newest first", {"type": "object", "properties": {
                    "jobs": {"type": "array", "items": _ref("Job")}, "next": {"type": ["string", "null"]}}}),
                    **_errors(400, 403, *common)}}},
    "/v1/jobs/{id}": {
        "get": {"summary": "One job (own with jobs:read, any with jobs:read-all)", "operationId": "getJob",
                "parameters": _job_id(), "responses": {**_ok("the job", _ref("Job")), **_errors(404, *common)}},
        "delete": {"summary": "Cancel a job (jobs:cancel, or jobs:cancel-all)", "operationId": "cancelJob",
                   "parameters": _job_id(),
                   "responses": {**_ok("already finished", _ref("Job")), **_ok("cancelling", _ref("Job"), "202"),
                                 **_errors(404, *common)}}},
    "/v1/jobs/{id}/logs": {"get": {
        "summary": "Output as NDJSON lines {stream, line}, then {event: end}", "operationId": "jobLogs",
        "parameters": [*_job_id(), {"name": "follow", "in": "query", "schema": {"type": "boolean"},
                                    "description": "wait for a running job to end"}],
        "responses": {**_ok("log lines", {"type": "object"}, media="application/x-ndjson"),
                      **_errors(404, *common)}}},
    }


def _policy_paths(common: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """/v1/policy."""
    return {
    "/v1/policy": {"get": {"summary": "Active bundles and rejections (policy:read)", "operationId": "policy",
                           "responses": {**_ok("policy state", _ref("Policy")), **_errors(403, *common)}}},
    "/v1/policy/reload": {"post": {"summary": "Reload the policy directory now (policy:reload); "
                                              "allowRollback names bundles that may go back to a lower version",
                                   "operationId": "reloadPolicy",
                                   "requestBody": {"required": False, "content": {"application/json": {
                                       "schema": {"type": "object", "properties": {"allowRollback": {
                                           "type": "array", "items": {"type": "string"}}}}}}},
                                   "responses": {**_ok("reload result", {"type": "object"}),
                                                 **_errors(403, *common)}}},
    "/v1/policy/explain": {"post": {
        "summary": "Decision and effective sandbox for a request; nothing runs (policy:read to ask for "
                   "another subject)", "operationId": "explain",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ExplainRequest")}}},
        "responses": {**_ok("the decision", _ref("Decision")), **_errors(400, 403, *common)}}},
    }


def _credential_paths(common: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """/v1/keys, /v1/tokens and /v1/apikeys."""
    return {
    "/v1/keys/jwks": {"get": {"summary": "Public keys that verify onexd's tokens: pending, active, grace "
                                         "(no permission needed)", "operationId": "jwks",
                              "responses": _ok("a JWKS", {"type": "object", "properties": {
                                  "keys": {"type": "array", "items": {"type": "object"}}}})}},
    "/v1/keys": {"get": {"summary": "Signing keys and their states (keys:read)", "operationId": "listKeys",
                         "responses": {**_ok("keys", {"type": "object"}), **_errors(403, *common)}}},
    "/v1/keys/rotate": {"post": {
        "summary": "Rotate the signing keys, or the secret store's data key (keys:rotate)",
        "operationId": "rotateKeys",
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"target": {"enum": ["signing", "secrets"]}}}}}},
        "responses": {**_ok("rotated", {"type": "object"}), **_errors(400, 403, *common)}}},
    "/v1/tokens": {"post": {
        "summary": "Issue a token for a subject (tokens:issue)", "operationId": "issueToken",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["subject"], "properties": {
                "subject": {"type": "string"}, "ttlSeconds": {"type": "integer", "minimum": 1}}}}}},
        "responses": {**_ok("the token", {"type": "object", "properties": {"token": {"type": "string"}}}, "201"),
                      **_errors(400, 403, *common)}}},
    "/v1/apikeys": {
        "post": {"summary": "Create an API key, shown once (apikeys:manage)", "operationId": "createApiKey",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["name"], "properties": {
                         "name": {"type": "string"}, "ttlDays": {"type": "integer", "minimum": 1}}}}}},
                 "responses": {**_ok("the key", {"type": "object", "properties": {"key": {"type": "string"}}},
                                     "201"), **_errors(400, 403, *common)}},
        "get": {"summary": "API keys without their secrets (apikeys:manage)", "operationId": "listApiKeys",
                "responses": {**_ok("keys", {"type": "object"}), **_errors(403, *common)}}},
    "/v1/apikeys/{name}": {"delete": {
        "summary": "Revoke an API key (apikeys:manage)", "operationId": "revokeApiKey",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_ok("revoked", {"type": "object"}), **_errors(403, 404, *common)}}},
    }


def _audit_and_monitoring_paths(common: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """/v1/audit, /v1/zones, /metrics and /openapi.json."""
    return {
    "/v1/audit": {"get": {
        "summary": "Audit events after a seq (audit:read)", "operationId": "auditEvents",
        "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                       {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 30},
                        "description": "long poll: wait up to this many seconds for an event after since"}],
        "responses": {**_ok("events", {"type": "object", "properties": {
            "events": {"type": "array", "items": {"type": "object"}}, "next": {"type": "integer"}}}),
            **_errors(400, 403, *common)}}},
    "/v1/audit/verify": {"get": {"summary": "Verify the hash chain and signed checkpoints (audit:read)",
                                 "operationId": "auditVerify",
                                 "responses": {**_ok("result", {"type": "object", "properties": {
                                     "ok": {"type": "boolean"}, "firstBadSeq": {"type": ["integer", "null"]}}}),
                                     **_errors(403, *common)}}},
    "/v1/zones": {"get": {"summary": "Network zones: mode, network, proxy state, allowlist (policy:read)",
                          "operationId": "listZones",
                          "responses": {**_ok("zones", {"type": "object"}), **_errors(403, *common)}}},
    "/v1/pool": {"get": {"summary": "Warm-pool keys: target, size, idle slots and ages, counters (monitoring:read)",
                         "operationId": "listPool",
                         "responses": {**_ok("pool", {"type": "object"}), **_errors(403, *common)}}},
    "/metrics": {"get": {"summary": "Prometheus metrics (monitoring:read)", "operationId": "metrics",
                         "responses": {**_ok("text format", {"type": "string"}, media="text/plain"),
                                       **_errors(403, *common)}}},
    "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                              "responses": _ok("OpenAPI 3.1", {"type": "object"})}},
    }


def _forensics_paths(common: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """/v1/policy/analyze, /v1/audit/search and /v1/principals/{name}/unlock (job forensics)."""
    errors = _errors(400, 403, 404, *common)
    return {
    "/v1/policy/analyze": {"get": {
        "summary": "Posture score (0-100, higher is stronger) and weighted findings of every profile and node "
                   "(policy:read)", "operationId": "analyzePolicy",
        "parameters": [{"name": "hostCpus", "in": "query", "schema": {"type": "number"}},
                       {"name": "hostMemory", "in": "query", "schema": {"type": "string"}}],
        "responses": {**_ok("scores", {"type": "object"}), **errors}}},
    "/v1/audit/search": {"get": {
        "summary": "Audit events by principal, node, job, outcome, type and time range (audit:read)",
        "operationId": "searchAudit",
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                       for n in ("principal", "node", "job", "outcome", "type", "since", "until", "limit")],
        "responses": {**_ok("matching events, oldest first", {"type": "object"}), **errors}}},
    "/v1/principals/{name}/unlock": {"post": {
        "summary": "Lift a principal's lockout (users:write)", "operationId": "unlockPrincipal",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_ok("unlocked", {"type": "object"}), **errors}}},
    }


def document() -> dict[str, Any]:
    common = (401, 429)
    paths = {**_job_paths(common), **_policy_paths(common), **_credential_paths(common),
             **_audit_and_monitoring_paths(common), **_forensics_paths(common)}
    job_request = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "onexd socket API", "version": __version__,
                 "description": f"HTTP/1.1 + JSON on onexd's Unix socket ({API_VERSION}). Callers are identified "
                                "by SO_PEERCRED. Errors are {\"error\": {code, message, correlationId}}."},
        "servers": [{"url": "http://onexd", "description": "curl --unix-socket /run/onexd/onexd.sock"}],
        "paths": paths,
        "components": {"schemas": {
            "JobRequest": job_request, "Job": _JOB, "Error": _ERROR, "Reason": _REASON, "Decision": _DECISION,
            "ExplainRequest": {"type": "object", "required": ["request"], "additionalProperties": False,
                               "properties": {"request": _ref("JobRequest"),
                                              "subject": {"type": "string", "description": "KIND:NAME"}}},
            "Health": {"type": "object", "properties": {"status": {"enum": ["ok", "degraded"]},
                                                        "engine": {"type": "string"}, "jobs": {"type": "object"},
                                                        "policy": {"type": "object"}}},
            "Policy": {"type": "object", "properties": {"digest": {"type": "string"}, "degraded": {"type": "boolean"},
                                                        "bundles": {"type": "array"}, "rejections": {"type": "array"}}},
        }},
    }
