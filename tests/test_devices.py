"""GPU claiming on a simulated multi-GPU box: processes started together, each with the environment a
scheduler or a container gives it, must end up on distinct physical GPUs. No GPU is needed: the child
passes the GPU count torch would report, and CUDA_VISIBLE_DEVICES is set in its real environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orthoreg import devices

# loads devices.py by path (not the whole package), waits for "go" on stdin so that every claimant
# races at once, prints its index and holds its claim until stdin closes
CLAIMANT = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('devices', sys.argv[1])\n"
    "devices = importlib.util.module_from_spec(spec); spec.loader.exec_module(devices)\n"
    "sys.stdin.readline()\n"
    "print(devices.gpu_for_this_job(int(sys.argv[2]), sys.argv[3], timeout=0.0), flush=True)\n"
    "sys.stdin.read()\n"
)


def start(count: int, lock_dir: Path, visible: str | None) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key not in ("SLURM_JOB_ID",)}
    environment.pop(devices.VISIBLE_ENV, None)
    if visible is not None:
        environment[devices.VISIBLE_ENV] = visible
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMANT, devices.__file__, str(count), str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def race(jobs: list[tuple[int, str | None]], lock_dir: Path) -> tuple[list[str], list[subprocess.Popen]]:
    """Start one claimant per (gpu count, CUDA_VISIBLE_DEVICES), let them claim at the same moment,
    and return what each printed (an index, or its error) with the processes, still holding."""
    claimants = [start(count, lock_dir, visible) for count, visible in jobs]
    for claimant in claimants:
        claimant.stdin.write("go\n")
        claimant.stdin.flush()
    answers = []
    for claimant in claimants:
        line = claimant.stdout.readline().strip()
        if not line:
            _, stderr = claimant.communicate(input="", timeout=60)
            line = stderr.strip().splitlines()[-1]
        answers.append(line)
    return answers, claimants


def release(claimants: list[subprocess.Popen]) -> None:
    for claimant in claimants:
        claimant.kill()
        claimant.wait()


@pytest.mark.parametrize("visible", ["0,1,2,3", None], ids=["CUDA_VISIBLE_DEVICES=0,1,2,3", "unset"])
def test_four_concurrent_jobs_on_a_four_gpu_box_get_four_devices(tmp_path, visible):
    answers, claimants = race([(4, visible)] * 4, tmp_path)
    try:
        assert sorted(answers) == ["0", "1", "2", "3"]
        assert sorted(path.name for path in tmp_path.iterdir()) == [f"gpu{k}.lock" for k in range(4)]
        # a fifth job finds every GPU taken and says so
        extra, more = race([(4, visible)], tmp_path)
        claimants += more
        assert "all 4 GPUs are claimed by other jobs" in extra[0]
    finally:
        release(claimants)


def test_an_allocation_of_other_gpus_is_indexed_within_its_visible_set(tmp_path):
    """salloc --gpus=4 on GPUs 4-7 exports CUDA_VISIBLE_DEVICES=4,5,6,7: torch calls them 0..3."""
    answers, claimants = race([(4, "4,5,6,7")] * 4, tmp_path)
    try:
        assert sorted(answers) == ["0", "1", "2", "3"]
        assert sorted(path.name for path in tmp_path.iterdir()) == [f"gpu{k}.lock" for k in range(4, 8)]
    finally:
        release(claimants)


def test_jobs_seeing_the_same_gpus_under_other_indices_never_share_one(tmp_path):
    """A job restricted to GPUs 2,3 holds physical GPU 2 (its index 0); four jobs that see all four
    GPUs then get physical 0, 1 and 3, and the last of them finds none left."""
    first, claimants = race([(2, "2,3")], tmp_path)
    try:
        assert first == ["0"]
        answers, others = race([(4, None)] * 4, tmp_path)
        claimants += others
        claimed = sorted(answer for answer in answers if answer.isdigit())
        refused = [answer for answer in answers if not answer.isdigit()]
        assert claimed == ["0", "1", "3"]
        assert len(refused) == 1 and "all 4 GPUs are claimed by other jobs" in refused[0]
    finally:
        release(claimants)


def test_a_single_visible_gpu_is_used_without_a_lock(tmp_path):
    """SLURM's --gpus=1 and docker's --gpus device=K leave one GPU visible: every job uses it, and no
    lock is taken (under SLURM's cgroups each job's own GPU is called 0)."""
    answers, claimants = race([(1, "3"), (1, "3"), (1, None)], tmp_path)
    try:
        assert answers == ["0", "0", "0"]
        assert list(tmp_path.iterdir()) == []
    finally:
        release(claimants)


def test_visible_gpus_reads_indices_uuids_and_mig_names():
    assert devices.visible_gpus(3, None) == ["0", "1", "2"]
    assert devices.visible_gpus(2, " 6, 7 ") == ["6", "7"]
    uuids = "GPU-8f6b1c2e-0000-1111-2222-333344445555,GPU-0a1b2c3d-6666-7777-8888-999900001111"
    assert devices.visible_gpus(2, uuids) == uuids.split(",")
    # CUDA stops at the first entry it cannot use, so torch may see fewer GPUs than the list names
    assert devices.visible_gpus(2, "0,1,9") == ["0", "1"]
    assert devices.lock_name("MIG-GPU-8f6b1c2e/1/0") == "gpuMIG-GPU-8f6b1c2e_1_0.lock"


@pytest.mark.parametrize(
    ("count", "visible", "message"),
    [
        (0, None, "n_devices must be at least 1, got 0"),
        (4, "0,1", "CUDA_VISIBLE_DEVICES='0,1' lists 2 GPUs but 4 are visible"),
    ],
)
def test_visible_gpus_refuses_impossible_counts(count, visible, message):
    with pytest.raises(ValueError, match=message):
        devices.visible_gpus(count, visible)


def test_lock_folder_is_per_user_per_slurm_job_or_the_one_named(monkeypatch, tmp_path):
    monkeypatch.delenv(devices.LOCK_DIR_ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    plain = devices.default_lock_dir()
    assert plain.name == f"orthoreg-gpu-locks-{os.getuid()}"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert devices.default_lock_dir() == plain.with_name(f"{plain.name}-slurm4242")
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path))
    assert devices.default_lock_dir() == tmp_path
