"""The YAML layer: plain JSON values, line numbers per pointer, and refusal of anything ambiguous."""

from __future__ import annotations

import pytest

from onexd.policy.yamlsafe import load_documents


def _one(text: str) -> object:
    docs, problems = load_documents(text.encode(), "f.yaml")
    assert problems == []
    return docs[0].data


@pytest.mark.parametrize(("text", "value"), [
    ("a: 1", {"a": 1}), ("a: -2", {"a": -2}), ("a: 0", {"a": 0}), ("a: 1.5", {"a": 1.5}),
    ("a: 1e3", {"a": 1000.0}), ("a: 0x1f", {"a": 31}), ("a: 0o17", {"a": 15}),
    ("a: true", {"a": True}), ("a: False", {"a": False}), ("a: ~", {"a": None}), ("a:", {"a": None}),
    ("a: '1'", {"a": "1"}), ('a: "yes"', {"a": "yes"}), ("a: 2024-01-01", {"a": "2024-01-01"}),
    ("a: 1000:1000", {"a": "1000:1000"}), ("a: 0:0", {"a": "0:0"}), ("a: !!str 5", {"a": "5"}),
    ("a: [1, x]", {"a": [1, "x"]}), ("a: |\n  text\n", {"a": "text\n"}),
])
def test_scalars_resolve_like_json(text: str, value: object) -> None:
    """Scalars resolve to the JSON value YAML 1.2's core schema gives them."""
    assert _one(text) == value


@pytest.mark.parametrize("text", ["a: yes", "a: No", "a: on", "a: OFF", "a: 0755", "a: 1:20", "a: 1_000",
                                  "a: 0b101"])
def test_ambiguous_scalars_are_refused(text: str) -> None:
    """Values YAML 1.1 and 1.2 read differently must be quoted."""
    _, problems = load_documents(text.encode(), "f.yaml")
    assert [p.code for p in problems] == ["yaml/ambiguous-scalar"]
    assert "quote" in problems[0].message


@pytest.mark.parametrize(("text", "code"), [
    ("a: !!binary aGk=", "yaml/forbidden-tag"), ("a: !custom x", "yaml/forbidden-tag"),
    ("a: !!set {x}", "yaml/forbidden-tag"), ("a: !!python/name:os.system", "yaml/forbidden-tag"),
    ("<<: {a: 1}", "yaml/merge-key"), ("? [a]\n: 1", "yaml/complex-key"), ("1: a", "yaml/complex-key"),
    ("a: .nan", "yaml/invalid-number"), ("a: -.inf", "yaml/invalid-number"), ("a: *nope", "yaml/syntax"),
])
def test_unsafe_constructs_are_refused(text: str, code: str) -> None:
    """Tags, merges, non-string keys and non-JSON numbers are errors with their own codes."""
    _, problems = load_documents(text.encode(), "f.yaml")
    assert [p.code for p in problems] == [code]


def test_lines_are_recorded_per_pointer() -> None:
    """Each JSON pointer maps to the line of its key (or item)."""
    docs, _ = load_documents(b"---\nkind: A\nspec:\n  list:\n    - x\n    - {y: 1}\n---\nb: 2\n", "f.yaml")
    first, second = docs
    assert first.line_of("/spec/list/1/y") == 6
    assert first.line_of("/spec/list/0") == 5
    assert first.line_of("/spec/missing/deeper") == 3
    assert second.line_of("/b") == 8


def test_duplicate_key_points_at_the_second_occurrence() -> None:
    """The duplicate is reported where it appears, with its pointer."""
    _, problems = load_documents(b"a:\n  b: 1\n  c: 2\n  b: 3\n", "f.yaml")
    assert [(p.code, p.line, p.path) for p in problems] == [("yaml/duplicate-key", 4, "/a/b")]


def test_non_utf8_is_refused() -> None:
    """Bytes that are not UTF-8 never reach the parser."""
    _, problems = load_documents(b"a: \xff\n", "f.yaml")
    assert [p.code for p in problems] == ["yaml/encoding"]


def test_anchors_within_limits_are_expanded() -> None:
    """A modest anchor/alias pair is fine and expands to equal values."""
    assert _one("a: &x {k: [1, 2]}\nb: *x") == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}
