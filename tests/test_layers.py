"""The import graph: no circles, and no import from a lower layer to a higher one (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import onexd

PACKAGE = Path(onexd.__file__).parent

# Lowest first. A module may import its own layer (without circles) and any layer below, never one above.
# A module's layer is that of its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("onexd", "onexd.errors", "onexd.fields", "onexd.timestamps", "onexd.fsutil", "onexd.addresses", "onexd.logs",
     "onexd.spec", "onexd.metrics", "onexd.systemd", "onexd.zoneproxy"),
    ("onexd.config", "onexd.crypto"),
    ("onexd.policy",),
    ("onexd.configfile", "onexd.keys", "onexd.secrets", "onexd.runtime"),
    ("onexd.identity",),
    ("onexd.engine", "onexd.runtime.k8s_manifests", "onexd.runtime.k8s_client", "onexd.runtime.k8s_proxies",
     "onexd.runtime.kubernetes"),
    ("onexd.audit",),
    ("onexd.jobs", "onexd.runtime.k8s_render"),
    ("onexd.api", "onexd.scheduler"),
    ("onexd.composition", "onexd.daemon", "onexd.docgen"),
    ("onexd.cli",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the onexd modules it imports (anywhere in the file: top level, functions, TYPE_CHECKING)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def layer_of(module: str) -> int:
    best, level = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    return level


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in LAYERS (and docs/architecture.md) before it can be imported."""
    assert [m for m in import_graph() if layer_of(m) < 0] == []


def test_the_import_graph_has_no_circles() -> None:
    """No module reaches itself through its imports."""
    assert find_cycle(import_graph()) is None


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    """Imports only point down (or within a layer)."""
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in import_graph().items() for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert upward == []


def test_the_cycle_finder_finds_a_circle() -> None:
    """The checker itself: a two-module circle is reported, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layers_are_documented() -> None:
    """docs/architecture.md names every layer's modules in the same order as LAYERS."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    positions = [text.index(f"`{prefixes[0]}`") for prefixes in LAYERS[1:]]
    assert positions == sorted(positions)
