"""Image recipes: digests decide whether to rebuild; the busybox rootfs is what it claims."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from onexd.errors import UsageError
from onexd.runtime.base import ImageInfo
from onexd.runtime.fake import FakeRuntime
from onexd.runtime.images import RECIPE_LABEL, TEST_SYSTEMD, BusyboxRecipe, DebianRecipe, build_images


@pytest.mark.integration
def test_busybox_rootfs_has_the_applets_and_no_setuid(tmp_path: Path) -> None:
    """The tarball holds the static busybox, applet links to it, passwd/group and a sticky /tmp."""
    tarball = BusyboxRecipe().build(tmp_path, lambda _: None)
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777 and "etc/passwd" in members
    assert not any(m.mode & 0o6000 and m.isfile() for m in members.values())


@pytest.mark.integration
def test_build_skips_up_to_date_and_rebuilds_stale(tmp_path: Path) -> None:
    """Same recipe digest: skipped; a changed recipe (or --force): rebuilt."""
    store = FakeRuntime()
    recipe = BusyboxRecipe()
    first = build_images(store, recipes=[recipe])
    assert [o.action for o in first] == ["built"]
    assert store.images[recipe.name].labels[RECIPE_LABEL] == recipe.digest()
    assert [o.action for o in build_images(store, recipes=[recipe])] == ["up-to-date"]
    changed = BusyboxRecipe(version=recipe.version + 1)
    assert [o.action for o in build_images(store, recipes=[changed])] == ["built"]
    assert [o.action for o in build_images(store, recipes=[changed], force=True)] == ["built"]


def test_python_recipe_digest_covers_its_inputs() -> None:
    """Any change to suite, packages or hooks changes the digest (so stale images rebuild)."""
    base = DebianRecipe()
    assert base.digest() == DebianRecipe().digest()
    assert base.digest() != DebianRecipe(packages=("python3", "curl")).digest()
    assert base.digest() != DebianRecipe(suite="trixie").digest()
    assert "python3-minimal" not in base.packages


def test_unknown_image_name_is_a_usage_error() -> None:
    """--only with a name no recipe has is refused, listing the known names."""
    with pytest.raises(UsageError, match="onexd/runner-busybox"):
        build_images(FakeRuntime(), only=["onexd/runner-ruby"])


@pytest.mark.integration
def test_the_systemd_test_image_is_built_only_by_name() -> None:
    """onexd/test-systemd is never part of the default build (operators get runner images only); by name it
    is known, and skipped while its recipe digest is unchanged."""
    store = FakeRuntime()
    default = build_images(store, recipes=[BusyboxRecipe()])
    assert [o.name for o in default] == ["onexd/runner-busybox"]
    store.images[TEST_SYSTEMD.name] = ImageInfo(TEST_SYSTEMD.name, "sha256:" + "0" * 64,
                                                {RECIPE_LABEL: TEST_SYSTEMD.digest()})
    [outcome] = build_images(store, only=[TEST_SYSTEMD.name], recipes=[BusyboxRecipe()])
    assert (outcome.name, outcome.action) == (TEST_SYSTEMD.name, "up-to-date")
    assert {"systemd", "systemd-sysv", "python3", "python3-venv"} <= set(TEST_SYSTEMD.packages)
    assert 'CMD ["/sbin/init"]' in TEST_SYSTEMD.changes
