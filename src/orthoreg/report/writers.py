"""Writers for tables (.csv, .md, .tex, .html) and figures (.pdf, .png), whose bytes depend on the
content alone, so the same records give the same files.

A table carries two views: `data`, the machine-readable long form written to CSV, and `display`, the
formatted grid a reader sees in Markdown and LaTeX, with `bold` marking the best cells.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from orthoreg.files import atomic_write, save_text

TABLE_SUFFIXES = (".csv", ".md", ".tex", ".html")
FIGURE_SUFFIXES = (".pdf", ".png")
PNG_DPI = 150
# nothing that changes from one call to the next: no creation date, no version strings
FIGURE_METADATA = {
    "pdf": {"Creator": "orthoreg report", "Producer": None, "CreationDate": None},
    "png": {"Software": None},
}


@dataclass
class Table:
    """One report table: a stable file name, a one-line description, a caption and its two views."""

    name: str
    description: str
    caption: str
    data: pd.DataFrame
    display: pd.DataFrame
    bold: pd.DataFrame | None = None


def _cells(table: Table) -> list[list[tuple[str, bool]]]:
    bold = table.bold
    if bold is None:
        bold = pd.DataFrame(False, index=table.display.index, columns=table.display.columns)
    return [
        [
            (str(table.display.iat[row, column]), bool(bold.iat[row, column]))
            for column in range(table.display.shape[1])
        ]
        for row in range(table.display.shape[0])
    ]


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with the caption above it; best cells in **bold**."""
    header = [str(column) for column in table.display.columns]
    lines = [
        f"**{table.name}**: {table.caption}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in _cells(table):
        cells = [f"**{text}**" if bold and text else text for text, bold in row]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    text = "".join(_LATEX_SPECIAL.get(char, char) for char in text)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("×", r"$\times$")


def to_latex(table: Table) -> str:
    """A booktabs table environment with caption and label tab:<name>; best cells in \\textbf."""
    columns = table.display.shape[1]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\begin{tabular}{" + "l" * columns + "}",
        r"\toprule",
        " & ".join(latex_escape(str(column)) for column in table.display.columns) + r" \\",
        r"\midrule",
    ]
    for row in _cells(table):
        cells = [
            rf"\textbf{{{latex_escape(text)}}}" if bold and text else latex_escape(text) for text, bold in row
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    """A standalone HTML page with the caption and the display grid (best cells bold), which the
    Snakemake report shows inline."""
    header = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.display.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{'<b>' if bold else ''}{html.escape(text)}{'</b>' if bold else ''}</td>"
            for text, bold in row
        )
        + "</tr>"
        for row in _cells(table)
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(table.name)}</title>'
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f2f2f2}</style></head>"
        f"<body><p><b>{html.escape(table.name)}</b>: {html.escape(table.caption)}</p>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    )


def write_table(table: Table, folder: Path) -> list[Path]:
    """Write <name>.csv, .md, .tex and .html atomically; return the paths."""
    folder = Path(folder)
    buffer = io.StringIO()
    table.data.to_csv(buffer, index=False, float_format="%.10g")
    texts = {
        ".csv": buffer.getvalue(),
        ".md": to_markdown(table),
        ".tex": to_latex(table),
        ".html": to_html(table),
    }
    paths = []
    for suffix, text in texts.items():
        path = folder / f"{table.name}{suffix}"
        save_text(text, path)
        paths.append(path)
    return paths


def save_figure(figure: Figure, folder: Path, name: str) -> list[Path]:
    """Save a matplotlib Figure as <name>.pdf and <name>.png atomically (no pyplot state involved),
    byte-identical for the same figure: the files carry no date and no version."""
    paths = []
    for suffix in FIGURE_SUFFIXES:
        path = Path(folder) / f"{name}{suffix}"
        fmt = suffix[1:]

        def render(temporary: Path, fmt: str = fmt) -> None:
            figure.savefig(
                temporary, format=fmt, dpi=PNG_DPI, bbox_inches="tight", metadata=FIGURE_METADATA[fmt]
            )

        atomic_write(path, render)
        paths.append(path)
    return paths
