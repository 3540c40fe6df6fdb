"""The pipeline on a real SLURM through profiles/slurm (CI starts a single-node SLURM with
`bash .ci/slurm/start.sh`: two GPU-like GRES devices, no real GPU).

Opt-in only: the tests run when ORTHOREG_TEST_SLURM names the cluster they may submit to (the
ClusterName of .ci/slurm/slurm.conf.in, `orthoreg-ci`, which `.ci/run` exports after starting its
SLURM); unset, they are skipped without calling any SLURM command, so a login node's cluster never sees
them. Once asked for, a cluster that does not answer, answers with another name or lacks two GPU GRES
is a failure, not a skip.

One Snakemake run of a reduced demo (config/ci.yaml with one seed, four epochs, every job asking for a
GPU) is shared by the tests below. While it runs, the fixture records which jobs run at the same time
(squeue) and scancels one train job once its first epoch is in history.csv. The tests then check that
every job went through sbatch, that GPU jobs were submitted with --gpus=1 and concurrent ones saw
different CUDA_VISIBLE_DEVICES (written into each job's SLURM log by the cluster's TaskProlog), and
that the cancelled run was retried and resumed from its checkpoint.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from orthoreg import grid

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = ROOT / "profiles" / "slurm"
EPOCHS = 4
LOCAL_RULES = {"all", "expected_runs"}
GPU_RULES = {"train", "evaluate", "robustness"}
DEMO_TIMEOUT_S = 900
CLUSTER_VARIABLE = "ORTHOREG_TEST_SLURM"
EXPECTED_CLUSTER = os.environ.get(CLUSTER_VARIABLE, "").strip()
SLURM_COMMANDS = ("scontrol", "sinfo", "sbatch", "squeue", "scancel")

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.pipeline,
    pytest.mark.skipif(
        not EXPECTED_CLUSTER,
        reason=f"submits a demo to SLURM, so runs only when asked: start the CI cluster with "
        f"`sudo bash .ci/slurm/start.sh` and set {CLUSTER_VARIABLE}=orthoreg-ci (its ClusterName)",
    ),
]


def _slurm(*args: str) -> str:
    """What a SLURM command printed (stdout, then stderr); a test failure if it hangs for 5 s."""
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(args)}` did not answer within 5 s ({CLUSTER_VARIABLE}={EXPECTED_CLUSTER})")
    return result.stdout + result.stderr


def _check_cluster() -> None:
    """Fail unless the SLURM that answers is the one ORTHOREG_TEST_SLURM names, with two usable GPU GRES."""
    missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
    if missing:
        pytest.fail(
            f"{CLUSTER_VARIABLE}={EXPECTED_CLUSTER} asks for the SLURM test, but the SLURM client lacks "
            f"{', '.join(missing)}; `sudo bash .ci/slurm/start.sh` installs and starts one"
        )
    ping = _slurm("scontrol", "ping")
    if re.search(r"\bUP\b", ping) is None:
        pytest.fail(
            f"{CLUSTER_VARIABLE}={EXPECTED_CLUSTER} asks for the SLURM test, but no SLURM controller "
            f"answers (scontrol ping: {ping.strip()!r}); start it with `sudo bash .ci/slurm/start.sh`"
        )
    config = _slurm("scontrol", "show", "config")
    match = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.MULTILINE)
    answering = match.group(1) if match else None
    if answering != EXPECTED_CLUSTER:
        pytest.fail(
            f"the SLURM that answers is cluster {answering!r}, not {EXPECTED_CLUSTER!r} as "
            f"{CLUSTER_VARIABLE} asks: refusing to submit jobs to it"
        )
    nodes = _slurm("sinfo", "-h", "-N", "-o", "%t %G")
    usable = re.findall(r"^(?:idle|mix|alloc|comp)\S*\s+\S*gpu:(\d+)", nodes, re.MULTILINE)
    if sum(int(count) for count in usable) < 2:
        pytest.fail(
            f"cluster {EXPECTED_CLUSTER!r} offers fewer than 2 usable GPU GRES (sinfo: {nodes.strip()!r})"
        )


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> str:
    """The name of the checked cluster; checked once, before any job is submitted."""
    _check_cluster()
    return EXPECTED_CLUSTER


@dataclass
class SlurmDemo:
    """What one Snakemake run through the SLURM profile left behind."""

    workdir: Path
    cancelled_run: str  # the run whose train job is scancelled mid-run, relative to results/
    returncode: int = -1
    log: str = ""
    concurrent: set[frozenset[str]] = field(default_factory=set)
    cancelled_job: str | None = None


def _squeue(workdir: Path) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of the jobs run in `workdir`, finished ones too (MinJobAge keeps them)."""
    result = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%T|%Z|%k"], capture_output=True, text=True, timeout=30
    )
    rows = [line.split("|", 3) for line in result.stdout.splitlines()]
    return [(job, state, comment) for job, state, cwd, comment in rows if Path(cwd) == workdir]


def _rule(comment: str) -> str:
    """The rule from the executor's job comment `rule_<rule>[_wildcards_<wildcards>]`."""
    return comment.strip("'").removeprefix("rule_").split("_wildcards_")[0]


def _epochs_done(run_dir: Path) -> int:
    history = run_dir / "history.csv"
    if not history.is_file():
        return 0
    with history.open() as handle:
        return sum(1 for _ in csv.DictReader(handle))


@pytest.fixture(scope="module")
def slurm_demo(slurm_cluster, tmp_path_factory) -> SlurmDemo:
    workdir = tmp_path_factory.mktemp("slurm_demo").resolve()
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config.update(gpu_resource=True, seeds=[0])
    config["train"]["epochs"] = EPOCHS
    config_file = workdir / "slurm_ci.yaml"
    config_file.write_text(yaml.safe_dump(config))
    paper = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    planned = grid.main_runs(grid.merge_configs(paper, config))
    cancelled_run = next(run.path for run in planned if run.regularizer == "none")
    cancel_comment = "rule_train_wildcards_" + cancelled_run.replace("/", "_")

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        "timeout", "-k", "30", str(DEMO_TIMEOUT_S),
        str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--profile", str(PROFILE), "--workflow-profile", "none", "--configfile", str(config_file),
        "--verbose", "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "2",
    ]  # fmt: skip
    demo = SlurmDemo(workdir, cancelled_run)
    log_path = workdir / "snakemake.log"
    start = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            jobs = _squeue(workdir)
            running = sorted(job for job, state, _ in jobs if state == "RUNNING")
            demo.concurrent.update(frozenset((a, b)) for i, a in enumerate(running) for b in running[i + 1 :])
            if demo.cancelled_job is None and _epochs_done(workdir / "results" / cancelled_run) >= 1:
                target = [
                    job for job, state, comment in jobs if comment == cancel_comment and state == "RUNNING"
                ]
                if target:
                    subprocess.run(["scancel", target[-1]], check=True, timeout=30)
                    demo.cancelled_job = target[-1]
            time.sleep(0.5)
    demo.returncode = process.returncode
    demo.log = log_path.read_text()
    print(f"\nSLURM demo: snakemake exited {demo.returncode} after {time.monotonic() - start:.0f} s")
    return demo


def _sbatch_calls(log: str) -> list[str]:
    return re.findall(r"sbatch call: (sbatch .*)$", log, re.MULTILINE)


def _call_rule(call: str) -> str:
    match = re.search(r"--comment (\S+)", call)
    assert match, f"no --comment in the sbatch call {call[:300]}"
    return _rule(match.group(1))


def _planned_jobs(log: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's first 'Job stats' table, rules run by SLURM only."""
    table = log[log.index("Job stats:") :]
    table = table[: table.index("total")]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}
    return {rule: n for rule, n in counts.items() if rule not in LOCAL_RULES}


def _step_devices(workdir: Path) -> dict[str, str]:
    """SLURM job id -> CUDA_VISIBLE_DEVICES its job step saw (the TaskProlog line in its SLURM log)."""
    devices: dict[str, str] = {}
    for log in (workdir / ".snakemake" / "slurm_logs").rglob("*.log"):
        pattern = r"orthoreg-ci-task job=(\d+) step=0 CUDA_VISIBLE_DEVICES=(\S+)"
        devices.update(re.findall(pattern, log.read_text()))
    return devices


def test_demo_completes_with_every_job_submitted_through_sbatch(slurm_demo):
    assert slurm_demo.returncode == 0, slurm_demo.log[-6000:]
    assert (slurm_demo.workdir / "results" / "tables" / "ci" / "index.md").is_file()
    assert list((slurm_demo.workdir / "figures" / "ci").glob("*.png"))

    planned = _planned_jobs(slurm_demo.log)
    assert set(planned) == {"data", "train", "evaluate", "robustness", "report"}
    submitted: dict[str, int] = {}
    for call in _sbatch_calls(slurm_demo.log):
        submitted[_call_rule(call)] = submitted.get(_call_rule(call), 0) + 1
    # every planned job was submitted once, the cancelled train job once more (its retry)
    assert submitted == {**planned, "train": planned["train"] + 1}
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_demo.log)
    assert len(ids) == len(set(ids)) == sum(submitted.values())
    states = {job: state for job, state, _ in _squeue(slurm_demo.workdir)}
    assert {states[job] for job in ids if job != slurm_demo.cancelled_job} == {"COMPLETED"}


def test_gpu_jobs_ask_for_one_gpu_requeue_and_sigterm_before_the_time_limit(slurm_demo):
    calls = _sbatch_calls(slurm_demo.log)
    assert {_call_rule(call) for call in calls} >= GPU_RULES
    for call in calls:
        asks_gpu = re.search(r"\s--gpus=1(\s|$)", call) is not None
        assert asks_gpu == (_call_rule(call) in GPU_RULES), call[:400]
        assert " --requeue" in call and "--signal=TERM@120" in call, call[:400]
        assert re.search(r"\s-t '?\d+'?\s", call) and re.search(r"\s--mem \d+\s", call), call[:400]
    for call in calls:
        if _call_rule(call) == "train":
            assert "--cpus-per-gpu=1" in call and re.search(r"\s--mem 2000\s", call), call[:400]


def test_concurrent_gpu_jobs_see_different_cuda_visible_devices(slurm_demo):
    devices = _step_devices(slurm_demo.workdir)
    rules = {job: _rule(comment) for job, _, comment in _squeue(slurm_demo.workdir)}
    assert set(rules) <= set(devices), f"jobs without a TaskProlog line: {set(rules) - set(devices)}"
    gpu_jobs = {job for job, rule in rules.items() if rule in GPU_RULES}
    assert {devices[job] for job in gpu_jobs} == {"0", "1"}
    assert {devices[job] for job in set(rules) - gpu_jobs} == {"unset"}
    pairs = [tuple(pair) for pair in slurm_demo.concurrent if pair <= gpu_jobs]
    assert pairs, "no two GPU jobs ever ran at the same time"
    for a, b in pairs:
        assert devices[a] != devices[b], f"jobs {a} and {b} ran together on CUDA_VISIBLE_DEVICES={devices[a]}"


def test_scancelled_train_job_is_retried_and_resumes_from_its_checkpoint(slurm_demo):
    assert slurm_demo.cancelled_job is not None, "the train job finished before it could be cancelled"
    assert slurm_demo.returncode == 0, slurm_demo.log[-6000:]
    states = {job: state for job, state, _ in _squeue(slurm_demo.workdir)}
    assert states[slurm_demo.cancelled_job] == "CANCELLED"
    # Snakemake rewrites the rule's log for the retry, so it holds the resumed attempt only
    train_log = (slurm_demo.workdir / "logs" / "train" / f"{slurm_demo.cancelled_run}.log").read_text()
    resumed = re.search(r"train: resuming \S+ at epoch (\d+), batch (\d+)", train_log)
    assert resumed, train_log
    assert 2 <= int(resumed.group(1)) <= EPOCHS  # epoch 1 was done before the cancel
    run_dir = slurm_demo.workdir / "results" / slurm_demo.cancelled_run
    with (run_dir / "history.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(1, EPOCHS + 1))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["epochs_completed"] == EPOCHS
