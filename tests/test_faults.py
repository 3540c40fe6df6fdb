"""Fault injection: each fault a careful user or an unlucky cluster meets ends with nothing lost and
one line that names the file and the remedy.

Config changes between Snakemake runs, corrupt prepared data, corrupt checkpoints and model files, a
full disk (a real 512 KiB tmpfs where this machine lets us mount one, an injected ENOSPC everywhere),
SIGKILL between the renames of a finishing run, the umask, and the opt-in cluster test.
"""

import csv
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from orthoreg import files
from orthoreg.checkpoint import content_digest
from orthoreg.data import prepare_dataset

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAIN = [
    "--model", "resnet8", "--dataset", "synthetic", "--regularizer", "dn_strict", "--seed", "1",
    "--epochs", "2", "--batch-size", "32", "--limit-train", "128", "--limit-test", "64",
    "--device", "cpu", "--threads", "1",
]  # fmt: skip


def orthoreg(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orthoreg", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a failed command; it must hold every fragment and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "weights_only=False" not in result.stderr
    return lines[0]


def flip_bytes(path: Path, count: int = 10, start: float = 0.5) -> None:
    content = bytearray(path.read_bytes())
    middle = int(len(content) * start)
    for offset in range(count):
        content[middle + offset] ^= 0xFF
    path.write_bytes(bytes(content))


def history_without_time(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as handle:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(handle)]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    root = tmp_path / "data"
    prepare_dataset("synthetic", root)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One finished run of TRAIN, never changed: the undamaged result the repaired runs must equal."""
    root = tmp_path_factory.mktemp("reference")
    prepare_dataset("synthetic", root / "data")
    out = root / "run"
    result = orthoreg("train", *TRAIN, "--out", str(out), "--data-dir", str(root / "data"))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def finished(tmp_path, reference) -> Path:
    """A copy of the reference run, for a test to damage."""
    return Path(shutil.copytree(reference, tmp_path / "run"))


# --- prepared data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_flipped_bytes_in_prepared_data_are_refused_by_name_then_prepare_data_repairs(
    tmp_path, data_dir, split
):
    flip_bytes(data_dir / "synthetic" / f"{split}.pt")
    result = orthoreg("train", *TRAIN, "--out", str(tmp_path / "run"), "--data-dir", str(data_dir))
    one_line_error(result, f"{split}.pt has changed since it was written", "orthoreg prepare-data")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    assert orthoreg("prepare-data", "--dataset", "synthetic", "--data-dir", str(data_dir)).returncode == 0
    result = orthoreg("train", *TRAIN, "--out", str(tmp_path / "run"), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr


def test_a_valid_file_with_shifted_labels_is_refused(tmp_path, data_dir):
    path = data_dir / "synthetic" / "train.pt"
    stored = torch.load(path, weights_only=True)
    stored["labels"] = (stored["labels"] + 1) % 10
    torch.save(stored, path)
    result = orthoreg("train", *TRAIN, "--out", str(tmp_path / "run"), "--data-dir", str(data_dir))
    one_line_error(result, str(path), "has changed since it was written")


def test_a_truncated_prepared_file_is_refused_in_our_words(tmp_path, data_dir):
    path = data_dir / "synthetic" / "test.pt"
    path.write_bytes(path.read_bytes()[:1000])
    result = orthoreg("train", *TRAIN, "--out", str(tmp_path / "run"), "--data-dir", str(data_dir))
    one_line_error(result, str(path), "orthoreg prepare-data")


# --- checkpoints and model files --------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign config"])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_ends_as_an_undamaged_one(
    tmp_path, data_dir, finished, damage
):
    """The finished run's checkpoint, damaged, in a fresh folder: the retrain sets it aside (its
    bytes kept) and ends bit-identical to the undamaged run."""
    out = tmp_path / "again"
    out.mkdir()
    checkpoint = out / "checkpoint.pt"
    shutil.copy(finished / "checkpoint.pt", checkpoint)
    if damage == "flip":
        flip_bytes(checkpoint, start=0.9)
    elif damage == "truncate":
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    else:
        state = torch.load(checkpoint, weights_only=True)
        del state["sha256"]
        state["config"]["lr"] = 0.5
        torch.save({**state, "sha256": content_digest(state)}, checkpoint)
    damaged = checkpoint.read_bytes()

    result = orthoreg("train", *TRAIN, "--out", str(out), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    (aside,) = out.glob("checkpoint.set-aside-*.pt")
    assert aside.read_bytes() == damaged
    assert f"set aside as {aside.name}, training from the start" in result.stderr
    expected = "differing: lr" if damage == "foreign config" else "checkpoint.pt"
    assert expected in result.stderr
    record, reference = (json.loads((path / "run.json").read_text()) for path in (out, finished))
    assert record["model_sha256"] == reference["model_sha256"]
    assert (out / "model.pt").read_bytes() == (finished / "model.pt").read_bytes()


def test_a_changed_model_file_is_refused_by_every_reader_and_the_named_remedy_restores_it(finished, data_dir):
    model = finished / "model.pt"
    original = model.read_bytes()
    flip_bytes(model, start=0.8)
    for command in (
        ["evaluate", "--run", str(finished), "--data-dir", str(data_dir), "--limit-test", "32"],
        ["inspect", str(finished)],
    ):
        line = one_line_error(orthoreg(*command), f"{model} has changed since it was written")
        assert f"delete {finished / 'run.json'}" in line

    # the remedy the message names: run.json removed, the same train command finishes from the checkpoint
    (finished / "run.json").unlink()
    result = orthoreg("train", *TRAIN, "--out", str(finished), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert model.read_bytes() == original


def test_train_over_a_changed_model_file_sets_it_aside_and_finishes_again(finished, data_dir):
    model = finished / "model.pt"
    original = model.read_bytes()
    flip_bytes(model, start=0.8)
    result = orthoreg("train", *TRAIN, "--out", str(finished), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "model.pt has changed since it was written" in result.stderr
    assert model.read_bytes() == original
    assert len(list(finished.glob("model.set-aside-*.pt"))) == 1


def test_a_file_holding_code_is_refused_without_torch_advice(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2), "extra": Path("/x")}, path)
    with pytest.raises(ValueError) as refused:
        files.load_torch(path, remedy="use another file")
    message = str(refused.value)
    assert str(path) in message and "could run code" in message and "use another file" in message
    assert "weights_only" not in message


# --- a full disk, SIGKILL between renames, temporaries, permissions ---------------------------------


def test_an_injected_full_disk_is_one_oserror_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "run" / "model.pt"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as raised:
        files.save_torch({"w": torch.zeros(3)}, target)
    assert raised.value.errno == errno.ENOSPC
    assert "no space left on device" in str(raised.value) and str(target) in str(raised.value)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["model.pt"]


def _tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `path`; the reason when this machine does not allow it."""
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root (CI runs as root)"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return None if mounted.returncode == 0 else f"mount -t tmpfs failed: {mounted.stderr.decode().strip()}"


def test_a_real_full_disk_during_training_is_one_line_and_leaves_no_temporary(tmp_path, data_dir):
    disk = tmp_path / "disk"
    reason = _tmpfs(disk, "512k")
    if reason is not None:
        pytest.skip(reason)
    try:
        out = disk / "run"
        result = orthoreg("train", *TRAIN, "--out", str(out), "--data-dir", str(data_dir))
        one_line_error(result, "no space left on device", str(out / "checkpoint.pt"))
        assert not list(out.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


KILL_BEFORE_RENAME = textwrap.dedent(
    """
    import os, signal, sys
    real_replace = os.replace
    def replace(source, target, *args, **kwargs):
        if os.path.basename(target) == sys.argv[1]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, target, *args, **kwargs)
    os.replace = replace
    from orthoreg.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("victim", ["model.pt", "history.csv", "run.json"])
def test_sigkill_between_the_renames_of_a_finishing_run(tmp_path, data_dir, finished, victim):
    """Killed with model.pt, history.csv or run.json written but not renamed: the temporary is left,
    the rerun removes it and finishes the run bit-identical to the uninterrupted one."""
    out = tmp_path / "killed"
    command = ["train", *TRAIN, "--out", str(out), "--data-dir", str(data_dir)]
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, victim, *command], capture_output=True)
    assert killed.returncode == -9
    assert list(out.glob(f".{victim}.*.tmp")), "the kill should leave the temporary file"
    assert not (out / "run.json").exists()

    assert orthoreg(*command).returncode == 0
    assert not list(out.glob(".*.tmp"))
    assert (out / "model.pt").read_bytes() == (finished / "model.pt").read_bytes()
    assert history_without_time(out) == history_without_time(finished)


def test_temporaries_of_live_writers_and_other_files_are_left_alone(tmp_path):
    target = tmp_path / "run.json"
    live = tmp_path / f".run.json.{os.getpid()}@{socket.gethostname()}.abcdefgh.tmp"
    dead = tmp_path / f".run.json.{2**22 + 1}@{socket.gethostname()}.abcdefgh.tmp"
    other_host = tmp_path / ".run.json.12@elsewhere.abcdefgh.tmp"
    unrelated = tmp_path / ".run.json.backup.tmp"
    for path in (live, dead, other_host, unrelated):
        path.write_text("partial")
    files.save_json({"a": 1}, target)
    assert not dead.exists()
    assert live.exists() and other_host.exists() and unrelated.exists()
    os.utime(other_host, (0, 0))  # untouched for longer than STALE_AFTER_S
    files.save_json({"a": 2}, target)
    assert not other_host.exists() and live.exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    script = (
        f"import os; os.umask({umask}); from orthoreg import files; import torch; "
        f"files.save_json({{}}, {str(tmp_path / 'a.json')!r}); "
        f"files.save_torch(torch.zeros(1), {str(tmp_path / 'b.pt')!r})"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert {path.stat().st_mode & 0o777 for path in tmp_path.iterdir()} == {mode}


def test_a_non_finite_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path, data_dir):
    out = tmp_path / "run"
    result = orthoreg("train", *TRAIN, "--lambda", "1e39", "--out", str(out), "--data-dir", str(data_dir))
    line = one_line_error(result, "non-finite loss at step 0")
    assert "no checkpoint had been written yet" in line and not (out / "checkpoint.pt").exists()


# --- the pipeline -----------------------------------------------------------------------------------


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(cwd), *args]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_changed_config_trains_beside_the_finished_runs_and_never_over_them(tmp_path):
    """The audit's case: after one config ran, a config with a changed training setting used to make
    Snakemake delete the finished runs, then fail on every retry. Now it trains in new folders; the
    first runs stay byte-identical, and a runtime-only change (threads) reruns nothing."""
    base = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    base.update(seeds=[0], regularizers=["dn_relaxed"], ablations=None)
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(base))
    second.write_text(yaml.safe_dump({**base, "name": "changed", "train": {**base["train"], "lr": 0.1}}))

    assert (ran := snakemake("--cores", "2", "--configfile", str(first), cwd=tmp_path)).returncode == 0, (
        ran.stderr
    )
    before = {
        path: path.read_bytes() for path in (tmp_path / "results" / "runs").rglob("*") if path.is_file()
    }
    assert len([path for path in before if path.name == "run.json"]) == 1

    rerun = snakemake(
        "--dry-run", "--cores", "2", "--configfile", str(first), "--config", "threads=2", cwd=tmp_path
    )
    assert "Nothing to be done" in rerun.stdout + rerun.stderr, rerun.stdout

    ran = snakemake("--cores", "2", "--configfile", str(second), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert {path: path.read_bytes() for path in before} == before
    records = [json.loads(path.read_text()) for path in (tmp_path / "results" / "runs").rglob("run.json")]
    assert sorted(record["config"]["lr"] for record in records) == [0.05, 0.1]
    for name in ("ci", "changed"):
        assert (tmp_path / "results" / "tables" / name / "main_accuracy.csv").is_file()


def test_a_misspelled_override_stops_snakemake_before_any_job(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"regularization": {"overrides": {"dn_relaxed": {"rhoo": 0.3}}}}))
    result = snakemake(
        "--dry-run",
        "--cores",
        "1",
        "--configfile",
        str(ROOT / "config" / "ci.yaml"),
        str(config),
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "regularization.overrides.dn_relaxed.rhoo" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_the_cluster_test_runs_only_when_asked(tmp_path):
    """With ORTHOREG_TEST_SLURM unset, tests/test_slurm.py is skipped without asking any SLURM: fake
    SLURM commands first on PATH would record a call."""
    fake_bin, calls = tmp_path / "bin", tmp_path / "calls"
    fake_bin.mkdir()
    for command in ("sinfo", "scontrol", "sbatch", "squeue", "srun"):
        script = fake_bin / command
        script.write_text(f"#!/bin/sh\necho {command} >> {calls}\necho UP\n")
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "ORTHOREG_TEST_SLURM"}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_slurm.py")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and "skipped" in result.stdout and "passed" not in result.stdout, (
        result.stdout
    )
    assert not calls.exists(), calls.read_text()
