"""The floor plan holds: layers only point down, no import circles, no private names shared.

The package's imports are read with ``ast`` (nothing is imported), every import counts: at
module level, inside functions and under ``TYPE_CHECKING`` alike, since each is a dependency
a reader has to follow. The layer order is written once, here, and drawn in
``docs/architecture.md``; a test below keeps the two in step.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "langchain_image_embeddings"
ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / PACKAGE
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"

#: Bottom to top. A module may import from its own layer and the layers below it, never above.
#: Each entry is a module or a package (which holds all its submodules).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "ground floor",
        ("errors", "_version", "_atomic", "_optional", "_locks", "_exports", "devices"),
    ),
    ("images", ("images",)),
    ("encoders", ("encoders",)),
    ("pipeline", ("pipeline",)),
    ("embeddings", ("embeddings", "document_embeddings", "document_loaders", "documents")),
    ("vectorstores", ("vectorstores",)),
    (
        "helpers",
        ("retrievers", "messages", "tools", "sync", "duplicates", "samples", "scale", "rerankers"),
    ),
    ("evaluation", ("evaluation",)),
    ("training", ("training",)),
    ("serve", ("serve",)),
    ("cli", ("cli",)),
]
#: The package's own ``__init__``: the lazy public face, above every layer.
FACE = PACKAGE


@dataclass(frozen=True)
class Import:
    """One ``from X import a`` (or ``import X``) in a module of the package."""

    importer: str
    imported: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    yield Import(name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith(PACKAGE):
                continue
            plain: list[str] = []
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:  # `from pkg import module`: an edge to the module
                    yield Import(name, submodule, (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain:
                yield Import(name, source, tuple(plain), node.lineno)


@functools.cache  # the package is read once per session: four checks walk the same imports
def all_imports() -> tuple[Import, ...]:
    modules = package_modules()
    return tuple(i for name, path in modules.items() for i in imports_of(name, path, modules))


def layer_of(module: str) -> int:
    if module == FACE:
        return len(LAYERS)
    relative = module.removeprefix(PACKAGE + ".")
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if relative == member or relative.startswith(member + "."):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)")


def test_every_module_has_a_layer() -> None:
    for module in package_modules():
        layer_of(module)


def test_imports_only_point_down() -> None:
    upward = [
        f"{i.importer} (layer {LAYERS[layer_of(i.importer)][0]!r}) imports {i.imported} "
        f"(layer {LAYERS[layer_of(i.imported)][0]!r}) at line {i.line}"
        for i in all_imports()
        if i.imported != FACE and layer_of(i.imported) > layer_of(i.importer)
    ]
    assert not upward, "imports that run back up a layer:\n" + "\n".join(upward)


def test_nothing_imports_the_public_face() -> None:
    """The package ``__init__`` is for users; inside, code imports the defining module."""
    found = [f"{i.importer}:{i.line}" for i in all_imports() if i.imported == FACE]
    assert not found, found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the import circles (components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {}
    for i in all_imports():
        if i.imported != i.importer:
            graph.setdefault(i.importer, set()).add(i.imported)
    circles = strongly_connected(graph)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_strongly_connected_finds_a_circle() -> None:
    """The circle finder itself: a three-module ring is found, a chain is not."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": {"c"}}) == []


def test_no_private_name_is_imported_across_modules() -> None:
    found = [
        f"{i.importer}:{i.line} takes {name} from {i.imported}"
        for i in all_imports()
        for name in i.names
        if name.startswith("_") and not name.startswith("__") and i.imported != i.importer
    ]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def is_public(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split(".")[1:])


def test_every_public_module_declares_all() -> None:
    missing = []
    for module, path in package_modules().items():
        if not is_public(module):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declared = any(
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and any(
                isinstance(t, ast.Name) and t.id == "__all__"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
            for node in tree.body
        )
        if not declared:
            missing.append(module)
    assert not missing, f"public modules without __all__: {missing}"


def test_no_module_keeps_a_prefix_family() -> None:
    """Three sibling modules sharing a prefix (``faiss_*``) are a package waiting to be made."""
    families: list[str] = []
    for folder in [PACKAGE_DIR, *(p for p in PACKAGE_DIR.rglob("*") if p.is_dir())]:
        stems = [p.stem.lstrip("_") for p in folder.glob("*.py") if p.stem != "__init__"]
        prefixes: dict[str, int] = {}
        for stem in stems:
            if "_" in stem:
                prefixes[stem.split("_")[0]] = prefixes.get(stem.split("_")[0], 0) + 1
        families += [f"{folder.name}/{p}_*" for p, n in prefixes.items() if n >= 3]
    assert not families, families


def test_the_layer_order_is_the_documented_one() -> None:
    """``docs/architecture.md`` lists the same layers, top to bottom, in its layer table."""
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([^|]+?) \|", text, flags=re.MULTILINE)
    documented = [(int(number), name.strip()) for number, name in rows]
    expected = [(index, name) for index, (name, _) in reversed(list(enumerate(LAYERS)))]
    assert documented == expected


@pytest.mark.parametrize(
    ("source", "broken"),
    [
        ("from langchain_image_embeddings.cli.common import add_model_options\n", "upward"),
        ("from langchain_image_embeddings.images._load import _load\n", "private"),
    ],
)
def test_the_checks_catch_a_bad_import(tmp_path: Path, source: str, broken: str) -> None:
    """A module of a low layer that breaks a rule is reported (the checks can fail)."""
    fake = tmp_path / "errors.py"
    fake.write_text(source, encoding="utf-8")
    name = f"{PACKAGE}.errors"
    (found,) = list(imports_of(name, fake, package_modules()))
    if broken == "upward":
        assert layer_of(found.imported) > layer_of(found.importer)
    else:
        assert any(n.startswith("_") for n in found.names) and found.imported != name
