"""Validation problems and the table of stable rule codes (the source of docs/rules.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    stage: str
    title: str
    why: str
    fix: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where (file, line, JSON pointer), which rule, and what is wrong."""

    file: str
    line: int | None
    path: str
    code: str
    message: str
    severity: Severity = Severity.ERROR

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
        }

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, self.line or 0, self.path, self.code)


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.code: r for r in rules}


# Codes are part of the contract: CI pipelines grep for them. Never renumber; add new ones.
RULES: dict[str, Rule] = _rules(
    # Stage 1: limits and YAML safety, before any YAML is interpreted.
    Rule("limits/file-too-large", "limits", "File exceeds the size limit",
         "Large files are refused before parsing so that a hostile file cannot exhaust memory.",
         "Split the documents over several files, or raise `limits.maxFileBytes` in the daemon config."),
    Rule("limits/bundle-too-large", "limits", "Bundle exceeds the total size limit",
         "The sum of all files of a bundle is bounded so that loading stays cheap.",
         "Move node code or data out of the bundle, or raise `limits.maxBundleBytes`."),
    Rule("limits/too-deep", "limits", "YAML nesting too deep",
         "Deep nesting is a classic parser attack; no policy needs more than a few levels.",
         "Flatten the document."),
    Rule("limits/too-many-nodes", "limits", "Too many YAML nodes",
         "The number of values in one file is bounded (a million-key file is an attack, not a policy).",
         "Split the file."),
    Rule("limits/too-many-aliases", "limits", "Too many YAML aliases or alias expansion too large",
         "Aliases can expand exponentially (the 'billion laughs' attack).",
         "Write the values out instead of using anchors and aliases."),
    Rule("limits/too-many-files", "limits", "Too many files in the bundle",
         "A bundle is a handful of policy files and node code, not a file tree of unbounded size.",
         "Remove files that do not belong to the bundle."),
    Rule("yaml/syntax", "yaml", "YAML syntax error",
         "The file is not well-formed YAML.", "Fix the syntax at the reported line."),
    Rule("yaml/encoding", "yaml", "File is not UTF-8",
         "Policy files must be UTF-8 text.", "Re-encode the file as UTF-8."),
    Rule("yaml/duplicate-key", "yaml", "Duplicate mapping key",
         "A key given twice could be read two ways (first or last wins); onexd refuses it.",
         "Remove one of the two keys."),
    Rule("yaml/forbidden-tag", "yaml", "Non-standard YAML tag",
         "Tags such as `!!python/object` can instantiate objects; only plain data is allowed.",
         "Remove the tag; write plain strings, numbers, booleans, lists and mappings."),
    Rule("yaml/complex-key", "yaml", "Non-scalar or non-string mapping key",
         "Keys must be plain strings so that documents map 1:1 to JSON.", "Use a string key."),
    Rule("yaml/merge-key", "yaml", "YAML merge key `<<`",
         "Merge keys make a document mean something other than what it shows.",
         "Write the merged fields out."),
    Rule("yaml/ambiguous-scalar", "yaml", "Scalar that YAML versions read differently",
         "`yes`/`no`/`on`/`off`, `0755`, `1:20` and `1_000` mean different things in YAML 1.1 and 1.2; "
         "input that could be read two ways is refused.", "Quote the value, or write true/false or a plain "
         "decimal number."),
    Rule("yaml/empty-document", "yaml", "Empty document",
         "A `---` with nothing after it is most likely a mistake.", "Remove the empty document."),
    Rule("yaml/not-a-mapping", "yaml", "Document is not a mapping",
         "Every document must be a mapping with apiVersion, kind, metadata and spec.",
         "Start the document with `apiVersion: onexd/v1`."),
    Rule("yaml/invalid-number", "yaml", "Number cannot be represented",
         "Infinite or NaN numbers have no JSON form.", "Use a finite number."),
    # Stage 2: JSON Schema.
    Rule("schema/api-version", "schema", "Unknown apiVersion",
         "Only `onexd/v1` is understood by this version of onexd.", "Set `apiVersion: onexd/v1`."),
    Rule("schema/kind", "schema", "Unknown kind",
         "The document's `kind` is not one of the kinds onexd knows.",
         "Use one of Bundle, Role, RoleBinding, Capability, SandboxProfile, SeccompProfile, NetworkZone, "
         "SecretSource, Secret, Node."),
    Rule("schema/unknown-field", "schema", "Unknown field",
         "Unknown fields are errors everywhere: a typo must never silently weaken a policy.",
         "Remove the field or fix its spelling (see the policy reference)."),
    Rule("schema/missing-field", "schema", "Required field missing",
         "The field has no safe default.", "Add the field."),
    Rule("schema/wrong-type", "schema", "Wrong type",
         "The value has a different type than the schema requires.", "Use the documented type."),
    Rule("schema/invalid-name", "schema", "Invalid name",
         "Names are DNS-label-like: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.",
         "Use lowercase letters, digits and dashes, at most 63 characters."),
    Rule("schema/invalid-version", "schema", "Invalid semantic version",
         "Versions order bundle changes; they must be semver (`1.2.3`).", "Use a semver version."),
    Rule("schema/invalid-value", "schema", "Invalid value",
         "The value does not satisfy the schema (pattern, range, enum or shape).",
         "Use a value the policy reference allows."),
    Rule("schema/shell-command", "schema", "Command given as a shell string",
         "A shell string can be read two ways (split by whom?); commands are argv lists.",
         "Write the command as a list: `[python3, /app/node/main.py]`."),
    # Stage 3: semantics.
    Rule("bundle/missing-manifest", "semantics", "Bundle manifest missing or wrong",
         "Each bundle has exactly one `Bundle` document, in `bundle.yaml`.",
         "Put one `kind: Bundle` document in bundle.yaml, and none elsewhere."),
    Rule("bundle/unreadable-file", "semantics", "File cannot be read",
         "A file of the bundle vanished or could not be read while the bundle was loaded; the bundle is "
         "rejected rather than activated without it.", "Check the file's permissions, or retry once it is "
         "written completely."),
    Rule("bundle/name-conflict", "semantics", "Name used twice",
         "Names are global across active bundles; the same kind and name twice is ambiguous.",
         "Rename one of them, or remove it from one bundle."),
    Rule("ref/role", "semantics", "Unknown role",
         "A RoleBinding or Role refers to a role that no active bundle defines.", "Define it or fix the name."),
    Rule("ref/capability", "semantics", "Unknown capability",
         "A Role refers to a Capability that no active bundle defines.", "Define it or fix the name."),
    Rule("ref/profile", "semantics", "Unknown sandbox profile",
         "A Node or Capability refers to a SandboxProfile that does not exist.", "Define it or fix the name."),
    Rule("ref/seccomp", "semantics", "Unknown seccomp profile",
         "A SandboxProfile refers to a SeccompProfile that does not exist.",
         "Define it, fix the name, or use `runtime-default`."),
    Rule("ref/seccomp-file", "semantics", "Seccomp file missing or invalid",
         "The `file` of a SeccompProfile must be a JSON seccomp profile inside the bundle.",
         "Fix the path (relative to the bundle) or the JSON."),
    Rule("ref/zone", "semantics", "Unknown network zone",
         "A profile, node or capability refers to a NetworkZone that does not exist.",
         "Define it or fix the name (`none` is built in)."),
    Rule("ref/secret", "semantics", "Unknown secret",
         "A Node or Capability refers to a Secret that does not exist.", "Define it or fix the name."),
    Rule("ref/secret-source", "semantics", "Unknown secret source",
         "A Secret refers to a SecretSource that does not exist.", "Define it or fix the name."),
    Rule("ref/node-source", "semantics", "Node source directory missing",
         "`source.path` must be an existing directory inside the bundle.", "Fix the path."),
    Rule("ref/path-escape", "semantics", "Path escapes the bundle",
         "Paths are relative to the bundle and may not leave it (`..`, absolute paths, symlinks out).",
         "Keep referenced files inside the bundle directory."),
    Rule("ref/inherit-cycle", "semantics", "Role inheritance cycle",
         "Roles inherit in a tree; a cycle has no meaning.", "Break the cycle."),
    Rule("ref/node-timeout", "semantics", "Node timeout above its profile's",
         "A node may only narrow its profile's limits.", "Lower `timeoutSeconds` or raise the profile's."),
    Rule("ref/glob-matches-nothing", "semantics", "Node glob matches no node",
         "A capability grant that matches no node is usually a typo.", "Fix the glob."),
    Rule("ref/reserved-name", "semantics", "Reserved name",
         "`runtime-default` and `unconfined` are not names for seccomp profiles; zone `none` is built in.",
         "Choose another name."),
    Rule("ref/unknown-permission", "semantics", "Permission outside onexd's vocabulary",
         "The permission does not gate anything in onexd (it may be meant for another system).",
         "Check the spelling; see the permission list in the README."),
    Rule("ref/egress-in-non-egress-zone", "semantics", "Egress list in a non-egress zone",
         "Only `mode: egress` zones have an allowlist.", "Remove `egress` or set `mode: egress`."),
    Rule("ref/secret-source-config", "semantics", "Secret source misconfigured",
         "Each SecretSource type takes its own fields (env: prefix; file: path; vault: address, mount, "
         "tokenFile).", "Give exactly the fields of the chosen type."),
    # Stage 4: security rules (fail closed).
    Rule("security/root-user", "security", "Sandbox runs as uid or gid 0",
         "Root in a container is one kernel bug away from root on the host.",
         "Use a non-zero `user: \"uid:gid\"`, e.g. `\"65534:65534\"`."),
    Rule("security/writable-root", "security", "Writable root filesystem",
         "A writable root lets a job tamper with its own image and persist tools.",
         "Keep `readOnlyRootFilesystem: true`; add a tmpfs for scratch space."),
    Rule("security/capability-add", "security", "Capability outside the safe allowlist",
         "Capabilities like SYS_ADMIN, NET_ADMIN, SYS_PTRACE or ALL break the sandbox.",
         "Remove it; only the allowlisted capabilities in docs/rules.md may be added."),
    Rule("security/seccomp-allows-default", "security", "Seccomp profile allows by default",
         "A profile whose defaultAction allows (or only logs) is not a filter.",
         "Use `SCMP_ACT_ERRNO` (with `defaultErrnoRet`) or a kill action as the default."),
    Rule("security/seccomp-weak", "security", "Seccomp profile weaker than the deny-list floor",
         "A profile must be at least as strict as Docker's default: no rule may allow, log, trace or notify a "
         "syscall that Docker's default profile grants only with a capability or never (mount, unshare, setns, "
         "bpf, keyctl, ptrace, userfaultfd, perf_event_open, clone3, ... the list is in "
         "`onexd/policy/seccomp.py`), with any arguments; `clone` only with Docker's filter on namespace flags "
         "(SCMP_CMP_MASKED_EQ 0x7E020000 against 0). Flags other than SECCOMP_FILTER_FLAG_TSYNC and "
         "SECCOMP_FILTER_FLAG_LOG (e.g. SECCOMP_FILTER_FLAG_SPEC_ALLOW) and an errno of 0 are refused.",
         "Remove the rule or flag, or use `runtime-default`."),
    Rule("security/seccomp-unconfined", "security", "Seccomp disabled",
         "`unconfined` removes the syscall filter entirely.", "Use `runtime-default` or a SeccompProfile."),
    Rule("security/missing-limit", "security", "Resource limit missing or unbounded",
         "Every job has memory, CPU, pids, open files, time and output limits.", "Set every limit to a "
         "positive value."),
    Rule("security/limit-range", "security", "Value outside its floor and ceiling",
         "Every limit has a floor and a ceiling so that the engine never receives a value it reads as "
         "unlimited (a tiny `cpus` rounding to NanoCpus 0, a memory of 2^63-1): memory 6Mi..256Gi, cpus "
         "0.01..256, pids 1..65536, nofile 8..1048576, timeoutSeconds 1..86400, outputBytes 1Ki..64Mi (output is "
         "buffered in the daemon's memory), tmpfs size 4Ki..64Gi, uid and gid 1..2147483647. Values outside "
         "these ranges are refused by the schema (`schema/invalid-value`) or by this rule.",
         "Use a value within the range."),
    Rule("security/secret-literal", "security", "Secret-looking literal in the bundle",
         "Secret values never live in policy; a key like `password:` with a value, a PEM private key or a "
         "JWT-shaped string is refused wherever it appears.",
         "Move the value into a SecretSource and reference it with a Secret."),
    Rule("security/secret-in-env", "security", "Secret in the environment",
         "Environment variables leak through `docker inspect`, /proc and child processes.",
         "Grant the secret to the node; it arrives as a file under /run/secrets."),
    Rule("security/tmpfs-path", "security", "tmpfs over a reserved path",
         "tmpfs mounts may not cover, hide or sit inside `/`, `/app`, `/app/node`, `/run/secrets`, `/proc`, "
         "`/sys`, `/dev` or `/etc`. Paths are compared in normalized form, and spellings that are not normalized "
         "(`//proc`, `/./proc`, `/../proc`, a trailing `/`) are refused outright; two mounts at one path too.",
         "Mount scratch space elsewhere, e.g. `/tmp`."),
    Rule("security/secret-source-reserved", "security", "Secret source reaches onexd's own key material",
         "onexd's master key, state directory and `ONEXD_*` variables are never a secret source: an `env` "
         "prefix (or prefix + key) reaching `ONEXD_*`, and a `file` path or vault `tokenFile` at, inside or "
         "above `/var/lib/onexd`, `/etc/onexd`, `/run/onexd` or `/run/credentials` are refused. The daemon also "
         "refuses, when it reads a secret, anything in its configured state directory and "
         "$CREDENTIALS_DIRECTORY.", "Keep secrets for jobs in a directory of their own."),
    # Stage 5: versions and signatures.
    Rule("version/downgrade", "version", "Downgrade or changed content without a version bump",
         "A changed bundle must carry a higher version than the active one.",
         "Raise `spec.version`, or roll back explicitly."),
    Rule("signature/missing", "signature", "Bundle not signed",
         "The configuration requires signed bundles.", "Sign it: `onexd policy sign DIR --key KEY`."),
    Rule("signature/untrusted", "signature", "Signed by an untrusted key",
         "The signature does not verify with any trusted key.",
         "Sign with a trusted key or add its public key to `trust.bundleKeys`."),
    Rule("signature/mismatch", "signature", "Files do not match the signature",
         "A file was added, removed or changed after signing.", "Re-sign the bundle after reviewing the change."),
    Rule("signature/invalid", "signature", "Malformed signature",
         "`signature.jws` is not a compact JWS with onexd's payload.", "Re-sign the bundle."),
)


def problem(file: str, line: int | None, path: str, code: str, message: str,
            severity: Severity = Severity.ERROR) -> Problem:
    """Build a Problem, refusing codes that are not in RULES (keeps docs/rules.md complete)."""
    if code not in RULES:
        raise ValueError(f"unregistered rule code {code!r}")
    return Problem(file=file, line=line, path=path, code=code, message=message, severity=severity)


def has_errors(problems: list[Problem] | tuple[Problem, ...]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)

