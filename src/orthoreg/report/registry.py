"""The report's outputs, each registered once: a table or figure family is its builder, a one-line
description (index.md, README, the Snakemake report's captions) and the reason it is absent when its
data do not exist. `build_report`, the stale-file cleanup, the workflow's report captions and the
README's table list all read these registries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from orthoreg.report.collect import RunData
from orthoreg.report.writers import Table


@dataclass
class TableBody:
    """What a table builder computes: the caption (which may state n and subset sizes), the long
    machine-readable frame, the formatted display grid and its bold mask."""

    caption: str
    data: pd.DataFrame
    display: pd.DataFrame
    bold: pd.DataFrame | None = None


@dataclass
class Drawn:
    """One drawn figure of a family: its file name, what it shows, the figure."""

    name: str
    description: str
    figure: Figure


TableBuilder = Callable[[RunData, Mapping[str, Table]], "TableBody | None"]
FigureBuilder = Callable[[RunData, Mapping[str, Table]], list[Drawn]]


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    skip: str
    build: TableBuilder


@dataclass(frozen=True)
class FigureSpec:
    """A figure family: `stem` alone, or `stem_<dataset>_<model>` per (dataset, model) pair."""

    stem: str
    description: str
    skip: str
    build: FigureBuilder
    per_pair: bool

    @property
    def pattern(self) -> str:
        return f"{self.stem}_*" if self.per_pair else self.stem

    def owns(self, name: str) -> bool:
        return name.startswith(f"{self.stem}_") if self.per_pair else name == self.stem


TABLES: dict[str, TableSpec] = {}
FIGURES: dict[str, FigureSpec] = {}


def register_table(name: str, description: str, *, skip: str) -> Callable[[TableBuilder], TableBuilder]:
    """Register `build(data, tables_built_so_far) -> TableBody | None` (None: no data, see `skip`)."""

    def decorate(build: TableBuilder) -> TableBuilder:
        TABLES[name] = TableSpec(name, description, skip, build)
        return build

    return decorate


def register_figure(
    stem: str, description: str, *, skip: str, per_pair: bool = False
) -> Callable[[FigureBuilder], FigureBuilder]:
    """Register `build(data, tables) -> list[Drawn]` (empty: no data, see `skip`)."""

    def decorate(build: FigureBuilder) -> FigureBuilder:
        FIGURES[stem] = FigureSpec(stem, description, skip, build, per_pair)
        return build

    return decorate


def build_tables(data: RunData) -> tuple[list[Table], list[dict[str, str]]]:
    """Every registered table that has data, in registration order, and the skipped ones with why."""
    built: dict[str, Table] = {}
    skipped = []
    for spec in TABLES.values():
        body = spec.build(data, built)
        if body is None:
            skipped.append({"name": spec.name, "kind": "table", "reason": spec.skip})
        else:
            built[spec.name] = Table(
                spec.name, spec.description, body.caption, body.data, body.display, body.bold
            )
    return list(built.values()), skipped


def draw_figures(data: RunData, tables: Mapping[str, Table]) -> tuple[list[Drawn], list[dict[str, str]]]:
    """Every registered figure family's figures, and the families with nothing to draw with why."""
    drawn, skipped = [], []
    for spec in FIGURES.values():
        made = spec.build(data, tables)
        if made:
            drawn += made
        else:
            skipped.append({"name": spec.pattern, "kind": "figure", "reason": spec.skip})
    return drawn, skipped


def owner_of(name: str) -> FigureSpec | None:
    """The figure family a file stem belongs to (longest stem first, so `claims_x` is not `claim`'s)."""
    for spec in sorted(FIGURES.values(), key=lambda spec: -len(spec.stem)):
        if spec.owns(name):
            return spec
    return None


def figure_captions() -> dict[str, str]:
    """Stem -> description, for the Snakemake report's per-figure captions."""
    return {spec.stem: spec.description for spec in FIGURES.values()}


def table_captions() -> dict[str, str]:
    return {spec.name: spec.description for spec in TABLES.values()}
