"""Reference documentation generated from the single sources of truth: the JSON Schemas, the OpenAPI document,
the rule codes and the audit event catalogue. `make generate` writes docs/policy-reference.md, docs/api.md,
docs/rules.md and docs/audit-events.md; tests fail when they drift."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from onexd.api.openapi import document
from onexd.audit.events import catalogue_markdown
from onexd.policy.problems import RULES
from onexd.policy.schema import generated_schemas, schema_file_name
from onexd.policy.security import SAFE_CAPABILITIES


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "anyOf" in node:
        return " or ".join(_type(n, defs) for n in node["anyOf"])
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        return f"map of {_type(node['additionalProperties'], defs)}"
    return str(kind)


def _rows(node: dict[str, Any], defs: dict[str, Any], prefix: str, depth: int = 0) -> list[str]:
    if "$ref" in node:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    required = set(node.get("required", []))
    rows = []
    for name, prop in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        description = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{path}` | {_type(prop, defs)} | {'yes' if name in required else ''} | {default} | "
                    f"{description} |")
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        if depth < 4 and ("$ref" in target or target.get("properties")):
            rows += _rows(target, defs, f"{path}{'[]' if prop.get('type') == 'array' else ''}.", depth + 1)
    return rows


def policy_reference() -> str:
    lines = ["# Policy reference", "",
             "Generated from `schemas/` (which is generated from `onexd/policy/models.py`) by `make generate`.",
             "Every document is `apiVersion: onexd/v1`, `kind`, `metadata: {name, labels, annotations}`, `spec`. "
             "Unknown fields are errors everywhere.", ""]
    for kind, schema in generated_schemas().items():
        defs = schema.get("$defs", {})
        lines += [f"## {kind}", "", schema["description"], "", f"Schema: `schemas/{schema_file_name(kind)}`", "",
                  "| field | type | required | default | description |", "|---|---|---|---|---|"]
        root = schema["properties"].get("spec") if kind != "DaemonConfig" else schema
        lines += _rows(root, defs, "spec." if kind != "DaemonConfig" else "")
        lines.append("")
    return "\n".join(lines)


def api_reference() -> str:
    doc = document()
    lines = ["# API reference", "", "Generated from `GET /openapi.json` (`onexd/api/openapi.py`) by `make generate`.",
             "", doc["info"]["description"], "", "| method | path | summary | answers |", "|---|---|---|---|"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            answers = ", ".join(sorted(op["responses"]))
            lines.append(f"| {method.upper()} | `{path}` | {op['summary']} | {answers} |")
    lines += ["", "## Request bodies", ""]
    for name, schema in doc["components"]["schemas"].items():
        if name in ("JobRequest", "ExplainRequest"):
            lines += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(lines)


def rules_markdown() -> str:
    """docs/rules.md, generated from RULES so the two never drift."""
    lines = [
        "# Validation rule codes",
        "",
        "Generated from `onexd/policy/problems.py` by `onexd policy rules > docs/rules.md`; a test fails "
        "when this file drifts.",
        "Every problem `onexd policy validate` reports carries one of these stable codes.",
        "",
    ]
    stage = ""
    for rule in RULES.values():
        if rule.stage != stage:
            stage = rule.stage
            lines += [f"## Stage: {stage}", ""]
        lines += [f"### `{rule.code}` — {rule.title}", "", f"**Why:** {rule.why}", "",
                  f"**Fix:** {rule.fix}", ""]
    lines += ["## Capabilities a profile may add", "",
              ", ".join(f"`{c}`" for c in sorted(SAFE_CAPABILITIES)), ""]
    return "\n".join(lines)


def audit_events_reference() -> str:
    return catalogue_markdown().rstrip("\n")


# `onexd docs WHICH`: each generated reference by name.
REFERENCES: dict[str, Callable[[], str]] = {
    "policy": policy_reference, "api": api_reference, "audit-events": audit_events_reference,
}
