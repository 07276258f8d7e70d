"""Field types shared by the daemon config and the policy format: names, sizes, paths, the frozen base model.

It sits below both (config.py and policy/ import it; it imports neither), so the daemon config does not depend
on the policy package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SIZE_PATTERN = r"^[1-9][0-9]{0,15}(Ki|Mi|Gi|Ti)?$"
_SIZE_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
# Normalized absolute paths only: no `//`, `.` or `..` segment, no trailing slash (`/./proc` is refused, not
# normalized: input that could be read two ways is an error).
ABS_PATH_PATTERN = r"^(/(?!\.\.?(/|$))[A-Za-z0-9._-]+)+$"
ABS_PATH_MAX = 4096


def parse_size(value: Any) -> Any:
    """`64Mi` -> 67108864. Decimal suffixes (M, G) are refused: they read two ways."""
    if isinstance(value, str) and re.fullmatch(SIZE_PATTERN, value):
        digits = value.rstrip("KMGTi")
        return int(digits) * _SIZE_UNITS[value[len(digits):]]
    return value


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(gt=0),
    WithJsonSchema({
        "description": "A size in bytes: an integer, or a string with a binary suffix (`512Ki`, `64Mi`, `1Gi`).",
        "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SIZE_PATTERN}],
    }),
]
AbsPath = Annotated[str, StringConstraints(pattern=ABS_PATH_PATTERN)]


class Model(BaseModel):
    """Frozen, closed models: an unknown field is an error, nothing read from outside mutates."""

    # python-re: the patterns use look-ahead (valid ECMA-262 too, so editors read the schemas the same way).
    model_config = ConfigDict(frozen=True, extra="forbid", regex_engine="python-re")


# What each pattern accepts, in words: a message never shows a raw regular expression. The policy format adds
# its own patterns (onexd.policy.models.PATTERN_WORDS).
PATTERN_WORDS: Mapping[str, str] = {
    NAME_PATTERN: "lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit",
    SIZE_PATTERN: "bytes (65536) or a binary suffix: 512Ki, 64Mi, 1Gi, 2Ti",
    ABS_PATH_PATTERN: "an absolute path of letters, digits and . _ / - without . or .. parts",
}


def error_message(err: Mapping[str, Any], words: Mapping[str, str] = PATTERN_WORDS) -> str:
    """One pydantic error in words: a pattern mismatch says what is expected, never the regular expression."""
    if err.get("type") == "string_pattern_mismatch":
        pattern = str((err.get("ctx") or {}).get("pattern", ""))
        return f"{err.get('input')!r} is not valid here: expected " + \
            words.get(pattern, "the documented form (see the policy reference)")
    return str(err["msg"]).removeprefix("Value error, ")


def first_error(exc: ValidationError, top: str, words: Mapping[str, str] = PATTERN_WORDS) -> tuple[str, str]:
    """(dotted field, message) of the first error of a failed validation, for messages that name the field."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or top
    return where, error_message(first, words)
