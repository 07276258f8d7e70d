"""Stage 5a: bundle signatures. `signature.jws` is a compact JWS whose payload lists every file's sha256."""

from __future__ import annotations

from pathlib import Path

from onexd.crypto import PrivateKey, PublicKey, jws_sign, jws_verify
from onexd.errors import JwsMalformed, JwsUntrusted
from onexd.fsutil import atomic_write
from onexd.policy.loader import SIGNATURE, ParsedBundle, file_hashes
from onexd.policy.problems import Problem, problem

JWS_TYPE = "onexd-bundle+jws"


def sign_bundle(bundle: ParsedBundle, key: PrivateKey) -> Path:
    """Write DIR/signature.jws covering every file of the bundle as it is now."""
    payload = {"bundle": bundle.name, "version": bundle.version, "digest": bundle.digest,
               "files": file_hashes(bundle.files)}
    target = bundle.root / SIGNATURE
    atomic_write(target, (jws_sign(payload, key, JWS_TYPE) + "\n").encode("ascii"), 0o644)
    return target


def check_signature(bundle: ParsedBundle, trusted: list[PublicKey]) -> list[Problem]:
    """Problems of a bundle's signature against trusted keys (empty when it verifies and matches)."""
    shown = bundle.display_path(SIGNATURE)
    raw = bundle.files.get(SIGNATURE)
    if raw is None:
        return [problem(shown, None, "", "signature/missing", "bundle is not signed (no signature.jws)")]
    try:
        verified = jws_verify(raw.decode("ascii", errors="replace").strip(), trusted, JWS_TYPE)
    except JwsMalformed as exc:
        return [problem(shown, None, "", "signature/invalid", str(exc))]
    except JwsUntrusted as exc:
        return [problem(shown, None, "", "signature/untrusted", str(exc))]
    signed = verified.payload.get("files")
    if not isinstance(signed, dict):
        return [problem(shown, None, "", "signature/invalid", "payload has no file list")]
    actual = file_hashes(bundle.files)
    out = []
    for path in sorted(set(signed) | set(actual)):
        if path not in actual:
            why = "was removed after signing"
        elif path not in signed:
            why = "was added after signing"
        elif signed[path] != actual[path]:
            why = "changed after signing"
        else:
            continue
        out.append(problem(bundle.display_path(path), None, "", "signature/mismatch", f"{path} {why}"))
    return out
