"""PolicyManager: atomic activation, last good versions persisted, degraded starts, downgrades refused."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from onexd.policy.manager import PolicyManager
from onexd.policy.store import BundleStore
from tests.conftest import EXAMPLES


def _manager(tmp_path: Path) -> tuple[PolicyManager, Path]:
    policy = tmp_path / "policies"
    if not policy.exists():
        shutil.copytree(EXAMPLES, policy)
    return PolicyManager(policy, BundleStore(tmp_path / "state" / "policy")), policy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_valid_change_is_activated_and_persisted(tmp_path: Path) -> None:
    """A higher version with new content becomes active and is stored as the last good version."""
    manager, policy = _manager(tmp_path)
    first = manager.reload("test")
    assert first.changed and set(first.activated) == {"hello", "data-job"}
    _edit(policy / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.0.1")
    result = manager.reload("test")
    assert result.changed and result.activated == ("hello",)
    assert manager.state.entries["hello"].version == "1.0.1"
    assert (tmp_path / "state" / "policy" / "bundles" / manager.state.entries["hello"].digest).is_dir()


def test_broken_bundle_keeps_last_good_and_is_reported(tmp_path: Path) -> None:
    """An invalid bundle leaves its previous version active; the rejection lists its problems."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    before = manager.state.snapshot.digest
    _edit(policy / "hello" / "sandbox.yaml", "readOnlyRootFilesystem: true ", "readOnlyRootFilesystem: false ")
    _edit(policy / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.1.0")
    result = manager.reload("test")
    assert not result.changed and result.rejected == ("hello",)
    assert manager.state.snapshot.digest == before and manager.state.degraded
    assert "security/writable-root" in {p.code for p in manager.state.rejections["hello"].problems}


def test_same_version_with_new_content_is_a_downgrade(tmp_path: Path) -> None:
    """Changing a bundle without raising its version is refused against the persisted active version."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    _edit(policy / "hello" / "sandbox.yaml", "memory: 128Mi", "memory: 256Mi")
    manager.reload("test")
    assert {p.code for p in manager.state.rejections["hello"].problems} == {"version/downgrade"}


def test_restart_with_a_broken_directory_comes_up_on_the_last_good_version(tmp_path: Path) -> None:
    """A new manager (a restart) over a broken directory serves the persisted bundles, degraded."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    good = manager.state.snapshot.digest
    (policy / "hello" / "nodes.yaml").write_text("apiVersion: onexd/v1\nkind: Node\nmetadata: {name: hello}\n"
                                                 "spec: {version: 9.9.9, profile: ghost, command: [x]}\n")
    _edit(policy / "hello" / "bundle.yaml", "version: 1.0.0", "version: 2.0.0")
    restarted, _ = _manager(tmp_path)
    assert restarted.state.snapshot.digest == good  # before any reload: the persisted set
    restarted.reload("startup")
    assert restarted.state.snapshot.digest == good and restarted.state.degraded
    assert "hello" in restarted.state.snapshot.nodes


def test_removed_bundle_is_deactivated(tmp_path: Path) -> None:
    """Deleting a bundle directory removes its bundle from the active set (an operator's decision)."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    shutil.rmtree(policy / "data-job")
    result = manager.reload("test")
    assert result.removed == ("data-job",) and "wordcount" not in manager.state.snapshot.nodes
    assert not manager.state.degraded


def test_explicit_rollback_allows_a_lower_version(tmp_path: Path) -> None:
    """Going back to a lower version is refused as a downgrade unless the operator names the bundle."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    _edit(policy / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.1.0")
    manager.reload("test")
    _edit(policy / "hello" / "bundle.yaml", "version: 1.1.0", "version: 1.0.0")
    _edit(policy / "hello" / "sandbox.yaml", "memory: 128Mi", "memory: 96Mi")
    assert manager.reload("test").rejected == ("hello",)
    result = manager.reload("operator", allow_rollback=frozenset({"hello"}))
    assert result.rejected == () and manager.state.entries["hello"].version == "1.0.0"


def test_rejection_is_logged_as_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A rejected bundle is logged at warning level with its name, version and problems (not at info only,
    where `journalctl -p warning` would not show it)."""
    manager, policy = _manager(tmp_path)
    manager.reload("test")
    _edit(policy / "hello" / "sandbox.yaml", "readOnlyRootFilesystem: true ", "readOnlyRootFilesystem: false ")
    _edit(policy / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.1.0")
    onexd_logger = logging.getLogger("onexd")
    propagate, onexd_logger.propagate = onexd_logger.propagate, True  # logs.setup() may have turned it off
    try:
        with caplog.at_level(logging.WARNING, logger="onexd.policy"):
            manager.reload("SIGHUP")
    finally:
        onexd_logger.propagate = propagate
    [record] = [r for r in caplog.records if r.getMessage() == "policy bundle rejected"]
    assert record.levelno == logging.WARNING
    assert (record.bundle, record.version, record.reason) == ("hello", "1.1.0", "SIGHUP")
    assert any(" security/writable-root: " in p for p in record.problems)  # code, then what is wrong
