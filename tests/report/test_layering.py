"""The report reads in layers: the analysis below draws and formats nothing, the tables and the figures
above it never import each other, and no function is longer than a screen."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "orthoreg" / "report"
DRAWING = ("matplotlib", "seaborn")
LONGEST_FUNCTION = 50


def imports(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def files(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def reaches(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in imports(path) if name.split(".")[0] in prefixes or name.startswith(prefixes)
    )


@pytest.mark.parametrize("path", files("analysis"), ids=lambda path: path.name)
def test_the_analysis_layer_draws_and_formats_nothing(path):
    above = (
        "orthoreg.report.tables",
        "orthoreg.report.figures",
        "orthoreg.report.registry",
        "orthoreg.report.writers",
    )
    assert not reaches(path, DRAWING + above)


@pytest.mark.parametrize("path", files("tables"), ids=lambda path: path.name)
def test_tables_never_import_figures(path):
    assert not reaches(path, DRAWING + ("orthoreg.report.figures",))


@pytest.mark.parametrize("path", files("figures"), ids=lambda path: path.name)
def test_figures_never_import_tables(path):
    assert not reaches(path, ("orthoreg.report.tables",))


def test_the_import_check_sees_imports():
    assert reaches(PACKAGE / "figures" / "style.py", DRAWING) == [
        "matplotlib.figure",
        "matplotlib.figure.Figure",
        "matplotlib.patches",
        "matplotlib.patches.Patch",
        "seaborn",
    ]


def test_no_function_of_the_report_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines} lines)")
    assert not long


def test_the_findings_read_the_written_tables_only():
    assert not reaches(
        PACKAGE / "findings.py", DRAWING + ("orthoreg.report.tables", "orthoreg.report.figures")
    )
