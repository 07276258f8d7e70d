"""Stage 5b: versions. A changed bundle must carry a higher semver than the active one."""

from __future__ import annotations

from dataclasses import dataclass

import semver

from onexd.policy.problems import Problem, problem


@dataclass(frozen=True, slots=True)
class ActiveVersion:
    """What is active for a bundle name: the reference the downgrade rule compares against."""

    name: str
    version: str
    digest: str


def compare(a: str, b: str) -> int:
    return int(semver.Version.parse(a).compare(b))


def check_version(name: str, version: str, digest: str, active: ActiveVersion | None, file: str,
                  line: int | None = None, allow_rollback: bool = False) -> list[Problem]:
    """A downgrade, or new content under the same version, is rejected unless rolling back explicitly."""
    if active is None or active.digest == digest or allow_rollback:
        return []
    order = compare(version, active.version)
    if order > 0:
        return []
    what = "the same version" if order == 0 else "a lower version"
    return [problem(file, line, "/spec/version", "version/downgrade",
                    f"bundle {name} {version} has different content under {what} than the active "
                    f"{active.version}; raise spec.version")]
