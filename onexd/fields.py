"""Field types shared by the daemon config and the policy format: names, sizes, paths, the frozen base model.

It sits below both (config.py and policy/ import it; it imports neither), so the daemon config does not depend
on the policy package.
"""

from __future__ import annotations

import re
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


def first_error(exc: ValidationError, top: str) -> tuple[str, str]:
    """(dotted field, message) of the first error of a failed validation, for messages that name the field."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or top
    return where, first["msg"].removeprefix("Value error, ")
