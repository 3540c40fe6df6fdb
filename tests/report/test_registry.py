"""One registry per kind of output, on the project's registry type: the README, the Snakemake report's
captions and the written files agree with it, a plug-in table or figure uses the same verbs, and a
caption states only facts its builder gives."""

import re
from pathlib import Path

import jinja2
import pandas as pd
import pytest
from fake_runs import make_run

from orthoreg.registry import Registry
from orthoreg.report import build_report
from orthoreg.report.analysis.collect import RunData
from orthoreg.report.registry import (
    FIGURES,
    TABLES,
    TableBody,
    figure_captions,
    register_table,
    table_captions,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_lists_exactly_the_registered_tables():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("The tables (") : readme.index("## Configuration")]
    listed = {
        name
        for line in re.findall(r"^- (.*?):", section, re.MULTILINE)
        for name in re.findall(r"`(\w+)`", line)
    }
    assert listed == set(TABLES.names())


class _Wildcards(dict):
    __getattr__ = dict.__getitem__


def render_caption(name: str, **wildcards: str) -> str:
    """A workflow/report caption rendered as Snakemake renders it (Jinja2, a `snakemake` object)."""

    class Snakemake:
        params = _Wildcards(figure_captions=figure_captions(), table_captions=table_captions())
        config = {"name": "paper"}

    Snakemake.wildcards = _Wildcards(wildcards)
    template = (ROOT / "workflow" / "report" / name).read_text()
    return jinja2.Environment().from_string(template).render(snakemake=Snakemake)


def test_every_figure_and_table_gets_its_own_caption_in_the_snakemake_report():
    for spec in FIGURES.in_order():
        stem = spec.stem
        name = f"{stem}_cifar10_resnet20" if spec.per_pair else stem
        caption = render_caption("figures.rst", figure=name)
        assert caption.startswith(spec.description), (name, caption)
        if spec.per_pair:
            assert "(cifar10 / resnet20)" in caption
    for spec in TABLES.in_order():
        assert render_caption("tables.rst", table=spec.name).startswith(spec.description)


def test_report_outputs_are_registries_of_the_project_type():
    assert isinstance(TABLES, Registry) and isinstance(FIGURES, Registry)
    assert TABLES in Registry.all() and FIGURES in Registry.all()
    with pytest.raises(ValueError, match="unknown report table 'nope'; available: ablation, budget, claims"):
        TABLES.get("nope")
    with pytest.raises(ValueError, match="report table 'main_accuracy' is already registered"):
        register_table("main_accuracy", "another", caption="x", skip="y")(lambda data: None)


def test_a_plugin_table_is_built_written_and_captioned_from_its_facts(tmp_path):
    def runs_per_model(data: RunData) -> TableBody | None:
        counts = data.main(data.runs).groupby("model").size().rename("runs").reset_index()
        return TableBody(counts, counts.astype(str), facts={"models": len(counts)})

    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    with TABLES.isolated():
        register_table("runs_per_model", "Runs per model.", caption="{models} model(s).", skip="no runs")(
            runs_per_model
        )
        summary = build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")
        assert "runs_per_model" in table_captions()
    assert "runs_per_model" not in TABLES
    assert pd.read_csv(tmp_path / "t" / "runs_per_model.csv").to_dict("records") == [
        {"model": "resnet20", "runs": 1}
    ]
    assert (tmp_path / "t" / "runs_per_model.md").read_text().startswith("**runs_per_model**: 1 model(s).")
    assert "`runs_per_model`: Runs per model." in (tmp_path / "t" / "index.md").read_text()
    assert summary["tables"]["runs_per_model"]


def test_a_caption_naming_a_fact_its_builder_does_not_give_is_refused(tmp_path):
    make_run(tmp_path / "r", "cifar10", "resnet20", "none", 0, 0.9, evaluate=False)
    with TABLES.isolated():
        register_table("unstated", "A table.", caption="on {images} images", skip="-")(
            lambda data: TableBody(pd.DataFrame({"a": [1]}), pd.DataFrame({"a": ["1"]}))
        )
        with pytest.raises(
            ValueError, match="caption of table 'unstated' needs 'images'; its builder gave \\[\\]"
        ):
            build_report(tmp_path / "r", tmp_path / "t", tmp_path / "f")


def test_captions_for_the_workflow_are_each_family_s_description():
    assert figure_captions() == {spec.stem: spec.description for spec in FIGURES.in_order()}
    assert table_captions() == {spec.name: spec.description for spec in TABLES.in_order()}
