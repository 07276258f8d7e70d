"""The key-encryption key (KEK) that protects onexd's private keys and secret store at rest.

Taken, in order, from ONEXD_MASTER_KEY, a systemd credential ($CREDENTIALS_DIRECTORY/master-key), or a 0600
file onexd generates once in its state directory (with a loud warning: whoever reads the state directory
can then decrypt it).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from onexd.crypto import derive_key, random_key
from onexd.errors import ConfigError
from onexd.errors import MasterKeyMissing as MasterKeyMissing

log = logging.getLogger("onexd.keys")
MIN_MASTER_KEY_CHARS = 16


@dataclass(frozen=True, slots=True)
class MasterKey:
    key: bytes
    source: str  # env, credential, generated-file, file

    def for_purpose(self, purpose: str) -> bytes:
        return derive_key(self.key, purpose)

    def __repr__(self) -> str:  # never print key material
        return f"MasterKey(source={self.source!r})"


# The file the systemd unit loads as the credential `master-key`; offline commands read it directly.
UNIT_CREDENTIAL_FILE = Path("/etc/onexd/master-key")


def where_looked(state_dir: Path, credential_file: Path = UNIT_CREDENTIAL_FILE) -> str:
    return (f"ONEXD_MASTER_KEY, the systemd credential $CREDENTIALS_DIRECTORY/master-key, {credential_file} "
            f"(the file the unit loads as that credential) and {state_dir / 'master.key'}")


def load_existing_master_key(state_dir: Path, environ: Mapping[str, str] | None = None,
                             credential_file: Path = UNIT_CREDENTIAL_FILE) -> MasterKey:
    """The daemon's master key for an offline command: never generates one (a new key would not open what
    the daemon sealed). Raises MasterKeyMissing saying where it looked."""
    env = os.environ if environ is None else environ
    if env.get("ONEXD_MASTER_KEY") is None and not (
            env.get("CREDENTIALS_DIRECTORY") and (Path(env["CREDENTIALS_DIRECTORY"]) / "master-key").is_file()):
        if credential_file.is_file():
            return MasterKey(derive_key(credential_file.read_bytes().strip(), "master"), "credential")
        if not (state_dir / "master.key").exists():
            raise MasterKeyMissing(f"no master key: looked in {where_looked(state_dir, credential_file)}; "
                                   "nothing was written")
    return load_master_key(state_dir, env)


def load_master_key(state_dir: Path, environ: Mapping[str, str] | None = None) -> MasterKey:
    env = os.environ if environ is None else environ
    value = env.get("ONEXD_MASTER_KEY")
    if value is not None:
        if len(value) < MIN_MASTER_KEY_CHARS:
            raise ConfigError(f"ONEXD_MASTER_KEY is shorter than {MIN_MASTER_KEY_CHARS} characters")
        return MasterKey(derive_key(value.encode(), "master"), "env")
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / "master-key").is_file():
        return MasterKey(derive_key((Path(creds) / "master-key").read_bytes().strip(), "master"), "credential")
    path = state_dir / "master.key"
    if path.exists():
        st = path.stat()
        if st.st_mode & 0o077:
            raise ConfigError(f"{path} is readable by group or others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        return MasterKey(derive_key(base64.b64decode(path.read_bytes()), "master"), "file")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    material = random_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(material))
        os.fsync(f.fileno())
    log.warning("generated a master key file in the state directory: anyone who can read the state directory "
                "can decrypt onexd's keys and secrets; set ONEXD_MASTER_KEY or a systemd credential instead",
                extra={"source": "generated-file"})
    return MasterKey(derive_key(material, "master"), "generated-file")
