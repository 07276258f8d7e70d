"""Stage 4: security rules. Each fails closed: when in doubt, the bundle is rejected."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

from onexd.policy.loader import SIGNATURE, LoadedDoc, ParsedBundle
from onexd.policy.models import SandboxProfileDoc, SeccompProfileDoc
from onexd.policy.problems import Problem, problem
from onexd.policy.semantics import Definitions, resolve_seccomp
from onexd.policy.yamlsafe import YamlDocument, escape_pointer

# Capabilities that cannot be used to leave the sandbox or reach the host. Everything else (SYS_ADMIN,
# NET_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, ALL, ...) is refused.
SAFE_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE", "AUDIT_WRITE",
})
ALLOWING_SECCOMP_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"})
RESERVED_MOUNTS = ("/", "/app", "/app/node", "/run/secrets", "/proc", "/sys", "/dev", "/etc")

_SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|private[_-]?key|credential|auth[_-]?key"
    r"|access[_-]?key|client[_-]?secret)")
_SECRET_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a PEM private key", re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("a JWT-shaped string", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a password assignment", re.compile(
        r"(?i)\b(password|passwd|secret|api[_-]?key|token)\s*[:=]\s*['\"]?[^\s'\"]{4,}")),
)
# Subtrees of free-form maps where a secret-named key with a literal value is a leaked secret.
_FREE_FORM = ("/metadata/labels", "/metadata/annotations", "/spec/inputSchema")
_SCHEMA_LITERAL_KEYS = frozenset({"default", "const", "examples", "enum", "example"})


# In code and data files only unmistakable shapes count: `password = input()` is not a leak.
_FILE_PATTERNS = _SECRET_VALUES[:2]


def find_secret_literal(text: str, patterns: Sequence[tuple[str, re.Pattern[str]]] = _SECRET_VALUES
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
        if not spec.readOnlyRootFilesystem:
            add("/spec/readOnlyRootFilesystem", "security/writable-root", "the root filesystem must be read-only")
        for i, cap in enumerate(spec.capabilities.add):
            if cap not in SAFE_CAPABILITIES:
                hint = " (write capability names without CAP_)" if cap.startswith("CAP_") else ""
                add(f"/spec/capabilities/add/{i}", "security/capability-add",
                    f"capability {cap!r} is not in the safe allowlist{hint}")
        if spec.seccompProfile == "unconfined":
            add("/spec/seccompProfile", "security/seccomp-unconfined", "seccomp may never be disabled")
        for i, mount in enumerate(spec.tmpfs):
            path = mount.path.rstrip("/") or "/"
            if any(path == r or r.startswith(path + "/") or (path.startswith(r + "/") and r != "/")
                   for r in RESERVED_MOUNTS):
                add(f"/spec/tmpfs/{i}/path", "security/tmpfs-path", f"tmpfs may not cover {mount.path!r}")
        for key, value in spec.env.items():
            message = env_secret_problem(key, value, secret_names)
            if message is not None:
                add(f"/spec/env/{escape_pointer(key)}", "security/secret-in-env", message)
    return out


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
            if isinstance(doc.model, SeccompProfileDoc):
                profile, _ = resolve_seccomp(bundle, doc)
                if profile is not None and profile.get("defaultAction") in ALLOWING_SECCOMP_ACTIONS:
                    pointer = "/spec/profile/defaultAction" if doc.model.spec.profile else "/spec/file"
                    found.append(problem(doc.file, doc.line(pointer), pointer, "security/seccomp-allows-default",
                                         f"defaultAction {profile['defaultAction']} lets unlisted syscalls through"))
        # Secrets in any other file of the bundle (node code, seccomp JSON, notes).
        for rel, raw in bundle.files.items():
            if rel.endswith((".yaml", ".yml")) or rel == SIGNATURE:  # the signature is JWS-shaped by design
                continue
            what = find_secret_literal(raw.decode("utf-8", errors="ignore"), _FILE_PATTERNS)
            if what:
                found.append(problem(bundle.display_path(rel), None, "", "security/secret-literal",
                                     f"{what} appears in the bundle; secrets never live in policy"))
    return out
