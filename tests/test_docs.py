"""The documentation runs: every ```python block of README.md, docs/api.md and docs/extending.md is
executed (each file's blocks in order, in one namespace, in a temporary working directory); every
shell block of the docs carries a marker saying whether it runs here, and those marked
`<!-- shell: runs -->` are run, each in a fresh copy of the repository; and the worked examples of
docs/method.md agree with the library."""

import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import orthoreg.report  # noqa: F401  (its registries exist before a test isolates them)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/api.md", "docs/extending.md")
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

# the documents whose shell blocks are checked, and what each marker before a shell block means
SHELL_DOCUMENTS = ("README.md", "CHANGELOG.md", "docs/*.md", "config/*.md", "profiles/*/*.md")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console", "zsh")
SHELL_MARKS = {
    "runs": "cheap: run by test_runnable_shell_blocks_run in a copy of the repository",
    "gpu": "needs a CUDA GPU",
    "cluster": "needs a SLURM cluster",
    "cloud": "needs a Kubernetes cluster, a bucket and an image registry",
    "long": "runs for minutes or installs software (the demo, the test suite)",
}
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<language>[\w+-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARKER = re.compile(r"^<!-- shell: (?P<mark>[\w-]+) -->$")
# what a copy of the repository leaves out: outputs, caches, the environment (linked instead)
NOT_COPIED = (
    ".git",
    ".venv",
    "data",
    "results",
    "figures",
    "logs",
    ".snakemake",
    "*.egg-info",
    "*_cache",
    "__pycache__",
)


def python_blocks(text: str) -> list[str]:
    return [match.group(1) for match in PYTHON_BLOCK.finditer(text)]


def test_block_extraction_finds_only_python_blocks():
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


def documents_with_code() -> list[str]:
    present = [name for name in DOCUMENTS if (ROOT / name).is_file()]
    return [name for name in present if python_blocks((ROOT / name).read_text())]


def test_api_and_extending_docs_have_examples():
    with_code = documents_with_code()
    assert "docs/api.md" in with_code and "docs/extending.md" in with_code


@pytest.mark.parametrize("document", documents_with_code())
def test_document_examples_run(document, tmp_path, monkeypatch, isolated_registries):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{Path(document).stem}"}
    for number, block in enumerate(python_blocks((ROOT / document).read_text()), start=1):
        code = compile(block, f"{document} (python block {number})", "exec")
        exec(code, namespace)


def shell_blocks(text: str) -> list[tuple[int, str | None, str]]:
    """Each shell block of a Markdown text: its first line number, the mark of the `<!-- shell: X -->`
    line right before it (None when there is none) and its code, dedented."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("language") not in SHELL_LANGUAGES:
            continue
        before = [line.strip() for line in text[: match.start()].splitlines() if line.strip()]
        marker = MARKER.match(before[-1]) if before else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, marker.group("mark") if marker else None, textwrap.dedent(match.group("body"))))
    return blocks


def shell_documents() -> list[str]:
    found = {str(path.relative_to(ROOT)) for pattern in SHELL_DOCUMENTS for path in ROOT.glob(pattern)}
    return sorted(found)


def test_shell_block_extraction_reads_markers_and_dedents():
    text = (
        "<!-- shell: runs -->\n```bash\nls\n```\n\n```python\nx = 1\n```\n"
        "- item\n\n  <!-- shell: gpu -->\n  ```sh\n  nvidia-smi\n  ```\n```console\necho\n```\n"
    )
    assert shell_blocks(text) == [(2, "runs", "ls\n"), (12, "gpu", "nvidia-smi\n"), (15, None, "echo\n")]


def test_the_shell_documents_are_found():
    assert {"README.md", "docs/extending.md", "profiles/slurm/README.md"} <= set(shell_documents())


@pytest.mark.parametrize("document", shell_documents())
def test_every_shell_block_says_whether_it_runs_here(document):
    """A shell block either runs in these tests or says what it needs (a GPU, a cluster, a long time)."""
    unmarked = [
        f"{document}:{line} ({mark or 'no marker'})"
        for line, mark, _ in shell_blocks((ROOT / document).read_text())
        if mark not in SHELL_MARKS
    ]
    assert not unmarked, (
        f"put one of {', '.join(f'<!-- shell: {mark} -->' for mark in SHELL_MARKS)} on the line before "
        f"each of: {', '.join(unmarked)}"
    )


def runnable_blocks() -> list:
    return [
        pytest.param(document, code, id=f"{document}:{line}")
        for document in shell_documents()
        for line, mark, code in shell_blocks((ROOT / document).read_text())
        if mark == "runs"
    ]


def test_the_docs_have_runnable_shell_blocks():
    assert {param.values[0] for param in runnable_blocks()} >= {"README.md", "docs/extending.md"}


@pytest.mark.slow
@pytest.mark.parametrize(("document", "code"), runnable_blocks())
def test_runnable_shell_blocks_run(document, code, tmp_path):
    """The block, as written, in a copy of the repository whose `.venv` is this test's environment, with
    that environment's commands first on PATH (as after `make demo` or an activated venv)."""
    copy = tmp_path / "orthoreg"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    (copy / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("ORTHOREG_PLUGINS", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"{document}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def worked_examples() -> list[dict]:
    """The rows of the worked-example table of docs/method.md: o, n, rho, k, pairs still penalised."""
    text = (ROOT / "docs" / "method.md").read_text()
    section = text[text.index("#### Worked examples") :]
    table = section[section.index("| layer") : section.index("\n\n", section.index("| layer"))]
    examples = []
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rho = re.search(r"\\rho = ([0-9.]+)", cells[0])
        examples.append(
            {
                "layer": cells[0],
                "o": int(cells[1]),
                "n": int(cells[2]),
                "rho": float(rho.group(1)) if rho else None,
                "k": int(re.findall(r"\d+", cells[5])[-1]),
                "kept": int(re.match(r"\d+", cells[6]).group()),
            }
        )
    return examples


def test_method_worked_examples_match_relaxation_k():
    from orthoreg.regularizers import relaxation_k

    examples = worked_examples()
    assert len(examples) >= 2
    assert any(e["o"] > e["n"] for e in examples) and any(e["o"] <= e["n"] for e in examples)
    for example in examples:
        o, n = example["o"], example["n"]
        pairs = o * (o - 1) // 2
        # over-determined layers do not depend on rho; check that for several values
        for rho in [example["rho"]] if example["rho"] is not None else [0.1, 0.5, 1.0]:
            assert relaxation_k(o, n, rho) == example["k"], example
            # the independent rule of method.md: r = n (over-determined) or ceil(rho * o)
            r = n if o > n else math.ceil(rho * o)
            assert example["k"] == pairs - r * (r - 1) // 2, example
        assert example["kept"] == pairs - example["k"], example


def test_method_welch_example_matches_welch_bound():
    from orthoreg.regularizers import welch_bound

    text = (ROOT / "docs" / "method.md").read_text()
    assert r"1/\sqrt{63} \approx 0.126" in text
    assert welch_bound(64, 32) == pytest.approx(1 / math.sqrt(63))
    assert round(welch_bound(64, 32), 3) == 0.126
