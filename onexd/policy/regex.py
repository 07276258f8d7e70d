"""Regular expressions that come from policy or requests, run by RE2 (google-re2): matching takes time linear
in the subject, so no pattern (`^(a+)+$` and its kind) can stall the daemon. The only module importing re2.

RE2 has no back-references and no look-around; a pattern that needs them is refused where it is loaded.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from onexd.errors import PolicyError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported as a problem, not printed by the C++ library


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        message = exc.args[0] if exc.args else exc
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        raise PolicyError(f"pattern is not accepted by the linear-time engine: {text}") from None


def why_refused(pattern: str) -> str | None:
    """None when pattern compiles under RE2, else why not."""
    try:
        _compiled(pattern)
    except PolicyError as exc:
        return str(exc)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether pattern matches anywhere in text (as `re.search`), in linear time."""
    return _compiled(pattern).search(text) is not None
