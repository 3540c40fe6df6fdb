"""The GPU check's harness: the registry of parts, the deadline each part runs under, the record it
leaves, the child processes it starts, and the JSON rewritten after every part.

A GPU is lent rarely and briefly, so no part may cost the others their time or the run its results.
Each part gets a share of the budget (time a part leaves unused passes to the parts after it); a part
past its deadline is cut and recorded with what it measured so far and why, a part that cannot run
here is skipped with the reason, a broken one is recorded with its traceback, and the JSON is written
after each part, so even a run killed from outside returns what it measured. The harness knows no part
by name: it runs `PARTS` in the order they were registered.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpucheck.plan import Plan
from gpucheck.printing import Record, part_lines, record_lines
from gpucheck.targets import targets
from orthoreg.files import save_json
from orthoreg.provenance import now
from orthoreg.registry import Registry

ROOT = Path(__file__).resolve().parents[2]  # the repository: child processes run here
GRACE = 5.0  # seconds past its deadline before a part stuck in one long call is interrupted


class Cut(Exception):
    """A part ran past its deadline."""


class Skip(Exception):
    """A part that cannot run here; the message says why."""


@dataclass
class Deadline:
    """When a part must stop: `check` between measurements keeps what was measured before it."""

    end: float  # time.monotonic()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def check(self, next_step: str) -> None:
        if time.monotonic() >= self.end:
            raise Cut(f"deadline reached before {next_step}")


@dataclass
class Context:
    """What every part shares: the arguments, the device, the plan, a scratch folder with the synthetic
    data prepared, and the records of the parts run so far (later parts build on earlier ones)."""

    args: argparse.Namespace
    device: torch.device
    plan: Plan
    work: Path
    child_env: dict[str, str]  # the environment child processes start with
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


Measure = Callable[[Context, dict, Deadline], None]


@dataclass(frozen=True)
class Part:
    """One part of the check: `measure(context, record, deadline)` fills `record` as it goes; `weight`
    (`quick_weight` with --quick) is its share of the budget against the parts still to run; `lines`
    prints its record."""

    name: str
    measure: Measure
    weight: float
    quick_weight: float
    lines: Callable[[Record], list[str]] = record_lines

    def share(self, quick: bool) -> float:
        return self.quick_weight if quick else self.weight


PARTS: Registry[Part] = Registry("GPU-check part")


def part(
    name: str,
    description: str,
    *,
    weight: float,
    quick_weight: float,
    lines: Callable[[Record], list[str]] = record_lines,
) -> Callable[[Measure], Measure]:
    """`@part(name, description, weight=..., quick_weight=...)` registers the decorated measurement."""

    def register(measure: Measure) -> Measure:
        PARTS.register(name, Part(name, measure, weight, quick_weight, lines), description)
        return measure

    return register


@contextmanager
def alarm(seconds: float, message: str) -> Iterator[None]:
    """Raise Cut(message) in the main thread after `seconds`: the backstop for a part stuck in one long
    call (a torch.compile, a training epoch) that its own deadline checks cannot reach."""

    def interrupt(signum: int, frame: Any) -> None:
        raise Cut(message)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_part(measure: Measure, context: Context, deadline: Deadline) -> dict:
    """Run one part into a record: measured, cut (with what it measured before the deadline), skipped
    or error, each but measured with its reason."""
    record: dict[str, Any] = {}
    started = time.monotonic()
    allowed = deadline.remaining()
    try:
        with alarm(allowed + GRACE, f"still running {allowed + GRACE:.0f} s after it started"):
            measure(context, record, deadline)
        status = {"status": "measured"}
    except Cut as cut:
        status = {"status": "cut", "reason": f"{cut} (its deadline: {allowed:.1f} s)"}
    except Skip as skip:
        status = {"status": "skipped", "reason": str(skip)}
    except Exception as error:  # a broken part is recorded; the other parts still run
        status = {
            "status": "error",
            "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=-6),
        }
    finally:
        release_memory(context.device)
    timing = {"seconds": round(time.monotonic() - started, 2), "allowed_seconds": round(allowed, 2)}
    return {**status, **timing, **record}


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_parts(context: Context, end: float, out: Path) -> None:
    """Each part gets its weight's share of the time left when it starts, so time a part leaves unused
    passes to the parts after it; the JSON is rewritten after each part."""
    parts, quick = PARTS.in_order(), context.args.quick
    for index, current in enumerate(parts):
        start = time.monotonic()
        share = current.share(quick) / sum(later.share(quick) for later in parts[index:])
        deadline = Deadline(start + max(0.0, end - start) * share)
        print(f"[{start - context.args.started:6.1f} s] {current.name} ...", flush=True)
        record = context.parts[current.name] = run_part(current.measure, context, deadline)
        print("\n".join(part_lines(current.name, record, current.lines)), flush=True)
        save_json(report(context), out)


def report(context: Context) -> dict[str, Any]:
    """The JSON document: how the check ran, every part's record so far, and the targets."""
    args = context.args
    return {
        "check": "orthoreg GPU check (benchmarks/gpu_check.py)",
        "command": sys.argv,
        "device": context.device.type,
        "quick": args.quick,
        "budget_seconds": args.budget,
        "started": args.started_at,
        "written": now(),
        "wall_seconds": round(time.monotonic() - args.started, 1),
        "parts": context.parts,
        "targets": targets(context.parts, context.plan.stand_in),
    }


def child_environment() -> dict[str, str]:
    """The environment of child processes: this one's, with this repository's src/ importable (a copy
    of the repository on a lent GPU has orthoreg uninstalled)."""
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@contextmanager
def children() -> Iterator[list[subprocess.Popen]]:
    """Child processes started by a part, each in its own session; those still running when the part
    ends (a cut part) are killed with their own children, so no part leaves processes behind."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def spawn(
    started: list[subprocess.Popen], command: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen:
    """Start `command` in the repository, in its own session, into `started` (from `children`)."""
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(process)
    return process


def finish(process: subprocess.Popen, deadline: Deadline, what: str) -> tuple[str, str]:
    """The process's (stdout, stderr) once it exits; when the deadline comes first, it is killed and
    Cut names the end of what it printed (pytest's progress, say)."""
    try:
        return process.communicate(timeout=deadline.remaining())
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise Cut(
            f"{what} had not finished at the deadline; its last output: {(stdout + stderr)[-1500:]}"
        ) from error


def finish_cleanly(process: subprocess.Popen, deadline: Deadline, what: str) -> str:
    """The stdout of a process that must succeed; an exit status other than 0 raises RuntimeError with
    the end of its stderr."""
    stdout, stderr = finish(process, deadline, what)
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited {process.returncode}: {stderr[-2000:]}")
    return stdout
