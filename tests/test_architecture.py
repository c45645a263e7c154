"""The package's layout: four groups, core < pictures < course < tools, each importing only from its own group and
the ones before it, with no import cycle (function-level imports included; annotation-only imports are not)."""

import ast
from pathlib import Path

import pytest

import vae_lib

PACKAGE = Path(vae_lib.__file__).parent
GROUPS = ("core", "pictures", "course", "tools")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Return the vae_lib modules a file imports, leaving out imports under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vae_lib"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name for name in names if _is_module(name)} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vae_lib")}
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _group(module: str) -> int:
    parts = module.split(".")
    return GROUPS.index(parts[1]) if len(parts) > 1 and parts[1] in GROUPS else -1


def test_every_module_belongs_to_a_group() -> None:
    loose = [name for name in MODULES if _group(name) < 0 and name not in ("vae_lib", "vae_lib.__main__")]
    assert loose == []
    assert {name.split(".")[1] for name in MODULES if _group(name) >= 0} == set(GROUPS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_one_of_a_later_group(module: str) -> None:
    own = _group(module)
    allowed = own if own >= 0 else (0 if module == "vae_lib" else len(GROUPS))
    later = sorted(name for name in MODULES[module] if _group(name) > allowed)
    assert later == [], f"{module} imports {later}, of a later group than its own"


@pytest.mark.parametrize("module", sorted(name for name in MODULES if _group(name) >= 0))
def test_no_module_of_a_group_imports_the_top_level_package(module: str) -> None:
    # vae_lib/__init__.py imports from every group, so importing it from inside one closes a cycle that the cycle
    # test below, which leaves packages' __init__ files out, would not see.
    assert "vae_lib" not in MODULES[module], f"{module} imports vae_lib itself: import from the defining module"


def test_there_is_no_import_cycle() -> None:
    edges = {
        module: {name for name in imports if name in MODULES and name != module} for module, imports in MODULES.items()
    }
    for package in [name for name in MODULES if (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").exists()]:
        edges[package] = set()  # a subpackage's __init__ imports nothing; importing a submodule runs it first
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for name in sorted(edges[module]):
            assert state.get(name) != "open", "import cycle: " + " -> ".join([*path, module, name])
            if name not in state:
                visit(name, [*path, module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
