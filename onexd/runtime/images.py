"""Runner images, built offline from Debian packages and imported; never pulled.

Each image carries the digest of its recipe as a label, so an unchanged recipe is skipped and a changed one
rebuilds. `onexd/runner-busybox` is Debian's static busybox with its applet links; `onexd/runner-python` is a
Debian root filesystem with python3 and its full standard library, made by mmdebstrap.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from onexd.errors import OnexdError, UsageError
from onexd.runtime.base import ImageInfo
from onexd.spec import LAUNCHER_PATH

# Containers inherit image labels; this one stays outside the `onexd.*` names that mark job containers.
RECIPE_LABEL = "org.onexd.image.recipe"
Report = Callable[[str], None]

# /etc/passwd and /etc/group for the images: only nobody besides root; jobs run as numeric uid:gid anyway.
_PASSWD = (  # /etc/passwd content, no password
    "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")  # noqa: S105
_GROUP = "root:x:0:\nnogroup:x:65534:\n"

# The warm-pool launcher (LAUNCHER_PATH in every runner image). A pool slot is started running it as the job's
# own uid, with the job's capabilities (none), seccomp and limits; it waits for one line on stdin and `exec`s
# it, so the job's process then is the container's process.
# Why stdin (the engine's attach stream) carries the job: it is the channel onexd already owns for the job's
# input, private between the daemon and this one container (no host file, no extra mount, nothing left on
# disk), ordered (the job line comes before the job's stdin on the same stream), and it closes with the
# container. `read` takes bytes one at a time from a pipe (dash and busybox alike), so everything after the
# line is left unread for the job. The line is written by the daemon only (shell-quoted `export`s and
# `exec argv`; a newline inside an argument travels as "$onexd_nl", which is not exported); a slot that gets
# no line (EOF) exits without running anything.
LAUNCHER_SCRIPT = """#!/bin/sh
onexd_nl='
'
IFS= read -r onexd_job || exit 97
eval "$onexd_job"
exit 97
"""


class ImageStore(Protocol):
    def image(self, name: str) -> ImageInfo | None: ...

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo: ...


@dataclass(frozen=True, slots=True)
class BusyboxRecipe:
    name: str = "onexd/runner-busybox"
    binary: str = "/bin/busybox"
    package: str = "busybox-static"
    version: int = 2  # 2: the warm-pool launcher
    changes: tuple[str, ...] = ('ENV PATH="/usr/bin:/bin:/usr/sbin:/sbin"', "WORKDIR /")

    def digest(self) -> str:
        path = Path(self.binary)
        if not path.is_file():
            raise OnexdError(f"{self.binary} not found: install Debian's {self.package} (apt-get install "
                             f"{self.package})")
        h = hashlib.sha256(f"busybox-recipe-v{self.version}|{self.changes}|{LAUNCHER_SCRIPT}".encode())
        h.update(path.read_bytes())
        return h.hexdigest()

    def build(self, workdir: Path, report: Report) -> Path:
        out = subprocess.run([self.binary, "--list-full"], capture_output=True, text=True, check=True)
        applets = sorted({line.strip() for line in out.stdout.splitlines() if line.strip()})
        tarball = workdir / "busybox.tar"
        report(f"packing busybox with {len(applets)} applet links")
        with tarfile.open(tarball, "w") as tar:
            for d, mode in (("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
                            ("usr/sbin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("proc", 0o555),
                            ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("app", 0o755), ("root", 0o700),
                            ("usr/lib", 0o755), ("usr/lib/onexd", 0o755)):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            tar.add(self.binary, arcname="bin/busybox")
            for link in applets:
                if link == "bin/busybox":
                    continue
                info = tarfile.TarInfo(link)
                info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
                tar.addfile(info)
            for name, text, mode in (("etc/passwd", _PASSWD, 0o644), ("etc/group", _GROUP, 0o644),
                                     (LAUNCHER_PATH.lstrip("/"), LAUNCHER_SCRIPT, 0o755)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        return tarball


@dataclass(frozen=True, slots=True)
class DebianRecipe:
    """A Debian root filesystem by mmdebstrap: the essential set plus `packages`, docs stripped, no setuid bits."""

    name: str = "onexd/runner-python"
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "essential"
    packages: tuple[str, ...] = ("python3",)
    excludes: tuple[str, ...] = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
    version: int = 1
    changes: tuple[str, ...] = ('ENV PATH="/usr/local/bin:/usr/bin:/bin"', "ENV LANG=C.UTF-8", "WORKDIR /")
    launcher: bool = True  # the warm-pool launcher at LAUNCHER_PATH (not in test images)
    hooks: tuple[str, ...] = field(default=(
        # Defence in depth beside no-new-privileges: nothing in the image can gain privileges.
        'find "$1" -xdev -perm /6000 -type f -exec chmod a-s {} +',
        'rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
    ))

    def digest(self) -> str:
        recipe = {"v": self.version, "suite": self.suite, "mirror": self.mirror, "variant": self.variant,
                  "packages": self.packages, "excludes": self.excludes, "changes": self.changes, "hooks": self.hooks}
        if self.launcher:  # only when present, so images without it keep their digest
            recipe["launcher"] = LAUNCHER_SCRIPT
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()

    def build(self, workdir: Path, report: Report) -> Path:
        if shutil.which("mmdebstrap") is None:
            raise OnexdError("mmdebstrap not found: install it (apt-get install mmdebstrap)")
        tarball = workdir / "rootfs.tar"
        hooks = list(self.hooks)
        if self.launcher:
            launcher = workdir / "launch"
            launcher.write_text(LAUNCHER_SCRIPT)
            launcher.chmod(0o755)
            hooks += [f'mkdir -p "$1"{Path(LAUNCHER_PATH).parent}',
                      f'install -m 0755 {launcher} "$1"{LAUNCHER_PATH}']
        cmd = ["mmdebstrap", f"--variant={self.variant}", f"--include={','.join(self.packages)}", "--mode=root",
               "--format=tar", *(f"--dpkgopt=path-exclude={p}" for p in self.excludes),
               *(f"--customize-hook={h}" for h in hooks), self.suite, str(tarball), self.mirror]
        report(f"mmdebstrap {self.suite} + {', '.join(self.packages)} from {self.mirror}")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-19:], line]
            if line.startswith("I: "):
                report(line[3:])
        if proc.wait() != 0:
            raise OnexdError(f"mmdebstrap failed (exit {proc.returncode}):\n" + "\n".join(tail))
        return tarball


Recipe = BusyboxRecipe | DebianRecipe
RECIPES: tuple[Recipe, ...] = (BusyboxRecipe(), DebianRecipe())

# The test harness for the shipped systemd unit (never a job image): systemd as PID 1 with Debian's python3, so
# `make install` and the unit run as an operator would have them. Built by name only: `onexd image build --only
# onexd/test-systemd` (make test does, and the systemd test's fixture when it is missing or stale).
TEST_SYSTEMD = DebianRecipe(
    name="onexd/test-systemd", launcher=False,
    # libstdc++6: google-re2's extension (linear-time input-schema patterns) links against it.
    packages=("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "libstdc++6", "make", "passwd",
              "procps", "curl", "busybox-static"),
    changes=('ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"', "ENV LANG=C.UTF-8",
             "ENV container=docker", 'CMD ["/sbin/init"]', "WORKDIR /"),
    hooks=(
        'rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
        # Units that need hardware, a console or the network: nothing to do in a test container.
        'systemctl --root="$1" mask getty.target console-getty.service systemd-firstboot.service '
        'systemd-networkd.service systemd-resolved.service systemd-timesyncd.service apt-daily.timer '
        'apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer',
        'echo onexd-test > "$1"/etc/hostname',
        # systemd shares / at boot on a host but not in a container; without it the ramfs a unit's credentials
        # are put in (mounted in a child namespace, then moved) never reaches the unit, so LoadCredential*= fails.
        "printf '[Unit]\\nDescription=Share mounts as on a host\\nDefaultDependencies=no\\nBefore=sysinit.target\\n"
        "[Service]\\nType=oneshot\\nExecStart=/bin/mount --make-rshared /\\n[Install]\\nWantedBy=sysinit.target\\n' "
        '> "$1"/etc/systemd/system/shared-root.service && systemctl --root="$1" enable shared-root.service',
    ),
)
TEST_RECIPES: tuple[Recipe, ...] = (TEST_SYSTEMD,)


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    name: str
    action: str  # built, up-to-date
    image_id: str
    seconds: float


def _prefixed(report: Report, name: str, message: str) -> None:
    report(f"{name}: {message}")


def build_images(store: ImageStore, only: Sequence[str] = (), force: bool = False,
                 report: Report = lambda _: None, recipes: Sequence[Recipe] = RECIPES) -> list[BuildOutcome]:
    """Build the runner images that are missing or stale (or all of `only`, with force); the test images only
    when named in `only`."""
    known = {r.name: r for r in (*recipes, *TEST_RECIPES)}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise UsageError(f"unknown image {unknown[0]!r}; known: {', '.join(known)}")
    outcomes = []
    for recipe in (*recipes, *(r for r in TEST_RECIPES if r.name in only)):
        if only and recipe.name not in only:
            continue
        start = time.monotonic()
        digest = recipe.digest()
        current = store.image(recipe.name)
        if current is not None and current.labels.get(RECIPE_LABEL) == digest and not force:
            report(f"{recipe.name}: up to date")
            outcomes.append(BuildOutcome(recipe.name, "up-to-date", current.image_id, 0.0))
            continue
        report(f"{recipe.name}: building" + (" (stale)" if current is not None else ""))
        with tempfile.TemporaryDirectory(prefix="onexd-image-") as tmp:
            os.chmod(tmp, 0o700)
            tarball = recipe.build(Path(tmp), functools.partial(_prefixed, report, recipe.name))
            report(f"{recipe.name}: importing {tarball.stat().st_size // (1024 * 1024)} MiB")
            info = store.import_image(str(tarball), recipe.name,
                                      {RECIPE_LABEL: digest}, list(recipe.changes))
        outcomes.append(BuildOutcome(recipe.name, "built", info.image_id, time.monotonic() - start))
        report(f"{recipe.name}: built in {time.monotonic() - start:.1f}s")
    return outcomes
