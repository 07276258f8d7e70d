"""One table from errors to exit codes, for both commands (onexd and onexctl)."""

from __future__ import annotations

from onexd.errors import ApiFailure, ConfigError, KeyFileError, OnexdError, PolicyError, UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_DENIED = EXIT_INVALID  # onexctl: the daemon refused (denied, invalid input, bad credentials)
# HTTP statuses onexctl reports as a refusal (exit 3) rather than an error (exit 1).
DENIED_STATUSES = frozenset({400, 401, 403, 413})

# The most specific class first.
EXIT_CODES: tuple[tuple[type[OnexdError], int], ...] = (
    (UsageError, EXIT_USAGE), (ConfigError, EXIT_USAGE), (KeyFileError, EXIT_USAGE),
    (PolicyError, EXIT_INVALID), (OnexdError, EXIT_ERROR),
)


def exit_code_for(exc: OnexdError) -> int:
    """The exit code of an error; a daemon's answer maps by its HTTP status."""
    if isinstance(exc, ApiFailure):
        return EXIT_DENIED if exc.status in DENIED_STATUSES else EXIT_ERROR
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))
