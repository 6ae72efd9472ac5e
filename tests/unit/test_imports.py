"""The package's import graph has no circle, imports for type checking included: the cogs name
``AnimateBot`` in their types, so nothing ``bot.bot`` imports may import a cog or ``bot.bot``."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "cogs")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules}


def _graph() -> dict[str, set[str]]:
    files = {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }
    names = set(files)
    graph = {name: _imports(ast.parse(path.read_text()), names) for name, path in files.items()}
    # Importing a.b runs a/__init__ first.
    for edges in graph.values():
        for name in list(edges):
            parts = name.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts)) if
                         ".".join(parts[:i]) in graph)
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            if target != name and not (name.startswith(f"{target}.")):
                found = walk(target, [*path, name])
                if found:
                    return found
        done.add(name)
        return None

    for start in sorted(graph):
        found = walk(start, [])
        if found:
            return found
    return None


def test_no_import_circle_in_bot_and_cogs():
    assert _circle(_graph()) is None


def test_the_circle_finder_sees_a_circle():
    graph = {"bot.bot": {"cogs.utils.delivery"}, "cogs.utils.delivery": {"cogs.animate"},
             "cogs.animate": {"bot.bot"}}
    assert _circle(graph) == ["bot.bot", "cogs.utils.delivery", "cogs.animate", "bot.bot"]


def _direct_imports() -> dict[str, set[str]]:
    """What each module names in its own import statements (no package __init__ added)."""
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    names = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(ast.parse(path.read_text()), names) for path in paths}


def test_layers_point_one_way_even_from_the_composition_roots():
    """ruff's TID251 (bot/ruff.toml, bot/storage/ruff.toml) bans these imports but exempts the
    composition roots, which may import discord (bot.bot, bot.__main__) or the ledger
    (bot.storage.__main__): none of them may reach up into cogs/ either."""
    imports = _direct_imports()
    up_into_cogs = {name: sorted(target for target in targets if target.startswith("cogs"))
                    for name, targets in imports.items() if name.startswith("bot")}
    assert {name: found for name, found in up_into_cogs.items() if found} == {}
    storage_up = {
        name: sorted(t for t in targets if t.startswith(("bot.ledger", "bot.jobs")))
        for name, targets in imports.items()
        if name.startswith("bot.storage") and name != "bot.storage.__main__"
    }
    assert {name: found for name, found in storage_up.items() if found} == {}


def test_tests_share_helpers_through_helper_modules_not_other_test_files():
    """A helper two test files need lives in a helpers module (``tests/helpers.py``,
    ``tests/postgres.py``, ``tests/e2e/world.py``...) or a conftest fixture: a test file, or a
    conftest, imported by another runs its module twice under some pytest import modes and ties
    a file's tests to another's private details."""
    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [])
            for name in names:
                last = name.rsplit(".", 1)[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    found.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert found == {}
