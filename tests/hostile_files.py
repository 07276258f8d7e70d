"""Generators of hostile policy files, shared by the tests and bench/bench_hostile.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

MANIFEST = "apiVersion: onexd/v1\nkind: Bundle\nmetadata: {name: hostile}\nspec: {version: 1.0.0}\n"


def alias_bomb(path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")


def deep_flow(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")


def deep_block(path: Path) -> None:
    path.write_text("- " * 100_000 + "x\n")


def huge_file(path: Path) -> None:
    chunk = ("k: " + "x" * 1000 + "\n").encode()
    with path.open("wb") as f:
        for _ in range(50 * 1024 * 1024 // len(chunk) + 1):
            f.write(chunk)


def million_keys(path: Path) -> None:
    path.write_text("".join(f"k{i}: 1\n" for i in range(1_000_000)))


HOSTILE: dict[str, Callable[[Path], None]] = {
    "alias_bomb": alias_bomb,
    "deep_flow": deep_flow,
    "deep_block": deep_block,
    "huge_file": huge_file,
    "million_keys": million_keys,
}


def hostile_bundle(root: Path, name: str) -> Path:
    bundle = root / name
    bundle.mkdir(parents=True)
    (bundle / "bundle.yaml").write_text(MANIFEST)
    HOSTILE[name](bundle / "policy.yaml")
    return bundle
