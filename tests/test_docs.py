"""README.md and docs/ stand alone: every link stays inside the repository and resolves, and the configuration
surface an operator meets (config fields, environment variables) is documented."""

from __future__ import annotations

import re
from pathlib import Path

from onexd.config import DaemonConfig
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
URL = re.compile(r"\b(?:https?|ftp)://[^\s)`'\"}]+")
# Hosts that are no page to read: single-label names (the socket's `onexd`, localhost, in-cluster services),
# loopback, and the names RFC 2606 reserves for examples.
LOCAL_URL = re.compile(r"^https?://(?:[^/.:\s]+|127\.0\.0\.1|\[::1\]|(?:[a-z0-9-]+\.)*example(?:\.(?:org|com|net))?)"
                       r"(?:[:/#?]|$)")


def test_issue_13_18_docs_link_only_inside_the_repository() -> None:
    """No markdown link leaves the repository or points at a missing file; URLs in the text are local examples
    (the socket's `http://onexd`, loopback) or JSON Schema identifiers, never a page to read elsewhere."""
    problems = []
    for doc in DOCS:
        text = doc.read_text()
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))  # code is not links
        for target in LINK.findall(prose):
            path = target.split("#", 1)[0]
            if "://" in target or target.startswith(("/", "mailto:")) or ".." in Path(path).parts:
                problems.append(f"{doc.name}: {target}")
            elif path and not (doc.parent / path).exists():
                problems.append(f"{doc.name}: {target} does not exist")
        for url in URL.findall(text):
            if not LOCAL_URL.match(url) and not url.startswith(("https://onexd.dev/schemas/",
                                                                "https://json-schema.org/draft/2020-12/")):
                problems.append(f"{doc.name}: {url}")
    assert problems == []


def test_issue_13_18_every_config_field_and_environment_variable_is_documented() -> None:
    """Each DaemonConfig field path is in the generated reference, and each variable the commands read is in the
    docs."""
    reference = (ROOT / "docs" / "policy-reference.md").read_text()

    def paths(model: type, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            out.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                out += paths(annotation, f"{prefix}{name}.")
        return out

    missing = [p for p in paths(DaemonConfig, "") if f"`{p}`" not in reference]
    assert missing == []
    text = "".join(d.read_text() for d in DOCS)
    for variable in ("ONEXD_CONFIG", "ONEXD_LOG_LEVEL", "ONEXD_MASTER_KEY", "ONEXD_SOCKET", "ONEXD_POLICY_DIR",
                     "ONEXD_STATE_DIR", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY"):
        assert variable in text, variable


def test_every_table_row_belongs_to_a_table() -> None:
    """A run of `|` lines outside code blocks starts with a header and its `|---` separator: rows cut off from
    their table by a paragraph render as plain text."""
    orphans = []
    for path in DOCS:
        lines, fenced = ["", *path.read_text().splitlines(), ""], False
        for number in range(1, len(lines) - 1):
            previous, line, following = lines[number - 1:number + 2]
            if line.startswith("```"):
                fenced = not fenced
            if not fenced and line.startswith("|") and not previous.startswith("|") and not following.startswith("|-"):
                orphans.append(f"{path.relative_to(ROOT)}:{number}")
    assert orphans == []
