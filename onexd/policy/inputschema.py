"""What a node's inputSchema may use beyond being a valid 2020-12 schema, checked at load (pure functions).

A schema that passes here cannot break submit or explain: every `$ref` is a JSON pointer into the schema itself
that resolves, no chain of references and in-place applicators (allOf, anyOf, oneOf, not, if/then/else,
dependentSchemas) returns to where it started without descending into the instance (`$ref: "#"` at the
root would recurse forever), and every `pattern` and `patternProperties` key compiles under RE2 (linear time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from onexd.policy.regex import why_refused

# Keywords whose subschemas apply to the same instance (no descent into a property or an item).
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas",)
# Keywords whose subschemas apply to parts of the instance.
_DESCEND_ONE = ("items", "contains", "additionalProperties", "propertyNames", "unevaluatedItems",
                "unevaluatedProperties")
_DESCEND_MANY = ("prefixItems",)
_DESCEND_MAP = ("properties", "patternProperties", "$defs", "definitions")
_REFUSED = ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor")
MAX_NODES = 10_000


def problems(schema: Any) -> list[str]:
    """Why schema cannot be used as an inputSchema (empty when it can)."""
    found: list[str] = []
    nodes = dict(_subschemas(schema, ""))
    if len(nodes) > MAX_NODES:
        return [f"inputSchema has more than {MAX_NODES} subschemas"]
    uses_unevaluated = uses_pattern_properties = False
    for where, node in nodes.items():
        if not isinstance(node, dict):
            continue
        for key in _REFUSED:
            if key in node and not (key == "$id" and where == ""):
                found.append(f"{where or '/'}: `{key}` is not supported in an inputSchema (`$ref` to `#/$defs/...`)")
        ref = node.get("$ref")
        if isinstance(ref, str) and _resolve(schema, ref) is None:
            found.append(f"{where or '/'}: $ref {ref[:100]!r} does not resolve inside the schema")
        pattern = node.get("pattern")
        if isinstance(pattern, str) and (why := why_refused(pattern)) is not None:
            found.append(f"{where}/pattern: {why}")
        if isinstance(node.get("patternProperties"), dict):
            uses_pattern_properties = True
            for key in node["patternProperties"]:
                if (why := why_refused(key)) is not None:
                    found.append(f"{where}/patternProperties: {why}")
        uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
    if uses_unevaluated and uses_pattern_properties:
        found.append("unevaluatedProperties together with patternProperties is not supported in an inputSchema")
    if not found and (cycle := _in_place_cycle(schema, nodes)) is not None:
        found.append(f"{cycle or '/'}: $ref loops back without descending into the input (endless recursion)")
    return found


def _subschemas(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every subschema with its JSON pointer, the root first."""
    stack = [(where, node)]
    count = 0
    while stack:
        at, item = stack.pop()
        yield at, item
        count += 1
        if count > MAX_NODES or not isinstance(item, dict):
            continue
        for key in (*_IN_PLACE_ONE, *_DESCEND_ONE):
            if key in item:
                stack.append((f"{at}/{key}", item[key]))
        for key in (*_IN_PLACE_MANY, *_DESCEND_MANY):
            if isinstance(item.get(key), list):
                stack.extend((f"{at}/{key}/{i}", sub) for i, sub in enumerate(item[key]))
        for key in (*_IN_PLACE_MAP, *_DESCEND_MAP):
            if isinstance(item.get(key), dict):
                stack.extend((f"{at}/{key}/{_escape(name)}", sub) for name, sub in item[key].items())


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _pointer_of(ref: str) -> str | None:
    """The JSON pointer of a local reference (`#` or `#/...`, percent-decoding not supported), else None."""
    if ref == "#":
        return ""
    if ref.startswith("#/") and "%" not in ref:
        return ref[1:]
    return None


def _resolve(schema: Any, ref: str) -> Any:
    pointer = _pointer_of(ref)
    if pointer is None:
        return None
    node = schema
    for part in pointer.split("/")[1:] if pointer else []:
        key = _unescape(part)
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node if isinstance(node, (dict, bool)) else None


def _in_place_edges(where: str, node: Any) -> list[str]:
    """Subschemas that apply to the same instance as node: in-place applicators and its `$ref`."""
    if not isinstance(node, dict):
        return []
    out = [f"{where}/{key}" for key in _IN_PLACE_ONE if key in node]
    for key in _IN_PLACE_MANY:
        if isinstance(node.get(key), list):
            out += [f"{where}/{key}/{i}" for i in range(len(node[key]))]
    for key in _IN_PLACE_MAP:
        if isinstance(node.get(key), dict):
            out += [f"{where}/{key}/{_escape(name)}" for name in node[key]]
    ref = node.get("$ref")
    if isinstance(ref, str) and (pointer := _pointer_of(ref)) is not None:
        out.append(pointer)
    return out


def _in_place_cycle(schema: Any, nodes: dict[str, Any]) -> str | None:
    """A location from which references and in-place applicators lead back to it, else None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(_in_place_edges(start, nodes.get(start))))]
        state[start] = 1
        while stack:
            at, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                state[at] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return nxt
            if not state.get(nxt):
                state[nxt] = 1
                target = nodes[nxt] if nxt in nodes else _resolve(schema, "#" + nxt)
                stack.append((nxt, iter(_in_place_edges(nxt, target))))
    return None
