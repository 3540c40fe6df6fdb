"""The report's outputs, each registered once on the project's registry type: a table or figure family
is its builder, a one-line description (index.md, the README, the Snakemake report's captions), its
caption (a template the builder's facts fill: n, image counts, the pair drawn) and the reason it is
absent when its data do not exist. `build_report`, the stale-file cleanup, the workflow's report
captions and the README's table list all read these registries.

A builder takes the collected runs (`RunData`) and nothing else: tables and figures compute what they
show from the analysis layer, never from each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd
from matplotlib.figure import Figure

from orthoreg.registry import Registry
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.writers import Table


@dataclass
class TableBody:
    """What a table builder computes: the long machine-readable frame, the formatted display grid and
    its bold mask, and the facts its registered caption states."""

    data: pd.DataFrame
    display: pd.DataFrame
    bold: pd.DataFrame | None = None
    facts: Mapping[str, object] = field(default_factory=dict)


@dataclass
class Drawn:
    """One drawn figure of a family: its file name, the figure, the facts its registered caption
    states, and that caption once filled (by draw_figures)."""

    name: str
    figure: Figure
    facts: Mapping[str, object] = field(default_factory=dict)
    caption: str = ""


TableBuilder = Callable[[RunData], "TableBody | None"]
FigureBuilder = Callable[[RunData], list[Drawn]]


def _fill(template: str, facts: Mapping[str, object], what: str) -> str:
    try:
        return template.format(**facts)
    except KeyError as error:
        raise ValueError(f"the caption of {what} needs {error}; its builder gave {sorted(facts)}") from error


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    caption: str
    skip: str
    build: TableBuilder


@dataclass(frozen=True)
class FigureSpec:
    """A figure family: `stem` alone, or `stem_<dataset>_<model>` per (dataset, model) pair."""

    stem: str
    description: str
    caption: str
    skip: str
    build: FigureBuilder
    per_pair: bool

    @property
    def pattern(self) -> str:
        return f"{self.stem}_*" if self.per_pair else self.stem

    def owns(self, name: str) -> bool:
        return name.startswith(f"{self.stem}_") if self.per_pair else name == self.stem


TABLES: Registry[TableSpec] = Registry("report table")
FIGURES: Registry[FigureSpec] = Registry("report figure")


def register_table(
    name: str, description: str, *, caption: str, skip: str
) -> Callable[[TableBuilder], TableBuilder]:
    """Register `build(data) -> TableBody | None` (None: no data, see `skip`); `caption` is a
    str.format template of the facts the builder returns."""

    def decorate(build: TableBuilder) -> TableBuilder:
        TABLES.register(name, TableSpec(name, description, caption, skip, build), description)
        return build

    return decorate


def register_figure(
    stem: str, description: str, *, skip: str, caption: str | None = None, per_pair: bool = False
) -> Callable[[FigureBuilder], FigureBuilder]:
    """Register `build(data) -> list[Drawn]` (empty: no data, see `skip`); `caption` (the description
    when left out) is each drawn figure's line in index.md, a template of its facts, which hold
    `dataset` and `model` for a per-pair family."""

    def decorate(build: FigureBuilder) -> FigureBuilder:
        spec = FigureSpec(stem, description, caption or description, skip, build, per_pair)
        FIGURES.register(stem, spec, description)
        return build

    return decorate


def build_tables(data: RunData) -> tuple[list[Table], list[dict[str, str]]]:
    """Every registered table that has data, in registration order, and the skipped ones with why."""
    built, skipped = [], []
    for spec in TABLES.in_order():
        body = spec.build(data)
        if body is None:
            skipped.append({"name": spec.name, "kind": "table", "reason": spec.skip})
            continue
        caption = _fill(spec.caption, body.facts, f"table {spec.name!r}")
        built.append(Table(spec.name, spec.description, caption, body.data, body.display, body.bold))
    return built, skipped


def draw_figures(data: RunData) -> tuple[list[Drawn], list[dict[str, str]]]:
    """Every registered figure family's figures, and the families with nothing to draw with why."""
    drawn, skipped = [], []
    for spec in FIGURES.in_order():
        made = spec.build(data)
        if not made:
            skipped.append({"name": spec.pattern, "kind": "figure", "reason": spec.skip})
        for item in made:
            drawn.append(replace(item, caption=_fill(spec.caption, item.facts, f"figure {item.name!r}")))
    return drawn, skipped


def owner_of(name: str) -> FigureSpec | None:
    """The figure family a file stem belongs to (longest stem first, so `claims_x` is not `claim`'s)."""
    for spec in sorted(FIGURES.in_order(), key=lambda spec: -len(spec.stem)):
        if spec.owns(name):
            return spec
    return None


def figure_captions() -> dict[str, str]:
    """Stem -> description, for the Snakemake report's per-figure captions."""
    return FIGURES.describe()


def table_captions() -> dict[str, str]:
    return TABLES.describe()
