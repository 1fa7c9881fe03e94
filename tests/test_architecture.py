"""The code's shape, as the README's code map draws it: layers that import only downwards, and
functions and classes small enough to read in one sitting.

Both checks read the source with ``ast`` (nothing is imported), so they hold for imports made
inside functions and under ``TYPE_CHECKING`` too: a type-only import is still a dependency a
reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imagesync"

# Top to bottom, as the README's code map lists them: a unit may import its own layer's
# siblings only where listed as one unit, and anything below it, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("run",),
    ("render",),
    ("apply", "keyring"),
    ("plan",),
    ("images",),
    ("stores",),
    ("content", "signing"),
    ("schemas", "diagnostics", "yamlsyntax", "outputs"),
    ("reference", "inputfile", "retry", "logs", "defaults"),
    ("redact", "words"),
    ("errors", "printable", "__init__"),
)
# Units of one layer that may import each other, one way: (importer, imported).
SIDEWAYS = {("signing", "content"), ("keyring", "apply")}

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
# Each longer one, and why it stays whole.
ALLOWED_LONG: dict[str, str] = {}


def _layer_of(unit: str) -> int:
    for depth, units in enumerate(LAYERS):
        if unit in units:
            return depth
    raise AssertionError(f"imagesync/{unit} is in no layer of tests/test_architecture.py")


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts)
        found.append((name, path, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def _imported(module: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[: -node.level]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        if target == "imagesync":
            # ``from imagesync import __version__`` names the package itself, not a module.
            return [
                f"imagesync.{alias.name}" if _is_module(alias.name) else "imagesync.__init__"
                for alias in node.names
            ]
        return [target]
    return []


def test_layers_import_only_downwards() -> None:
    upward = []
    for module, path, tree in _modules():
        unit = _unit(module)
        for node in ast.walk(tree):
            for target in _imported(module, node):
                if not target.startswith("imagesync.") or _unit(target) == unit:
                    continue
                imported = _unit(target)
                if (unit, imported) in SIDEWAYS:
                    continue
                if _layer_of(imported) <= _layer_of(unit):
                    upward.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {target}")
    assert not upward, "imports of a higher or the same layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    names = {module for module, _, _ in _modules()}
    for module, _, tree in _modules():
        graph[module] = set()
        for node in ast.walk(tree):
            for target in _imported(module, node):
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target != module and target != "imagesync":
                    graph[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycle = stack[stack.index(imported) :]
                pytest.fail("import cycle: " + " -> ".join([*cycle, imported]))
            if imported not in state:
                visit(imported)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_functions_and_classes_are_small() -> None:
    offenders = []
    for module, path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_FUNCTION_LINES
            elif isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            name = f"{module}.{node.name}"
            if lines > limit and name not in ALLOWED_LONG:
                offenders.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}: {lines}"
                )
    assert not offenders, (
        f"over {MAX_FUNCTION_LINES} (function) or {MAX_CLASS_LINES} (class) lines:\n"
        + "\n".join(offenders)
    )
