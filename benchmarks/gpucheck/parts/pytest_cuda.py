"""The pytest part: `pytest -m cuda tests/test_cuda.py` in a child process (every test skipped cleanly
without a GPU), its summary and counts recorded, and the end of its output when it fails."""

from __future__ import annotations

import re
import sys

from gpucheck.harness import Context, Deadline, children, finish, part, spawn

COMMAND = ["-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-v", "-rs", "-p", "no:cacheprovider"]
OUTCOMES = r"(\d+) (passed|failed|skipped|xfailed|xpassed|deselected|errors?)"


@part("pytest_cuda", "pytest -m cuda tests/test_cuda.py in a child process", weight=60, quick_weight=7)
def pytest_cuda(context: Context, record: dict, deadline: Deadline) -> None:
    with children() as started:
        process = spawn(started, [sys.executable, *COMMAND], context.child_env)
        stdout, stderr = finish(process, deadline, "pytest")
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else stderr.strip()[-300:]
    record.update(
        command=" ".join(COMMAND),
        returncode=process.returncode,
        passed=process.returncode == 0,
        summary=summary,
        counts={kind: int(number) for number, kind in re.findall(OUTCOMES, summary)},
    )
    if process.returncode != 0:
        record["output_tail"] = stdout[-4000:] + stderr[-2000:]
