"""Repository hygiene: the conda environment and pyproject list the same dependencies, the citation file
is valid CFF, and the licence is present."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "orthoreg"


def normalised(requirement: str) -> str:
    """One spelling per requirement: canonical name, sorted extras, sorted specifiers, marker."""
    parsed = Requirement(requirement)
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    specifiers = ",".join(sorted(str(s) for s in parsed.specifier))
    marker = f"; {parsed.marker}" if parsed.marker else ""
    return f"{canonicalize_name(parsed.name)}{extras}{specifiers}{marker}"


def pyproject_requirements(extra: str) -> set[str]:
    """The base dependencies plus `extra`, with the project's references to its own extras expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    found: set[str] = set()
    pending, seen = [extra], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        assert name in optional, f"pyproject.toml names the extra {name!r}, which it does not define"
        seen.add(name)
        for requirement in optional[name]:
            parsed = Requirement(requirement)
            if canonicalize_name(parsed.name) == PROJECT:
                pending.extend(parsed.extras)
            else:
                found.add(normalised(requirement))
    return found | {normalised(r) for r in project["dependencies"]}


def pip_section(path: Path) -> list[str]:
    """The one `pip:` list of a conda environment file."""
    environment = yaml.safe_load(path.read_text())
    pip_sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{path.name} should have exactly one pip: section"
    return pip_sections[0]


def environment_requirements(path: Path = ROOT / "environment.yml") -> set[str]:
    """The requirements of a conda environment file's pip list, less its editable install of a folder."""
    return {normalised(r) for r in pip_section(path) if not r.startswith("-e ")}


def test_normalised_spelling_ignores_case_and_specifier_order():
    assert normalised("Torch<=2.14.1,>=2.2") == normalised("torch>=2.2,<=2.14.1")
    assert normalised("torch>=2.2") != normalised("torch>=2.3")


def test_environment_yml_lists_exactly_the_dev_dependencies_of_pyproject():
    from_pyproject = pyproject_requirements("dev")
    from_environment = environment_requirements()
    assert from_pyproject == from_environment, (
        f"only in pyproject.toml: {sorted(from_pyproject - from_environment)}; "
        f"only in environment.yml: {sorted(from_environment - from_pyproject)}"
    )


def test_environment_yml_installs_this_checkout():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_section


WORKFLOW_ENVIRONMENT = ROOT / "workflow" / "envs" / "orthoreg.yaml"


def test_the_rules_environment_lists_exactly_the_train_and_report_dependencies_of_pyproject():
    """`snakemake --sdm conda` deploys for every rule what the orthoreg commands need, pinned alike."""
    from_pyproject = pyproject_requirements("train") | pyproject_requirements("report")
    from_environment = environment_requirements(WORKFLOW_ENVIRONMENT)
    assert from_pyproject == from_environment, (
        f"only in pyproject.toml: {sorted(from_pyproject - from_environment)}; "
        f"only in {WORKFLOW_ENVIRONMENT.name}: {sorted(from_environment - from_pyproject)}"
    )


def test_the_rules_environment_installs_the_workflows_own_checkout():
    """Its one local requirement is the folder that holds the Snakefile, the package of this version
    (conda's pip runs beside the environment file, so the path is relative to it)."""
    (local,) = [r for r in pip_section(WORKFLOW_ENVIRONMENT) if r.startswith("-e ")]
    folder = (WORKFLOW_ENVIRONMENT.parent / local.removeprefix("-e ").strip()).resolve()
    assert folder == ROOT and (folder / "Snakefile").is_file()
    assert tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"] == PROJECT


def test_citation_cff_is_valid_and_cites_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):
        assert citation.get(key), f"CITATION.cff lacks the required key {key!r}"
    assert citation["cff-version"] == "1.2.0"
    assert citation["type"] == "software"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert str(citation["version"]) == version
    for author in citation["authors"]:
        assert author.get("name") or author.get("family-names"), author
    papers = [r for r in citation.get("references", []) if "2306.09939" in str(r.get("identifiers"))]
    assert len(papers) == 1, "the paper (arXiv:2306.09939) should be cited once under references"
    paper = papers[0]
    for key in ("type", "title", "authors"):
        assert paper.get(key), f"the paper reference lacks {key!r}"
    families = [author["family-names"] for author in paper["authors"]]
    assert families == ["Wu", "Zhang", "Long", "Yin", "Leng"]
    assert paper["year"] == 2023


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "orthoreg contributors" in text


def test_package_version_is_the_project_version():
    import orthoreg

    assert orthoreg.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
