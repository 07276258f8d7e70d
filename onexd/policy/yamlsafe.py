"""Hostile-input-safe YAML: bounded, tag-free, duplicate-free, unambiguous. The only module importing yaml.

We never use PyYAML's composer or constructor: its C composer recurses (and segfaults on deep nesting) and
its constructor expands aliases without bound. Instead we consume the parser's event stream, which is a state
machine in both the C and the pure-Python implementation, and build plain JSON values ourselves, counting
depth, nodes and alias expansion as we go, and remembering the line of every JSON pointer for error reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import yaml

from onexd.errors import OnexdError
from onexd.policy.problems import Problem, problem

# The C parser is ~20x faster; both are iterative at the event level.
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STD = "tag:yaml.org,2002:"
_ALLOWED_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null")}
_ALLOWED_COLLECTION_TAGS = {f"{_STD}seq", f"{_STD}map"}

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")
# Plain scalars that YAML 1.1 (PyYAML, kubectl) and YAML 1.2 read differently. We refuse to guess.
_AMBIGUOUS = re.compile(
    r"^(?:[yY]es|YES|[nN]o|NO|[oO]n|ON|[oO]ff|OFF"
    r"|[-+]?0[0-9_]+"  # 0755: octal in 1.1, decimal in 1.2
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"  # 1:20 is 80 in 1.1 (sexagesimal)
    # 1_000. Possessive: a plain `[0-9_]*_[0-9_]*` backtracks quadratically on a long run of underscores.
    r"|[-+]?[0-9](?=[0-9]*+_)[0-9_]*+(?:\.[0-9_]*+)?"
    r"|[-+]?0b[01_]+)$"
)


# Integers beyond 64 bits mean nothing in a policy, and Python refuses to convert (or format) integers of more
# than 4300 digits: bound them before converting.
MAX_INT = 2**63 - 1
_MAX_DIGITS = {10: 19, 16: 16, 8: 21}


@dataclass(frozen=True, slots=True)
class YamlLimits:
    max_file_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 250_000
    max_aliases: int = 100
    max_alias_expansion: int = 10_000
    max_documents: int = 10_000


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One YAML document as plain JSON data, with the line of each JSON pointer inside it."""

    data: Any
    line: int
    index: int
    lines: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def line_of(self, pointer: str) -> int:
        """The line of pointer, or of its nearest ancestor that has one."""
        while True:
            found = self.lines.get(pointer)
            if found is not None:
                return found
            if not pointer:
                return self.line
            pointer = pointer.rsplit("/", 1)[0]


class _Reject(OnexdError):
    """Internal: stops the event walk at the first refused construct (turned into a Problem below)."""

    def __init__(self, code: str, line: int | None, path: str, message: str) -> None:
        super().__init__(message)
        self.code, self.line, self.path, self.message = code, line, path, message


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    pointer: str
    anchor: str | None
    nodes_at_start: int
    key: str | None = None
    key_line: int = 0
    key_set: set[str] = field(default_factory=set)


class _Composer:
    """Builds JSON values from parser events for one document at a time, enforcing the limits."""

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.nodes = 0
        self.aliases = 0
        self.alias_expansion = 0

    def compose(self, events: Iterator[Any], start_line: int) -> tuple[Any, dict[str, int]]:
        anchors: dict[str, tuple[Any, int]] = {}
        lines: dict[str, int] = {}
        stack: list[_Frame] = []
        root: Any = None
        while True:
            ev = next(events)
            line = ev.start_mark.line + 1
            if isinstance(ev, yaml.DocumentEndEvent):
                return root, lines
            if isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    anchors[frame.anchor] = (frame.container, self.nodes - frame.nodes_at_start + 1)
                continue
            parent = stack[-1] if stack else None
            # A scalar in key position of a mapping is a key, not a value.
            if parent is not None and isinstance(parent.container, dict) and parent.key is None:
                self._take_key(ev, parent, line)
                continue
            pointer = self._child_pointer(parent)
            lines.setdefault(pointer, parent.key_line if parent and isinstance(parent.container, dict)
                             else line)
            value: Any
            if isinstance(ev, yaml.AliasEvent):
                value = self._alias(ev, anchors, pointer, line)
            elif isinstance(ev, yaml.ScalarEvent):
                self._count(pointer, line)
                value = _resolve_scalar(ev, pointer, line)
                if ev.anchor is not None:
                    anchors[ev.anchor] = (value, 1)
            elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                self._count(pointer, line)
                _check_collection_tag(ev, pointer, line)
                if len(stack) >= self.limits.max_depth:
                    raise _Reject("limits/too-deep", line, pointer,
                                  f"nesting deeper than {self.limits.max_depth} levels")
                value = [] if isinstance(ev, yaml.SequenceStartEvent) else {}
                self._attach(parent, value)
                stack.append(_Frame(value, pointer, ev.anchor, self.nodes))
                if parent is None:
                    root = value
                continue
            else:  # pragma: no cover - the parser emits nothing else inside a document
                raise _Reject("yaml/syntax", line, pointer, f"unexpected YAML event {type(ev).__name__}")
            self._attach(parent, value)
            if parent is None:
                root = value

    def _take_key(self, ev: Any, frame: _Frame, line: int) -> None:
        where = frame.pointer
        if not isinstance(ev, yaml.ScalarEvent):
            raise _Reject("yaml/complex-key", line, where, "mapping keys must be plain strings")
        self._count(where, line)
        key = _resolve_scalar(ev, where, line)
        if ev.value == "<<" and ev.style in (None, ""):
            raise _Reject("yaml/merge-key", line, where, "YAML merge keys (<<) are not allowed")
        if not isinstance(key, str):
            raise _Reject("yaml/complex-key", line, where,
                          f"mapping key {ev.value!r} is not a string; quote it")
        if key in frame.key_set:
            raise _Reject("yaml/duplicate-key", line, f"{where}/{escape_pointer(key)}",
                          f"duplicate key {key!r}")
        frame.key_set.add(key)
        frame.key, frame.key_line = key, line

    @staticmethod
    def _child_pointer(parent: _Frame | None) -> str:
        if parent is None:
            return ""
        if isinstance(parent.container, dict):
            return f"{parent.pointer}/{escape_pointer(parent.key or '')}"
        return f"{parent.pointer}/{len(parent.container)}"

    @staticmethod
    def _attach(parent: _Frame | None, value: Any) -> None:
        if parent is None:
            return
        if isinstance(parent.container, dict):
            assert parent.key is not None
            parent.container[parent.key] = value
            parent.key = None
        else:
            parent.container.append(value)

    def _count(self, pointer: str, line: int) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise _Reject("limits/too-many-nodes", line, pointer,
                          f"more than {self.limits.max_nodes} YAML nodes in one file")

    def _alias(self, ev: Any, anchors: dict[str, tuple[Any, int]], pointer: str, line: int) -> Any:
        self.aliases += 1
        if self.aliases > self.limits.max_aliases:
            raise _Reject("limits/too-many-aliases", line, pointer,
                          f"more than {self.limits.max_aliases} aliases in one file")
        if ev.anchor not in anchors:
            raise _Reject("yaml/syntax", line, pointer, f"alias *{ev.anchor} refers to no (complete) anchor")
        value, size = anchors[ev.anchor]
        # An alias counts as the nodes it stands for, so nested aliases multiply as they would expand.
        self.alias_expansion += size
        self.nodes += size
        if self.alias_expansion > self.limits.max_alias_expansion:
            raise _Reject("limits/too-many-aliases", line, pointer,
                          f"aliases expand to more than {self.limits.max_alias_expansion} nodes")
        # Shared, never mutated: downstream code treats documents as read-only.
        return value


def _check_collection_tag(ev: Any, pointer: str, line: int) -> None:
    if ev.tag is not None and ev.tag != "!" and ev.tag not in _ALLOWED_COLLECTION_TAGS:
        raise _Reject("yaml/forbidden-tag", line, pointer, f"YAML tag {ev.tag!r} is not allowed")


def _resolve_scalar(ev: Any, pointer: str, line: int) -> Any:
    tag, text = ev.tag, ev.value
    if tag is not None and tag != "!":
        if tag not in _ALLOWED_SCALAR_TAGS:
            raise _Reject("yaml/forbidden-tag", line, pointer, f"YAML tag {tag!r} is not allowed")
        if tag == f"{_STD}str":
            return text
        resolved = _resolve_plain(text, pointer, line)
        if tag.removeprefix(_STD) != _type_tag(resolved):
            raise _Reject("schema/wrong-type", line, pointer, f"the value is not a valid {tag}")
        return resolved
    # Plain style is None in the Python parser and "" in the C one; quoted and block scalars are strings.
    if ev.style not in (None, "") or tag == "!":
        return text
    return _resolve_plain(text, pointer, line)


def _type_tag(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")


def _resolve_plain(text: str, pointer: str, line: int) -> Any:
    # Messages never echo the scalar: a rejected value may be a secret (a password that looks like 0755).
    if _AMBIGUOUS.match(text):
        raise _Reject("yaml/ambiguous-scalar", line, pointer,
                      "the value reads differently in YAML 1.1 and 1.2; quote it (or write true/false)")
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() == "true"
    if _INT.match(text):
        return _bounded_int(text.lstrip("+-"), 10, text.startswith("-"), pointer, line)
    if _HEX.match(text):
        return _bounded_int(text[2:], 16, False, pointer, line)
    if _OCT.match(text):
        return _bounded_int(text[2:], 8, False, pointer, line)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        value = float(text)
        if math.isfinite(value):
            return value
    if _SPECIAL_FLOAT.match(text):
        raise _Reject("yaml/invalid-number", line, pointer, "infinite or NaN numbers have no JSON representation")
    return text


def _bounded_int(digits: str, base: int, negative: bool, pointer: str, line: int) -> int:
    """int(digits, base), refusing magnitudes of 2^63 or more before converting."""
    significant = digits.lstrip("0") or "0"
    value = int(significant, base) if len(significant) <= _MAX_DIGITS[base] else MAX_INT + 1
    if value > MAX_INT:
        raise _Reject("yaml/invalid-number", line, pointer, "integer out of range (at most 2^63-1 in magnitude)")
    return -value if negative else value


def load_documents(raw: bytes, file: str, limits: YamlLimits | None = None
                   ) -> tuple[list[YamlDocument], list[Problem]]:
    """Parse every document of a YAML file under limits. Never raises for bad input."""
    limits = limits or YamlLimits()
    if len(raw) > limits.max_file_bytes:
        return [], [problem(file, None, "", "limits/file-too-large",
                            f"file is {len(raw)} bytes; the limit is {limits.max_file_bytes}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [problem(file, None, "", "yaml/encoding", f"not UTF-8 at byte {exc.start}")]
    docs: list[YamlDocument] = []
    composer = _Composer(limits)
    # yaml.parse is a generator; closing it disposes of the parser even when we stop early.
    events = cast(Generator[Any, None, None], yaml.parse(text, Loader=_Loader))
    line: int | None = None
    try:
        for ev in events:
            line = ev.start_mark.line + 1
            if isinstance(ev, yaml.DocumentStartEvent):
                if len(docs) >= limits.max_documents:
                    raise _Reject("limits/too-many-nodes", line, "",
                                  f"more than {limits.max_documents} documents in one file")
                data, lines = composer.compose(events, line)
                docs.append(YamlDocument(data=data, line=line, index=len(docs),
                                         lines=MappingProxyType(lines)))
    except _Reject as rej:
        return docs, [problem(file, rej.line, rej.path, rej.code, rej.message)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = mark.line + 1 if mark is not None else line
        detail = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "nesting depth" in detail:  # libyaml's own depth guard, which may trip before ours
            return docs, [problem(file, where, "", "limits/too-deep", f"nesting too deep ({detail})")]
        return docs, [problem(file, where, "", "yaml/syntax", f"YAML syntax error: {detail}")]
    except RecursionError:  # defence in depth: nothing above recurses, but never crash on input
        return docs, [problem(file, line, "", "limits/too-deep", "nesting too deep")]
    finally:
        events.close()
    return docs, []


def dump_yaml(data: Any) -> str:
    """Plain YAML for human-facing output (onexctl -o yaml)."""
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))
