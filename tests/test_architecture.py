"""docs/architecture.md stays the true map: its module picture has exactly the imports the code has."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "orthoreg"


def top_module(path: Path) -> str:
    """The first-level module or package of a file ('orthoreg' for the package's own __init__)."""
    first = path.relative_to(PACKAGE).with_suffix("").parts[0]
    return "orthoreg" if first == "__init__" else first


def is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """The first-level orthoreg modules a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "orthoreg":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found |= {alias.name for alias in node.names if is_module(alias.name)}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("orthoreg.")}
    return found


def code_edges() -> set[tuple[str, str]]:
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        source = top_module(path)
        edges |= {(source, target) for target in imported_modules(path) if target != source}
    return {edge for edge in edges if edge[0] != "__main__"}


def documented_edges() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    diagram = text[text.index("```mermaid") : text.index("```", text.index("```mermaid") + 3)]
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", diagram, re.MULTILINE))


def test_the_module_picture_is_the_import_graph():
    code, documented = code_edges(), documented_edges()
    assert code == documented, (
        f"in the code only: {sorted(code - documented)}; in the picture only: {sorted(documented - code)}"
    )


def test_every_module_has_a_row_in_the_table():
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = {top_module(path) for path in PACKAGE.rglob("*.py")} - {"__main__"}
    for module in modules:
        name = "`orthoreg`" if module == "orthoreg" else f"`orthoreg.{module}`"
        assert f"| {name}" in text, module
