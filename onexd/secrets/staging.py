"""Staging secrets for a job: files on memory-backed storage, 0400, owned by the job's uid, removed after."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from onexd.errors import ConfigError

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding path, from /proc/self/mountinfo (longest mount point wins)."""
    real = str(path.resolve())
    best, fstype = "", ""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            sep = fields.index("-")
            inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fields[sep + 1]
    return fstype


def default_staging_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$RUNTIME_DIRECTORY/secrets or /run/onexd/secrets when memory-backed, else /dev/shm/onexd-secrets."""
    env = os.environ if environ is None else environ
    candidates = [Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "secrets"] if env.get("RUNTIME_DIRECTORY") else []
    candidates.append(Path("/run/onexd/secrets"))
    for candidate in candidates:
        anchor = candidate
        while not anchor.exists():
            anchor = anchor.parent
        if filesystem_type(anchor) in MEMORY_FILESYSTEMS:
            return candidate
    return Path("/dev/shm/onexd-secrets")  # noqa: S108 - checked by check_staging_dir: ours, not a link


def check_staging_dir(path: Path) -> Path:
    """Create the staging root (0711, ours) and refuse it unless it is memory-backed and cannot have been
    prepared by someone else (a shared /dev/shm is world-writable: a planted link or directory is refused)."""
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"secrets.stagingDir {path} is not a directory owned by onexd's user; refusing it")
    fstype = filesystem_type(path)
    if fstype not in MEMORY_FILESYSTEMS:
        raise ConfigError(f"secrets.stagingDir {path} is on {fstype or 'an unknown filesystem'}, not tmpfs/ramfs: "
                          "secret files must never touch a disk")
    os.chmod(path, 0o711)  # noqa: S103 - traversable, not listable: job dirs inside are 0500 per job uid
    return path


@contextlib.contextmanager
def staged_secrets(root: Path, job_id: str, values: Mapping[str, bytes], uid: int, gid: int) -> Iterator[Path]:
    """A directory <root>/<job_id> with one 0400 file per secret, owned by uid:gid; removed on exit."""
    job_dir = root / job_id
    job_dir.mkdir(mode=0o700)
    try:
        write_secret_files(job_dir, values, uid, gid)
        yield job_dir
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


MASK = b"***"
MIN_PARTIAL = 4  # a cut-off tail shorter than this is not worth masking as a secret prefix


def mask_forms(values: list[bytes]) -> list[bytes]:
    """Every form of the values that is masked: each value as stored and without surrounding whitespace (a file
    holds `value\n`, the job prints `value`), longest first so that a longer form is masked whole."""
    forms = {form for v in values for form in (v, v.strip()) if form}
    return sorted(forms, key=lambda f: (-len(f), f))


def mask(output: bytes, values: list[bytes]) -> bytes:
    """Replace secret values (see mask_forms) with ***; also a secret's prefix left at the very end by
    truncation. Encoded forms (base64, hex, URL-escaped, split across writes) are not recognized."""
    for value in mask_forms(values):
        output = output.replace(value, MASK)
        for n in range(min(len(value) - 1, len(output)), MIN_PARTIAL - 1, -1):
            if output.endswith(value[:n]):
                output = output[:-n] + MASK
                break
    return output


def write_secret_files(directory: Path, values: Mapping[str, bytes], uid: int, gid: int) -> None:
    """One 0400 file per secret, owned by the job's uid (never following a planted link, never over an existing
    file), then the directory handed to that uid read-only (0500)."""
    for name, value in values.items():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        try:
            os.write(fd, value)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    os.chown(directory, uid, gid)
    os.chmod(directory, 0o500)
