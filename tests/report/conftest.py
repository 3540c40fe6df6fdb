"""The small grid of fake_runs.py reported once per session, for the table and figure tests."""

import pytest
from fake_runs import build_tree

from orthoreg.report import build_report


@pytest.fixture(scope="session")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    build_tree(root / "results")
    summary = build_report(root / "results", root / "tables", root / "figures")
    return {"root": root, "summary": summary, "tables": root / "tables", "figures": root / "figures"}
