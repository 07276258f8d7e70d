"""The policy format's field patterns and what each accepts in words: messages name the constraint, never a regular
expression. Re-exported by `onexd.policy.models`, whose models use them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import StringConstraints, ValidationError

from onexd import fields

# semver.org's recommended regular expression.
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
PERMISSION_PATTERN = r"^(\*|[a-z][a-z-]*:(\*|[a-z][a-z-]*))$"
CAPABILITY_PATTERN = r"^[A-Z][A-Z0-9_]*$"
REL_PATH_PATTERN = r"^[A-Za-z0-9._/-]{1,1024}$"  # escapes (.., absolute) are a semantic rule
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL_KEY_PATTERN = r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"


SemVer = Annotated[str, StringConstraints(pattern=SEMVER_PATTERN)]

Permission = Annotated[str, StringConstraints(pattern=PERMISSION_PATTERN)]

# What each pattern accepts, in words: a message never shows a raw regular expression.
PATTERN_WORDS: dict[str, str] = {
    **fields.PATTERN_WORDS,
    SEMVER_PATTERN: "a semantic version like 1.2.3",
    PERMISSION_PATTERN: "resource:action, like jobs:read or nodes:*, or *",
    CAPABILITY_PATTERN: "an upper-case Linux capability name like NET_BIND_SERVICE",
    REL_PATH_PATTERN: "a relative path of letters, digits and . _ / -",
    ENV_NAME_PATTERN: "letters, digits and _, not starting with a digit",
    LABEL_KEY_PATTERN: "an optional DNS prefix and /, then letters, digits and . _ - (at most 63)",
}


def error_message(err: Mapping[str, Any]) -> str:
    """One pydantic error in words (the policy format's patterns included), never a regular expression."""
    return fields.error_message(err, PATTERN_WORDS)


def first_error(exc: ValidationError, top: str) -> tuple[str, str]:
    """(dotted field, message) of the first error of a failed validation, for messages that name the field."""
    return fields.first_error(exc, top, PATTERN_WORDS)
