"""The audit event catalogue: every type the code writes is catalogued, and the document does not drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import onexd
from onexd.audit.events import CATALOGUE, catalogue_markdown, key_event_type, problems_of

PACKAGE = Path(onexd.__file__).parent
TYPE = re.compile(r"^(daemon|auth|authz|job|secret|egress|policy|principal|token|apikey|audit|key)\.[a-z][a-z-]*$")


def _constants(path: Path) -> list[ast.Constant]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def test_every_event_type_written_in_the_code_is_catalogued() -> None:
    """Each event-type literal in onexd/ (and each key event kind) names a catalogued type."""
    written: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "events.py" and path.parent.name == "audit":
            continue
        written |= {c.value for c in _constants(path) if TYPE.match(c.value)}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "on_event" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                written.add(key_event_type(str(node.args[0].value)))
    assert written, "the scan found no event types"
    assert sorted(written - set(CATALOGUE)) == []


def test_catalogue_document_does_not_drift() -> None:
    """docs/audit-events.md equals what the catalogue generates (make generate)."""
    assert (PACKAGE.parent / "docs" / "audit-events.md").read_text() == catalogue_markdown()


def test_problems_of_names_unknown_types_and_fields() -> None:
    """An event of an unknown type, or with a missing or extra field, is reported; a good one is not."""
    assert problems_of({"type": "daemon.stop", "data": {"pid": 1}}) == []
    assert problems_of({"type": "nope.x", "data": {}}) == ["unknown event type 'nope.x'"]
    assert problems_of({"type": "daemon.stop", "data": {"pid": 1, "extra": 2}}) == [
        "daemon.stop: field extra not in the catalogue"]
    assert problems_of({"type": "daemon.start", "data": {"pid": 1}}) == ["daemon.start: missing field version"]
