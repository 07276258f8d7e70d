"""The downgrade rule: changed content needs a higher semver than the active version."""

from __future__ import annotations

from pathlib import Path

import pytest

from onexd.policy.loader import parse_bundle
from onexd.policy.pipeline import evaluate
from onexd.policy.versions import ActiveVersion, check_version
from tests.conftest import minimal_docs, write_bundle

ACTIVE = ActiveVersion("base", "1.2.0", "d" * 64)


@pytest.mark.parametrize(("version", "digest", "rejected"), [
    ("1.2.0", "d" * 64, False),   # the active bundle itself
    ("1.3.0", "e" * 64, False),   # an upgrade
    ("1.2.1", "e" * 64, False),
    ("1.2.0", "e" * 64, True),    # same version, different content
    ("1.1.9", "e" * 64, True),    # lower version
    ("1.2.0-rc.1", "e" * 64, True),  # a pre-release sorts below its release
])
def test_check_version(version: str, digest: str, rejected: bool) -> None:
    """Only a strictly higher version may carry different content."""
    problems = check_version("base", version, digest, ACTIVE, "bundle.yaml")
    assert bool(problems) is rejected
    assert all(p.code == "version/downgrade" for p in problems)


def test_explicit_rollback_is_allowed() -> None:
    """An operator's explicit rollback bypasses the rule."""
    assert check_version("base", "1.0.0", "e" * 64, ACTIVE, "bundle.yaml", allow_rollback=True) == []


def test_pipeline_rejects_downgrade_against_active(tmp_path: Path) -> None:
    """evaluate() applies the rule against the active versions it is given, and keeps the fallback."""
    good = parse_bundle(write_bundle(tmp_path / "v1", "base", minimal_docs(), version="2.0.0"))
    docs = minimal_docs()
    docs[0]["spec"]["resources"]["pids"] = 64
    changed = parse_bundle(write_bundle(tmp_path / "v2", "base", docs, version="2.0.0"))
    active = {"base": ActiveVersion("base", good.version, good.digest)}
    ev = evaluate([changed], active=active, fallbacks={"base": good})
    report = ev.reports[0]
    assert not report.accepted and report.fallback
    assert [p.code for p in report.problems] == ["version/downgrade"]
    assert ev.snapshot is not None and ev.snapshot.bundles[0].digest == good.digest
