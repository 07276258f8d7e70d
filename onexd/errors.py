"""The exception tree of onexd. Every failure we raise derives from OnexdError.

    OnexdError
    ├── UsageError            a command line or request that cannot be understood
    ├── ConfigError           the daemon configuration is invalid
    ├── PolicyError           a policy could not be loaded (carries Problems)
    │   └── SignatureError    a bundle signature is missing, untrusted or does not match
    ├── KeyFileError          a key file could not be read or has the wrong type
    └── RuntimeFailure        the container engine failed (not the job: the engine)
        └── KubernetesUnsupported  a job the kubernetes backend refuses (it cannot lock it down as asked)

A denial is never an exception: it is a Decision value (see onexd.engine.decide).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onexd.policy.problems import Problem


class OnexdError(Exception):
    """Root of every error onexd raises on purpose."""


class UsageError(OnexdError):
    """A command line or request that cannot be understood."""


class ConfigError(OnexdError):
    """The daemon configuration is invalid; the message names the field."""


class PolicyError(OnexdError):
    """A policy directory or bundle could not be loaded."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class SignatureError(PolicyError):
    """A bundle signature is missing, untrusted or does not match the files."""


class KeyFileError(OnexdError):
    """A key file could not be read, or holds a key of an unsupported type."""


class RuntimeFailure(OnexdError):
    """The container engine failed (as opposed to the job failing)."""


class KubernetesUnsupported(RuntimeFailure):
    """A setting the kubernetes backend cannot give a Pod without weakening it (e.g. a capability add that
    Pod Security "restricted" forbids): the job is refused, never run with the setting dropped."""
