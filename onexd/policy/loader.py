"""Stages 1 and 2: read a bundle directory under limits, parse its YAML, validate each document's schema."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from pydantic import ValidationError

from onexd.policy.models import KINDS, BundleDoc, Document, error_message
from onexd.policy.problems import Problem, problem
from onexd.policy.schema import SchemaSet
from onexd.policy.yamlsafe import YamlDocument, YamlLimits, load_documents

log = logging.getLogger("onexd.policy")

MANIFEST = "bundle.yaml"
SIGNATURE = "signature.jws"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadLimits:
    yaml: YamlLimits = field(default_factory=YamlLimits)
    max_bundle_bytes: int = 16 * 1024 * 1024
    max_bundle_files: int = 10_000


@dataclass(frozen=True, slots=True)
class LoadedDoc:
    """A schema-valid document with where it came from."""

    file: str
    relpath: str
    source: YamlDocument
    model: Document

    @property
    def kind(self) -> str:
        return str(getattr(self.model, "kind"))  # noqa: B009 - every concrete Document has kind

    @property
    def name(self) -> str:
        return self.model.metadata.name

    def line(self, pointer: str = "") -> int:
        return self.source.line_of(pointer)


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    """One bundle directory after stages 1-2: its files, digest, valid documents and problems so far."""

    dir_name: str
    root: Path
    display: str
    files: Mapping[str, bytes]
    digest: str
    docs: tuple[LoadedDoc, ...]
    problems: tuple[Problem, ...]
    # Every parsed YAML document, schema-valid or not: secret literals are searched for in all of them.
    raw_docs: tuple[tuple[str, str, YamlDocument], ...] = ()
    manifest: BundleDoc | None = None  # the one Bundle document, if there is exactly one

    @property
    def name(self) -> str:
        manifest = self.manifest
        return manifest.metadata.name if manifest else self.dir_name

    @property
    def version(self) -> str:
        manifest = self.manifest
        return manifest.spec.version if manifest else "0.0.0"

    def display_path(self, relpath: str) -> str:
        return f"{self.display.rstrip('/')}/{relpath}"


def ignored(name: str) -> bool:
    """Editor and VCS leftovers are never part of a bundle."""
    return name.startswith(".") or name.endswith(("~", ".swp", ".tmp"))


def content_digest(files: Mapping[str, bytes]) -> str:
    """sha256 of the canonical listing `<sha256>  <path>` of every file but the signature."""
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
                      for p in sorted(files) if p != SIGNATURE)
    return hashlib.sha256(listing.encode()).hexdigest()


def tree_digest(files: Mapping[str, bytes]) -> str:
    """sha256 of the listing `<sha256>  <path>` of every file, none excepted: the content address of a copy (a
    node's code). Unlike content_digest, a root `signature.jws` counts: two trees differing only there differ."""
    listing = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


def file_hashes(files: Mapping[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files) if p != SIGNATURE}


def find_bundles(path: Path) -> list[Path]:
    """A bundle directory itself, or the bundle subdirectories of a policy directory (sorted)."""
    if (path / MANIFEST).is_file():
        return [path]
    return sorted(p for p in path.iterdir()
                  if p.is_dir() and not ignored(p.name) and (p / MANIFEST).is_file())


def safe_resolve(path: Path, strict: bool = True) -> Path | None:
    """path with every symbolic link resolved, or None when it cannot be (a link loop; a missing file when
    strict)."""
    try:
        return path.resolve(strict=strict)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, on Python < 3.13
        return None


def _read_files(root: Path, display: str, limits: LoadLimits) -> tuple[dict[str, bytes], list[Problem]]:
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    total = 0
    real_root = safe_resolve(root) or root
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not ignored(d))
        for name in sorted(filenames):
            if ignored(name):
                continue
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            shown = f"{display.rstrip('/')}/{rel}"
            try:
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    target = safe_resolve(full)
                    if target is None:
                        problems.append(problem(shown, None, "", "ref/path-escape",
                                                "symbolic link cannot be resolved (a loop, or a missing target)"))
                        continue
                    if not target.is_relative_to(real_root):
                        problems.append(problem(shown, None, "", "ref/path-escape",
                                                "symbolic link points outside the bundle"))
                        continue
                    st = target.stat()
            except OSError as exc:
                problems.append(problem(shown, None, "", "bundle/unreadable-file",
                                        f"cannot read the file: {exc.strerror}"))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                # A hard link may be another name of any file on the same filesystem (a key, a password file):
                # unlike a symbolic link, where the other names live cannot be checked, so it is refused.
                problems.append(problem(shown, None, "", "ref/path-escape",
                                        "file has several hard links; the other names may lie outside the bundle"))
                continue
            if len(files) >= limits.max_bundle_files:
                problems.append(problem(shown, None, "", "limits/too-many-files",
                                        f"more than {limits.max_bundle_files} files in the bundle"))
                return files, problems
            if name.endswith(YAML_SUFFIXES) and st.st_size > limits.yaml.max_file_bytes:
                # Checked before reading: a 50 MB file never enters memory.
                problems.append(problem(shown, None, "", "limits/file-too-large",
                                        f"file is {st.st_size} bytes; the limit is "
                                        f"{limits.yaml.max_file_bytes}"))
                continue
            total += st.st_size
            if total > limits.max_bundle_bytes:
                problems.append(problem(shown, None, "", "limits/bundle-too-large",
                                        f"bundle exceeds {limits.max_bundle_bytes} bytes"))
                return files, problems
            try:
                files[rel] = full.read_bytes()
            except OSError as exc:
                problems.append(problem(shown, None, "", "bundle/unreadable-file",
                                        f"cannot read the file: {exc.strerror}"))
    return files, problems


def _validate_model(file: str, doc: YamlDocument) -> tuple[Document | None, list[Problem]]:
    kind = doc.data["kind"]
    try:
        return KINDS[kind].model_validate(doc.data), []
    except ValidationError as exc:
        # Only cross-field rules (exactly one of ...) reach here: the schema caught everything else.
        out = []
        for err in exc.errors():
            pointer = "".join(f"/{p}" for p in err["loc"])
            out.append(problem(file, doc.line_of(pointer), pointer, "schema/invalid-value",
                               f"{kind}: {error_message(err)}"))
        return None, out


def parse_bundle(root: Path, display: str | None = None, schemas: SchemaSet | None = None,
                 limits: LoadLimits | None = None) -> ParsedBundle:
    """Stages 1-2 for one bundle directory. Never raises for bad content."""
    limits = limits or LoadLimits()
    schemas = schemas or SchemaSet.shared()
    display = display if display is not None else str(root)
    files, problems = _read_files(root, display, limits)
    parsed: list[tuple[str, YamlDocument]] = []
    raw_docs: list[tuple[str, str, YamlDocument]] = []
    file_problems: dict[str, list[Problem]] = {}
    for rel in sorted(files):
        if not rel.endswith(YAML_SUFFIXES):
            continue
        shown = f"{display.rstrip('/')}/{rel}"
        docs, found = load_documents(files[rel], shown, limits.yaml)
        file_problems.setdefault(rel, []).extend(found)
        for doc in docs:
            if doc.data is None:
                file_problems[rel].append(problem(shown, doc.line, "", "yaml/empty-document",
                                                  "empty YAML document"))
                continue
            raw_docs.append((rel, shown, doc))
            found = schemas.validate(shown, doc)
            file_problems[rel].extend(found)
            if not found:
                parsed.append((rel, doc))
    loaded: list[LoadedDoc] = []
    for rel, doc in parsed:
        shown = f"{display.rstrip('/')}/{rel}"
        model, found = _validate_model(shown, doc)
        file_problems[rel].extend(found)
        if model is not None:
            loaded.append(LoadedDoc(shown, rel, doc, model))
    # YAML files inside a node's source directory are node code, not policy.
    code_dirs = {PurePosixPath(d.model.spec.source.path) for d in loaded  # type: ignore[attr-defined]
                 if d.kind == "Node" and d.model.spec.source is not None}  # type: ignore[attr-defined]

    def is_code(rel: str) -> bool:
        path = PurePosixPath(rel)
        return any(path.is_relative_to(c) for c in code_dirs)

    loaded = [d for d in loaded if not is_code(d.relpath)]
    for rel, found in file_problems.items():
        if not is_code(rel):
            problems.extend(found)
    manifests = [d.model for d in loaded if isinstance(d.model, BundleDoc)]
    return ParsedBundle(dir_name=root.name, root=root, display=display,
                        manifest=manifests[0] if len(manifests) == 1 else None,
                        files=MappingProxyType(files), digest=content_digest(files), docs=tuple(loaded),
                        problems=tuple(problems),
                        raw_docs=tuple(d for d in raw_docs if not is_code(d[0])))


def parse_bundle_contained(root: Path, display: str, schemas: SchemaSet, limits: LoadLimits | None = None
                           ) -> ParsedBundle:
    """parse_bundle, with any unforeseen failure turned into a rejection of this one bundle: whatever a bundle
    holds, the other bundles are still validated and the daemon keeps running on the last good version."""
    try:
        return parse_bundle(root, display, schemas, limits)
    except Exception as exc:  # the boundary: hostile input never takes the process down
        log.error("bundle could not be loaded", extra={"bundle": root.name, "error": type(exc).__name__})
        return ParsedBundle(dir_name=root.name, root=root, display=display, files=MappingProxyType({}), digest="",
                            docs=(), problems=(problem(display, None, "", "bundle/unreadable-file",
                                                       "the bundle could not be loaded (internal error; the "
                                                       "daemon log names it)"),))
