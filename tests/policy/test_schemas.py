"""schemas/ and docs/rules.md are generated from the code; shipped and example policies validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onexd.docgen import rules_markdown
from onexd.policy.models import KINDS
from onexd.policy.pipeline import load_directory
from onexd.policy.problems import RULES
from onexd.policy.schema import SchemaSet, generated_schemas, schema_file_name
from tests.conftest import BASELINE, EXAMPLES, ROOT, minimal_docs, write_bundle

SCHEMAS = ROOT / "schemas"


def test_schema_files_match_the_models() -> None:
    """schemas/*.json equal what the models generate (run `onexd policy schemas` after a model change)."""
    generated = generated_schemas()
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert on_disk == {schema_file_name(k) for k in generated}
    for kind, schema in generated.items():
        assert json.loads((SCHEMAS / schema_file_name(kind)).read_text()) == schema, kind


@pytest.mark.parametrize("kind", [*KINDS, "DaemonConfig"])
def test_schema_is_usable_by_editors(kind: str) -> None:
    """Each schema is Draft 2020-12 with an $id, a title, a description, and field descriptions."""
    schema = json.loads((SCHEMAS / schema_file_name(kind)).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(schema_file_name(kind))
    assert schema["title"] and schema["description"]
    assert schema["additionalProperties"] is False


def test_rules_doc_matches_the_rule_table() -> None:
    """docs/rules.md is generated from RULES (run `onexd policy rules > docs/rules.md`)."""
    assert (ROOT / "docs" / "rules.md").read_text() == rules_markdown()


def test_every_rule_code_is_documented_with_a_fix() -> None:
    """Each code has a stage, a reason and a fix."""
    for rule in RULES.values():
        assert rule.why and rule.fix and rule.stage, rule.code


@pytest.mark.parametrize("path", [BASELINE, EXAMPLES], ids=["policies", "examples"])
def test_shipped_policies_validate_without_problems(path: Path) -> None:
    """The baseline and the examples are valid, without even a warning."""
    ev = load_directory(path)
    assert ev.ok
    assert ev.all_problems() == []
    assert len(ev.reports) >= (1 if path == BASELINE else 2)


def test_baseline_has_the_onex_roles_and_a_strict_seccomp_profile() -> None:
    """admin, developer, operator and readonly exist; seccomp denies by default with ENOSYS."""
    ev = load_directory(BASELINE)
    assert ev.snapshot is not None
    assert {"admin", "developer", "operator", "readonly"} <= set(ev.snapshot.roles)
    strict = ev.snapshot.seccomp["onexd-strict"]
    assert strict["defaultAction"] == "SCMP_ACT_ERRNO" and strict["defaultErrnoRet"] == 38
    names = {n for rule in strict["syscalls"] for n in rule["names"]}
    assert not names & {"mount", "unshare", "setns", "ptrace", "bpf", "keyctl", "clone3", "chroot", "mknod"}


def test_remote_refs_are_never_fetched() -> None:
    """A node inputSchema with a remote $ref is refused at validation, not fetched."""
    from onexd.policy.schema import check_json_schema

    assert "remote $ref" in (check_json_schema({"$ref": "https://example.invalid/s.json"}) or "")
    assert check_json_schema({"type": "object", "$defs": {"a": {}}, "properties": {"x": {"$ref": "#/$defs/a"}}}) \
        is None


def test_schema_set_reports_unknown_kind() -> None:
    """An unknown kind is named with the list of kinds."""
    from onexd.policy.yamlsafe import load_documents

    docs, _ = load_documents(b"apiVersion: onexd/v1\nkind: Widget\nmetadata: {name: a}\nspec: {}\n", "f.yaml")
    problems = SchemaSet().validate("f.yaml", docs[0])
    assert [p.code for p in problems] == ["schema/kind"]
    assert "SandboxProfile" in problems[0].message


def test_example_daemon_config_validates_against_model_and_schema() -> None:
    """examples/onexd.yaml loads as a DaemonConfig and satisfies schemas/daemon-config.json."""
    from onexd.configfile import load_config
    from onexd.policy.yamlsafe import load_documents

    path = ROOT / "examples" / "onexd.yaml"
    config = load_config(path)
    assert config.socket.group == "onexd"
    docs, problems = load_documents(path.read_bytes(), str(path))
    assert problems == []
    assert SchemaSet().validate_data("DaemonConfig", docs[0].data) == []


@pytest.mark.parametrize(("name", "which"), [("policy-reference.md", "policy"), ("api.md", "api")])
def test_generated_references_match_the_sources(name: str, which: str) -> None:
    """docs/policy-reference.md and docs/api.md equal what the schemas and OpenAPI generate (make generate)."""
    from onexd.docgen import api_reference, policy_reference

    expected = (policy_reference() if which == "policy" else api_reference()) + "\n"
    assert (ROOT / "docs" / name).read_text() == expected


# Every keyword of JSON Schema 2020-12 (core, applicator, validation, meta-data, format, content, unevaluated).
JSON_SCHEMA_KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items", "contains",
    "properties", "patternProperties", "additionalProperties", "propertyNames", "unevaluatedItems",
    "unevaluatedProperties", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains",
    "minContains", "maxProperties", "minProperties", "required", "dependentRequired", "title", "description",
    "default", "deprecated", "readOnly", "writeOnly", "examples", "format", "contentEncoding", "contentMediaType",
    "contentSchema",
})
_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _keywords(schema: object) -> set[str]:
    if isinstance(schema, list):
        return set().union(*(_keywords(s) for s in schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        if key in _MAPS and isinstance(value, dict):
            found |= set().union(*(_keywords(v) for v in value.values())) if value else set()
        elif key not in ("enum", "const", "default", "examples"):
            found |= _keywords(value)
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMAS.glob("*.json")))
def test_issue_13_12_schemas_pass_the_metaschema_and_use_only_json_schema_keywords(name: str) -> None:
    """Each schemas/*.json passes the Draft 2020-12 metaschema and has no keyword outside JSON Schema (no
    pydantic ge/le leaking), so editors and validators enforce every bound."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    assert _keywords(schema) - JSON_SCHEMA_KEYWORDS == set()


def test_issue_13_12_a_validator_rejects_a_negative_timeout_with_the_shipped_schema() -> None:
    """jsonschema with schemas/node.json alone refuses `timeoutSeconds: -5` (the bound is `minimum`, not `ge`)."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / "node.json").read_text())
    node = {"apiVersion": "onexd/v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"version": "1.0.0", "profile": "p", "command": ["true"], "timeoutSeconds": -5}}
    errors = list(Draft202012Validator(schema).iter_errors(node))
    assert [list(e.absolute_path) for e in errors] == [["spec", "timeoutSeconds"]]
    node["spec"]["timeoutSeconds"] = 5
    assert list(Draft202012Validator(schema).iter_errors(node)) == []


def test_issue_13_12_an_explicit_null_is_a_validation_error_never_a_crash() -> None:
    """Every optional field of the config, policy and request models answers `null` with a ValidationError or
    accepts it; a constraint placed on the union (`int | None` with ge) raised TypeError, a 500 or a traceback
    (regression: `rotation.graceSeconds: null`, `timeoutSeconds: null`)."""
    import importlib
    import inspect

    import pydantic

    crashed = []
    for module_name in ("onexd.config", "onexd.policy.models", "onexd.engine.request", "onexd.api.bodies"):
        module = importlib.import_module(module_name)
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, pydantic.BaseModel) and cls.__module__ == module_name):
                continue
            for field, info in cls.model_fields.items():
                if info.default is not None:
                    continue
                try:
                    cls.__pydantic_validator__.validate_assignment(cls.model_construct(), field, None)
                except (pydantic.ValidationError, ValueError):
                    pass
                except TypeError as exc:
                    crashed.append(f"{module_name}.{name}.{field}: {exc}")
    assert crashed == []


def test_policy_loads_share_one_compiled_schema_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a policy reuses the validators built once per process: regenerating every kind's schema from the
    models cost ~50 ms per load (each reload, each validate, each hypothesis example)."""
    from onexd.policy import schema

    assert schema.SchemaSet.shared() is schema.SchemaSet.shared()

    def regenerate() -> None:
        raise AssertionError("a policy load regenerated the schemas")

    monkeypatch.setattr(schema, "generated_schemas", regenerate)
    write_bundle(tmp_path, "b", minimal_docs())
    assert load_directory(tmp_path).ok
