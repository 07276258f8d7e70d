"""JSON Schemas: generated from the models, validated with jsonschema. The only module importing jsonschema.

Remote `$ref`s are never fetched: the registry has no retrieve function, so an unknown reference is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError

from onexd.config import DaemonConfig
from onexd.errors import PolicyError
from onexd.fields import standard_schema
from onexd.policy import inputschema, models, regex
from onexd.policy.models import KINDS, Model
from onexd.policy.problems import Problem, problem
from onexd.policy.yamlsafe import YamlDocument, escape_pointer

SCHEMA_BASE = "https://onexd.dev/schemas/v1/"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower() + ".json"


def _schema_for(kind: str, model: type[Model]) -> dict[str, Any]:
    generated = standard_schema(model.model_json_schema(mode="validation"))
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_BASE + schema_file_name(kind),
        "title": f"onexd {kind}",
        "description": (model.__doc__ or kind).strip().splitlines()[0],
        **{k: v for k, v in generated.items() if k not in ("title", "description")},
    }


def generated_schemas() -> dict[str, dict[str, Any]]:
    """kind -> JSON Schema, for every policy kind and DaemonConfig."""
    out = {kind: _schema_for(kind, model) for kind, model in KINDS.items()}
    out["DaemonConfig"] = _schema_for("DaemonConfig", DaemonConfig)
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in generated_schemas().items():
        path = directory / schema_file_name(kind)
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _pointer(parts: Iterable[Any]) -> str:
    return "".join(f"/{escape_pointer(str(p))}" for p in parts)


SIZE_HINT = ("is not a size: write bytes (67108864) or a binary suffix Ki, Mi, Gi, Ti (512Mi, 1Gi); "
             "512M and 1G are refused because they read two ways (10^6 or 2^20)")


def _is_size(error: ValidationError) -> bool:
    options = error.validator_value if error.validator == "anyOf" else ()
    return isinstance(options, list) and any(isinstance(o, Mapping) and o.get("pattern") == models.SIZE_PATTERN
                                             for o in options)


def _describe(error: ValidationError) -> tuple[str, str, str]:
    """(code, pointer, message) for one jsonschema error."""
    where = _pointer(error.absolute_path)
    validator = error.validator
    if _is_size(error):
        return "schema/invalid-value", where, f"the value {SIZE_HINT}"
    if validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        instance = error.instance if isinstance(error.instance, dict) else {}
        extras = sorted(set(instance) - set(schema.get("properties", {})))
        field = extras[0] if extras else "?"
        return "schema/unknown-field", f"{where}/{escape_pointer(field)}", f"unknown field {field!r}"
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in str(error.message) else "?"
        code = "security/missing-limit" if where.endswith("/resources") or missing == "resources" \
            else "schema/missing-field"
        return code, f"{where}/{escape_pointer(missing)}", f"required field {missing!r} is missing"
    if validator == "type":
        return "schema/wrong-type", where, f"expected {error.validator_value}, got {type(error.instance).__name__}"
    if validator == "pattern" and where.endswith("/metadata/name"):
        return "schema/invalid-name", where, f"invalid name: use {models.PATTERN_WORDS[models.NAME_PATTERN]}"
    if validator == "pattern" and where.endswith("/version"):
        return "schema/invalid-version", where, "not a semantic version (1.2.3)"
    if validator == "pattern":
        expected = models.PATTERN_WORDS.get(str(error.validator_value),
                                            "the documented form (see the policy reference)")
        return "schema/invalid-value", where, f"not valid here: expected {expected}"
    return "schema/invalid-value", where, _constraint(error)


_CONSTRAINTS = {
"minimum": "must be at least {v}", "maximum": "must be at most {v}",
    "exclusiveMinimum": "must be greater than {v}", "exclusiveMaximum": "must be less than {v}",
    "minLength": "must be at least {v} characters long", "maxLength": "must be at most {v} characters long",
    "minItems": "must have at least {v} items", "maxItems": "must have at most {v} items",
    "enum": "must be one of {v}", "const": "must be {v}", "format": "is not a valid {v}",
    "uniqueItems": "has duplicate items", "minProperties": "must have at least {v} fields",
    "maxProperties": "must have at most {v} fields", "multipleOf": "must be a multiple of {v}",
}


def _constraint(error: ValidationError) -> str:
    """What the value violates, never the value itself: a rejected value may be a secret put in the wrong
    field (a password as Secret.spec.key), and messages reach status pages, logs and the API."""
    template = _CONSTRAINTS.get(str(error.validator))
    if template is None:
        return f"the value fails the schema's `{error.validator}` rule"
    value = error.validator_value
    shown = ", ".join(repr(x) for x in value) if isinstance(value, list) else str(value)
    return template.format(v=shown)


class SchemaSet:
    """Compiled validators for every kind; build once, share freely (validators are immutable)."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._schemas = dict(schemas or generated_schemas())
        # No `retrieve`: any $ref outside a schema's own $defs is unresolvable, never fetched.
        self._registry: referencing.Registry[Any] = referencing.Registry()

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        return {kind: Draft202012Validator(schema, registry=self._registry,
                                           format_checker=Draft202012Validator.FORMAT_CHECKER)
                for kind, schema in self._schemas.items()}

    def validate(self, file: str, doc: YamlDocument) -> list[Problem]:
        """All schema problems of one document (envelope first, then its kind's schema)."""
        data = doc.data
        if not isinstance(data, dict):
            return [problem(file, doc.line, "", "yaml/not-a-mapping",
                            "a document must be a mapping with apiVersion, kind, metadata and spec")]
        if data.get("apiVersion") != "onexd/v1":
            return [problem(file, doc.line_of("/apiVersion"), "/apiVersion", "schema/api-version",
                            "apiVersion is not supported; use onexd/v1")]
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            return [problem(file, doc.line_of("/kind"), "/kind", "schema/kind",
                            f"unknown kind; expected one of {', '.join(KINDS)}")]
        out: list[Problem] = []
        for error in self._validators[kind].iter_errors(data):
            for leaf in _leaves(error):
                code, where, message = _describe(leaf)
                if where.endswith("/command") and leaf.validator == "type" and isinstance(leaf.instance, str):
                    code, message = "schema/shell-command", "command must be an argv list, not a shell string"
                out.append(problem(file, doc.line_of(where), where, code, f"{kind}: {message}"))
        return _dedupe(out)

    @staticmethod
    @cache
    def shared() -> SchemaSet:
        """The validators for the built-in schemas, generated and compiled once per process: generating them
        from the models takes ~50 ms, which every policy load used to pay again."""
        return SchemaSet()

    def config_problems(self, doc: YamlDocument) -> list[tuple[str, int | None, str]]:
        """(JSON pointer, line, message) for each way a daemon config document breaks its schema. Run on the file
        as written, it holds the file to the schema's types (`true` is not a number, "4" not an integer), which
        the model alone would coerce; values are never echoed. A null is an unset field, left to the model (which
        takes it where the field is optional and refuses it elsewhere)."""
        out: list[tuple[str, int | None, str]] = []
        for error in self._validators["DaemonConfig"].iter_errors(without_nulls(doc.data)):
            for leaf in _leaves(error):
                _, where, message = _describe(leaf)
                if (where, message) not in [(w, m) for w, _, m in out]:
                    out.append((where, doc.line_of(where), message))
        return out

    def validate_data(self, kind: str, data: Any) -> list[str]:
        """Plain messages for non-policy data (daemon config, API bodies)."""
        return [f"{_pointer(e.absolute_path) or '/'}: {e.message}"
                for e in self._validators[kind].iter_errors(data)]


def without_nulls(value: Any) -> Any:
    """Parsed YAML with every mapping entry whose value is null left out (null = unset, the default applies)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _leaves(error: ValidationError) -> list[ValidationError]:
    """For anyOf/oneOf failures, the most specific sub-errors say more than 'is not valid under any'."""
    if _is_size(error):
        return [error]
    if error.validator in ("anyOf", "oneOf") and error.context:
        # A branch whose type matched says more (`must be at most N`) than one of another type.
        typed = [e for e in error.context if e.validator != "type"]
        best = jsonschema.exceptions.best_match(typed or error.context)
        if best is not None and list(best.absolute_path) != list(error.absolute_path):
            return [best]
        if error.validator == "oneOf" and isinstance(error.instance, dict):
            return [error]
        return [best] if best is not None else [error]
    return [error]


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for p in problems:
        key = (p.path, p.code, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def check_json_schema(schema: Any) -> str | None:
    """None if schema is a valid Draft 2020-12 schema without remote references, else why not."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    refs = [v for v in _walk_refs(schema) if not v.startswith("#")]
    if refs:
        return f"remote $ref {refs[0]!r} is not allowed (never fetched)"
    found = inputschema.problems(schema)
    return found[0] if found else None


def _walk_refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)


# Job input is checked with every regular expression run by RE2 (linear time): `pattern`, `patternProperties`
# (and `additionalProperties`, which consults it) and the `regex` format. Python's `re` backtracks: 28
# characters against `^(a+)+$` held the event loop for seconds.
def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterable[ValidationError]:
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance[:100]!r} does not match {pattern[:100]!r}")


def _matching(schema: Any, key: str) -> bool:
    patterns = schema.get("patternProperties", {}) if isinstance(schema, dict) else {}
    return any(regex.search(p, key) for p in patterns)


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any,
                        ) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if regex.search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any,
                           ) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    extras = sorted(k for k in instance if k not in known and not _matching(schema, k))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        yield ValidationError(f"additional properties are not allowed ({', '.join(repr(e) for e in extras[:10])})")


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)


@_FORMATS.checks("regex", raises=PolicyError)
def _is_regex(instance: object) -> bool:
    return not isinstance(instance, str) or regex.why_refused(instance) is None


_InputDraft = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {
    "pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties,
})


class InputValidator:
    """Validates job input against a node's inputSchema (checked by check_json_schema at load), in time linear
    in the input for every regular expression."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = _InputDraft(schema, registry=referencing.Registry(), format_checker=_FORMATS)

    def errors(self, instance: Any, limit: int = 20) -> list[str]:
        out = []
        try:
            for error in self._validator.iter_errors(instance):
                out.append(f"{_pointer(error.absolute_path) or '/'}: {error.message}")
                if len(out) >= limit:
                    break
        except RecursionError:  # the load check refuses reference loops; input nested past the stack is refused
            out.append("/: input nested too deeply for its schema")
        return out
