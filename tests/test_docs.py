"""The documentation runs: every ```python block of README.md, docs/api.md and docs/extending.md is
executed (each file's blocks in order, in one namespace, in a temporary working directory), and the
worked examples of docs/method.md agree with the library."""

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/api.md", "docs/extending.md")
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


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
