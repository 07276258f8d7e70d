"""Stage 4: security rules. Each fails closed: when in doubt, the bundle is rejected."""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import Any

from onexd.policy.limits import ID_MAX, ID_MIN
from onexd.policy.loader import SIGNATURE, LoadedDoc, ParsedBundle
from onexd.policy.models import SandboxProfileDoc, SeccompProfileDoc, SecretDoc, SecretSourceDoc
from onexd.policy.problems import Problem, problem
from onexd.policy.seccomp import seccomp_weaknesses
from onexd.policy.semantics import Definitions, resolve_seccomp
from onexd.policy.yamlsafe import YamlDocument, escape_pointer

# Capabilities that cannot be used to leave the sandbox or reach the host. Everything else (SYS_ADMIN,
# NET_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, ALL, ...) is refused.
SAFE_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE", "AUDIT_WRITE",
})
RESERVED_MOUNTS = ("/", "/app", "/app/node", "/run/secrets", "/proc", "/sys", "/dev", "/etc")
# onexd's own key material is never a secret source: its environment variables, and the directories that hold
# its state and credentials by default (the daemon also refuses its configured directories when it reads).
RESERVED_ENV_PREFIX = "ONEXD_"
RESERVED_DIRS = ("/var/lib/onexd", "/etc/onexd", "/run/onexd", "/run/credentials")

_SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|private[_-]?key|credential|auth[_-]?key"
    r"|access[_-]?key|client[_-]?secret)")
# Runs of base64url characters and dots, matched without backtracking (possessive).
_JWT_RUN = re.compile(r"[A-Za-z0-9_.-]*+")


def _jwt_shaped(text: str) -> bool:
    """`eyJ<4+>.eyJ<4+>.<sig>` somewhere in text, the first part starting at a word boundary. Linear: a regular
    expression for this shape backtracks quadratically on `-eyJaaaa` repeated (137 s for 1 MiB). Each maximal
    run of token characters around a `.eyJ` is looked at once."""
    hit = text.find(".eyJ")
    if hit < 0:
        return False
    reverse, n = text[::-1], len(text)
    while hit >= 0:
        left = _JWT_RUN.match(reverse, n - hit)
        start = hit - (left.end() - (n - hit)) if left else hit
        right = _JWT_RUN.match(text, hit)
        end = right.end() if right else hit + 4
        # The character before a maximal run is never ASCII-word; a Unicode letter there is no boundary.
        boundary = start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")
        parts = text[start:end].split(".")
        for i, (first, second) in enumerate(itertools.pairwise(parts[:-1])):  # a dot must follow second
            if len(second) < 7 or not second.startswith("eyJ"):
                continue
            if (first.startswith("eyJ") and len(first) >= 7 and (i > 0 or boundary)) or _boundary_eyj(first):
                return True
        hit = text.find(".eyJ", end)
    return False


def _boundary_eyj(part: str) -> bool:
    """A `-eyJ` inside part with at least 4 characters after it (the earliest has the most)."""
    at = part.find("-eyJ")
    return at >= 0 and len(part) - (at + 4) >= 4


class _Matcher:
    """A search function with the interface of a compiled pattern."""

    def __init__(self, test: Callable[[str], bool]) -> None:
        self._test = test

    def search(self, text: str) -> bool:
        return self._test(text)


# Every pattern is linear in the text: anchored by a literal prefix, with runs that cannot overlap a retry.
_SECRET_VALUES: tuple[tuple[str, re.Pattern[str] | _Matcher], ...] = (
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z0-9]++ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("a JWT-shaped string", _Matcher(_jwt_shaped)),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}+\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10}")),
    ("a password assignment", re.compile(
        r"(?i)\b(password|passwd|secret|api[_-]?key|token)\s*+[:=]\s*+['\"]?[^\s'\"]{4}")),
)
# Subtrees of free-form maps where a secret-named key with a literal value is a leaked secret.
_FREE_FORM = ("/metadata/labels", "/metadata/annotations", "/spec/inputSchema")
_SCHEMA_LITERAL_KEYS = frozenset({"default", "const", "examples", "enum", "example"})


# In code and data files only unmistakable shapes count: `password = input()` is not a leak.
_FILE_PATTERNS = _SECRET_VALUES[:2]


def find_secret_literal(text: str, patterns: Sequence[tuple[str, re.Pattern[str] | _Matcher]] = _SECRET_VALUES
                        ) -> str | None:
    """What kind of secret text looks like, or None."""
    for what, pattern in patterns:
        if pattern.search(text):
            return what
    return None


def _strings(node: Any, pointer: str) -> Iterator[tuple[str, str, bool]]:
    """(pointer, text, is_key) for every string in a document, iteratively."""
    stack: list[tuple[Any, str]] = [(node, pointer)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            yield at, value, False
        elif isinstance(value, dict):
            for k, v in value.items():
                child = f"{at}/{escape_pointer(k)}"
                yield child, k, True
                stack.append((v, child))
        elif isinstance(value, list):
            stack.extend((v, f"{at}/{i}") for i, v in enumerate(value))


def _literals_under_secret_keys(node: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Literal values held by secret-named keys inside a free-form map (labels, annotations, schemas)."""
    stack: list[tuple[Any, str, bool]] = [(node, pointer, False)]
    while stack:
        value, at, secret_ctx = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                named = bool(_SECRET_KEY.search(k))
                child = f"{at}/{escape_pointer(k)}"
                literal = isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v) != ""
                if (named and literal) or (secret_ctx and k in _SCHEMA_LITERAL_KEYS and v not in (None, "", [], {})):
                    yield child, k
                else:
                    stack.append((v, child, secret_ctx or named))
        elif isinstance(value, list):
            stack.extend((v, f"{at}/{i}", secret_ctx) for i, v in enumerate(value))


def _literal_problems(file: str, doc: YamlDocument) -> list[Problem]:
    """Secret-looking literals anywhere in one parsed document, valid or not."""
    out: list[Problem] = []
    data = doc.data

    def add(pointer: str, message: str) -> None:
        out.append(problem(file, doc.line_of(pointer), pointer, "security/secret-literal", message))

    for at, text, _ in _strings(data, ""):
        what = find_secret_literal(text)
        if what:
            add(at, f"{what} appears in the bundle; secrets never live in policy")
    for free in _FREE_FORM:
        sub: Any = data
        for part in free.strip("/").split("/"):
            sub = sub.get(part) if isinstance(sub, dict) else None
        for at, key in _literals_under_secret_keys(sub, free):
            add(at, f"{key!r} holds a literal value; use a Secret instead")
    return out


def _doc_problems(doc: LoadedDoc, secret_names: frozenset[str]) -> list[Problem]:
    out: list[Problem] = []

    def add(pointer: str, code: str, message: str) -> None:
        out.append(problem(doc.file, doc.line(pointer), pointer, code, f"{doc.kind} {doc.name}: {message}"))

    m = doc.model
    if isinstance(m, SandboxProfileDoc):
        spec = m.spec
        uid, gid = (int(x) for x in spec.user.split(":"))
        if uid == 0 or gid == 0:
            add("/spec/user", "security/root-user", f"user {spec.user!r} has uid or gid 0")
        elif not (ID_MIN <= uid <= ID_MAX and ID_MIN <= gid <= ID_MAX):
            add("/spec/user", "security/limit-range", f"uid and gid must be from {ID_MIN} to {ID_MAX}")
        if not spec.readOnlyRootFilesystem:
            add("/spec/readOnlyRootFilesystem", "security/writable-root", "the root filesystem must be read-only")
        for i, cap in enumerate(spec.capabilities.add):
            if cap not in SAFE_CAPABILITIES:
                hint = " (write capability names without CAP_)" if cap.startswith("CAP_") else ""
                add(f"/spec/capabilities/add/{i}", "security/capability-add",
                    f"capability {cap!r} is not in the safe allowlist{hint}")
        if spec.seccompProfile == "unconfined":
            add("/spec/seccompProfile", "security/seccomp-unconfined", "seccomp may never be disabled")
        seen: set[str] = set()
        for i, mount in enumerate(spec.tmpfs):
            path = posixpath.normpath(mount.path)
            if path != mount.path or path.startswith("//"):
                # The schema refuses these spellings already; compare only normalized paths, whatever happens.
                add(f"/spec/tmpfs/{i}/path", "security/tmpfs-path", "tmpfs path is not in normalized form")
            elif tmpfs_over_reserved(path):
                add(f"/spec/tmpfs/{i}/path", "security/tmpfs-path", f"tmpfs may not cover {mount.path!r}")
            elif path in seen:
                add(f"/spec/tmpfs/{i}/path", "security/tmpfs-path", f"two tmpfs mounts at {mount.path!r}")
            seen.add(path)
        for key, value in spec.env.items():
            message = env_secret_problem(key, value, secret_names)
            if message is not None:
                add(f"/spec/env/{escape_pointer(key)}", "security/secret-in-env", message)
    return out


def tmpfs_over_reserved(path: str) -> bool:
    """True if a tmpfs at the normalized path would cover, hide or sit inside a reserved path."""
    return any(path == r or r.startswith(path.rstrip("/") + "/") or (path.startswith(r + "/") and r != "/")
               for r in RESERVED_MOUNTS)


def reserved_env_name(name: str) -> bool:
    """True if an environment variable name belongs to onexd itself (ONEXD_MASTER_KEY, ...)."""
    return name.upper().startswith(RESERVED_ENV_PREFIX)


def _overlaps(path: str, directory: str) -> bool:
    """True if path is directory, inside it, or above it (a source above it reaches it through its keys)."""
    return path == directory or path.startswith(directory + "/") or directory.startswith(path.rstrip("/") + "/")


def _source_problems(doc: LoadedDoc) -> list[Problem]:
    """SecretSources that would hand onexd's own key material to a job."""
    out: list[Problem] = []
    spec = doc.model.spec  # type: ignore[attr-defined]

    def add(pointer: str, message: str) -> None:
        out.append(problem(doc.file, doc.line(pointer), pointer, "security/secret-source-reserved",
                           f"SecretSource {doc.name}: {message}"))

    prefix = spec.prefix
    if prefix is not None and (reserved_env_name(prefix) or RESERVED_ENV_PREFIX.startswith(prefix.upper())):
        add("/spec/prefix", f"prefix may not reach onexd's own {RESERVED_ENV_PREFIX}* variables")
    for field in ("path", "tokenFile"):
        value = getattr(spec, field)
        if value is not None and any(_overlaps(posixpath.normpath(value), d) for d in RESERVED_DIRS):
            add(f"/spec/{field}", "onexd's state and credential directories are never a secret source")
    return out


def _secret_problems(doc: LoadedDoc, defs: Definitions) -> list[Problem]:
    """A Secret whose env variable name (prefix + key) is one of onexd's own."""
    spec = doc.model.spec  # type: ignore[attr-defined]
    source = defs.get("SecretSource", {}).get(spec.source)
    prefix = getattr(getattr(source.doc.model, "spec", None), "prefix", None) if source is not None else None
    if prefix is not None and reserved_env_name(prefix + spec.key):
        return [problem(doc.file, doc.line("/spec/key"), "/spec/key", "security/secret-source-reserved",
                        f"Secret {doc.name}: the variable it names belongs to onexd ({RESERVED_ENV_PREFIX}*)")]
    return []


# --- environment variable names: matched by word, not by substring ----------------------------------------
# TOKENIZERS_PARALLELISM and COMPASS_MODE are not secrets; DB_PASSWORD, apiKey and GITHUB_TOKEN are.
_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "pwd", "pass", "secret", "secrets", "token",
                           "apikey", "credential", "credentials", "privatekey", "accesskey", "authkey"})
_SECRET_WORD_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("auth", "key")})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
SECRETS_DIR = "/run/secrets/"


def env_name_words(name: str) -> list[str]:
    """`DB_PASSWORD` -> [db, password]; `apiKey` -> [api, key]; `HTTPProxy2` -> [http, proxy, 2]."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_env_name(name: str) -> bool:
    words = env_name_words(name)
    return any(w in _SECRET_WORDS for w in words) or any(pair in _SECRET_WORD_PAIRS for pair in pairwise(words))


def env_secret_problem(key: str, value: str, secret_names: frozenset[str]) -> str | None:
    """Why an environment variable of a profile carries (or names) a secret, or None. A `*_FILE` variable
    pointing into /run/secrets is the file convention onexd asks for, so it is allowed."""
    if env_name_words(key)[-1:] == ["file"] and value.startswith(SECRETS_DIR):
        return None
    normalized = {s.replace("-", "_").upper() for s in secret_names}
    if is_secret_env_name(key) or key.upper() in normalized:
        return f"environment variable {key!r} looks like a secret; grant a Secret (a file) instead"
    if value in secret_names or value.startswith("/run/secrets"):
        return (f"environment variable {key!r} refers to a secret; only a *_FILE variable may point into "
                f"{SECRETS_DIR}")
    return None


def check_security(bundles: Sequence[ParsedBundle], defs: Definitions) -> dict[str, list[Problem]]:
    """All stage-4 problems, keyed by bundle directory name."""
    out: dict[str, list[Problem]] = {}
    secret_names = frozenset(defs.get("Secret", {}))
    for bundle in bundles:
        found = out.setdefault(bundle.dir_name, [])
        for _, file, parsed in bundle.raw_docs:
            found.extend(_literal_problems(file, parsed))
        for doc in bundle.docs:
            found.extend(_doc_problems(doc, secret_names))
            if isinstance(doc.model, SecretSourceDoc):
                found.extend(_source_problems(doc))
            elif isinstance(doc.model, SecretDoc):
                found.extend(_secret_problems(doc, defs))
            elif isinstance(doc.model, SeccompProfileDoc):
                found.extend(_seccomp_problems(bundle, doc))
        # Secrets in any other file of the bundle (node code, seccomp JSON, notes), and in YAML files that are
        # not policy (node code): those were not scanned document by document above.
        scanned = {rel for rel, _, _ in bundle.raw_docs}
        for rel, raw in bundle.files.items():
            if rel in scanned or rel == SIGNATURE:  # the signature is JWS-shaped by design
                continue
            what = find_secret_literal(raw.decode("utf-8", errors="ignore"), _FILE_PATTERNS)
            if what:
                found.append(problem(bundle.display_path(rel), None, "", "security/secret-literal",
                                     f"{what} appears in the bundle; secrets never live in policy"))
    return out


def _seccomp_problems(bundle: ParsedBundle, doc: LoadedDoc) -> list[Problem]:
    """A SeccompProfile must be at least as strict as the deny-list floor (onexd/policy/seccomp.py)."""
    profile, _ = resolve_seccomp(bundle, doc)
    if profile is None:
        return []  # reported by stage 3
    inline = doc.model.spec.profile is not None  # type: ignore[attr-defined]
    out = []
    for where, why in seccomp_weaknesses(profile):
        code = "security/seccomp-allows-default" if where == "/defaultAction" else "security/seccomp-weak"
        pointer = f"/spec/profile{where}" if inline else "/spec/file"
        out.append(problem(doc.file, doc.line(pointer), pointer, code, f"{doc.kind} {doc.name}: {why}"))
    return out
