"""The Snakemake pipeline, run for real: dry-run job counts of the paper grid, the official CIFAR-C
files as the robustness jobs' input, the reduced demo end to end on real Fashion-MNIST (with a shared
file system and without one, where every run must come out bit for bit the same), idempotence, and
config validation."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orthoreg import grid

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CI_CONFIG = str(ROOT / "config" / "ci.yaml")


def snakemake(*args, cwd, timeout=900):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def no_shared_fs(bucket: Path) -> tuple[str, ...]:
    """The flags of a run whose every job sees only what the fs storage plugin copies in and out."""
    return (
        "--default-storage-provider",
        "fs",
        "--default-storage-prefix",
        str(bucket),
        "--shared-fs-usage",
        "none",
    )


def job_counts(output: str) -> dict[str, int]:
    """Rule -> count from Snakemake's 'Job stats' table."""
    table = output[output.index("Job stats:") :]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def test_paper_grid_dry_run_plans_every_job(tmp_path):
    result = snakemake("--dry-run", "--cores", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    main = 2 * 8 * 9 * 3
    # gamma, rho, lambda and relaxation ablations, less the cells at the main grid's own value (gamma 1
    # for dn_strict and dn_relaxed, rho 0.5 for dn_relaxed, lambda 0.1 for both), which are main runs
    ablations = (2 * 5 + 1 * 4 + 2 * 4 + 1 * 1 - (2 + 1 + 2)) * 3
    runs = main + ablations
    assert job_counts(result.stdout) == {
        "all": 1,
        "data": 2,
        "cifar_c": 2,  # CIFAR-10-C and CIFAR-100-C into config.yaml's robustness.cifar_c_dir
        "train": runs,
        "evaluate": runs,
        "robustness": main,  # ablations measure accuracy only
        "expected_runs": 1,
        "report": 1,
        "total": 1 + 2 + 2 + 2 * runs + main + 2,
    }


def test_a_bare_snakemake_call_uses_the_default_profile(tmp_path):
    """`snakemake --cores all --resources gpu=4`, as users type it, from the repository: Snakemake finds
    profiles/default itself, so keep-going and the rerun triggers are in effect."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(BIN / "snakemake"),
        "-n",
        "--cores",
        "all",
        "--resources",
        "gpu=4",
        "--directory",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr


def test_ablation_target_plans_only_its_runs(tmp_path):
    result = snakemake("--dry-run", "--cores", "4", "ablation_rho", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    # rho 0.25, 0.75, 1.0 on dn_relaxed; its 0.5 cells are main-grid runs
    assert counts["train"] == counts["evaluate"] == 1 * 3 * 3
    assert "robustness" not in counts and "report" not in counts


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modles=[resnet20]", "unknown config key 'modles'; allowed keys:"),
        ("models=[resnet99]", "unknown name 'resnet99'; valid names:"),
        ("gpu_resource=maybe", "'maybe' is not of type 'boolean'"),
    ],
)
def test_bad_config_is_rejected_before_any_job(tmp_path, override, message):
    result = snakemake("--dry-run", "--cores", "1", "--config", override, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


# a small CIFAR-10 grid of the paper recipe, for planning only: 2 regularisers x 2 seeds, no ablation
SMALL_CIFAR = {
    "datasets": ["cifar10"],
    "models": ["resnet20"],
    "regularizers": ["none", "dn_strict"],
    "seeds": [0, 1],
    "ablations": None,
}


def config_file(tmp_path: Path, name: str, **config) -> str:
    """A config file merged over config/config.yaml (Snakemake's --config reads every value as text)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def leave_every_output_finished(tmp_path: Path, config: str) -> list[str]:
    """Put every file the grid of `config` would write in place (the report's two outputs are
    folders), all with one time an hour ago, as a finished pipeline leaves them; returns the rule of
    each file (Snakemake's --summary)."""
    summary = snakemake("--summary", "--cores", "1", "--configfile", config, cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    folders = {"results/tables/paper", "figures/paper"}
    finished = time.time() - 3600
    rules = []
    for line in summary.stdout.splitlines()[1:]:
        name, _, rule = line.split("\t")[:3]
        path = tmp_path / name
        if name in folders:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        os.utime(path, (finished, finished))
        rules.append(rule)
    for folder in {path.parent for path in tmp_path.rglob("*")} - {tmp_path}:
        os.utime(folder, (finished, finished))
    return rules


def test_official_cifar_c_is_fetched_once_per_dataset_before_its_robustness_jobs(tmp_path):
    small = config_file(tmp_path, "small", **SMALL_CIFAR)
    result = snakemake("--dry-run", "--cores", "1", "--configfile", small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert job_counts(result.stdout)["cifar_c"] == 1
    assert "orthoreg prepare-data --dataset cifar10 --cifar-c --data-dir data/cifar_c" in result.stdout
    commands = [line for line in result.stdout.splitlines() if "orthoreg robustness" in line]
    assert len(commands) == 4 and all("--cifar-c-dir data/cifar_c " in line for line in commands)


def test_adding_the_official_files_later_reruns_exactly_the_robustness_jobs(tmp_path):
    """A finished grid whose robustness jobs used generated corruptions (no official files named);
    then the folder is named in the config and filled (later than the results): only the robustness
    jobs and the report they feed run again."""
    before = config_file(tmp_path, "generated", **SMALL_CIFAR, robustness={"cifar_c_dir": None})
    rules = leave_every_output_finished(tmp_path, before)
    assert rules.count("robustness") == 4 and "cifar_c" not in rules
    again = snakemake("--dry-run", "--cores", "1", "--configfile", before, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    official = tmp_path / "data" / "cifar_c" / "CIFAR-10-C"
    official.mkdir(parents=True)
    (official / "labels.npy").write_text("added after the grid finished")
    after = config_file(tmp_path, "official", **SMALL_CIFAR)
    result = snakemake("--dry-run", "--cores", "1", "--configfile", after, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert job_counts(result.stdout) == {"robustness": 4, "report": 1, "all": 1, "total": 6}


def test_demo_needs_no_official_corruptions(tmp_path):
    """Fashion-MNIST has no official corrupted set: the demo plans no CIFAR-C job whatever the config
    names, and its robustness jobs take no --cifar-c-dir."""
    demo = str(ROOT / "config" / "demo.yaml")
    named = config_file(tmp_path, "named", robustness={"cifar_c_dir": "data/cifar_c"})
    result = snakemake("--dry-run", "--cores", "1", "--configfile", demo, named, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "cifar_c" not in job_counts(result.stdout)
    assert "--cifar-c-dir" not in result.stdout


def test_tables_dir_puts_the_tables_apart_from_the_run_records(tmp_path):
    """Run records in a folder of their own, the tables where tables_dir (default results/tables) says."""
    study = config_file(tmp_path, "study", results_dir="results/study")
    result = snakemake("--dry-run", "--cores", "1", "--configfile", CI_CONFIG, study, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "--runs results/study --tables results/tables/ci --figures figures/ci" in result.stdout
    assert "results/study/runs/fashion_mnist/resnet8/none/" in result.stdout


def run_demo(workdir: Path, *flags: str) -> float:
    """The reduced demo (config/ci.yaml) in `workdir`; its wall time in seconds."""
    started = time.monotonic()
    result = snakemake("--cores", "2", "--configfile", CI_CONFIG, *flags, cwd=workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def plain_demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("plain")
    return workdir, run_demo(workdir)


@pytest.mark.slow
@pytest.mark.pipeline
def test_reduced_demo_runs_end_to_end_and_leaves_tables_and_figures(plain_demo):
    workdir, _ = plain_demo
    tables = workdir / "results" / "tables" / "ci"
    figures = workdir / "figures" / "ci"
    assert (tables / "index.md").is_file()
    assert sorted(p.suffix for p in tables.iterdir()) and list(tables.glob("*.csv"))
    assert list(tables.glob("*.tex")) and list(tables.glob("*.md"))
    pngs = list(figures.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-" for p in pngs)
    (run,) = (workdir / "results" / "runs" / "fashion_mnist" / "resnet8" / "dn_strict").glob("*/seed1")
    assert json.loads((run / "run.json").read_text())["recipe"] == run.parent.name
    for name in ("model.pt", "history.csv", "run.json", "eval.json", "layers.csv", "robustness.json"):
        assert (run / name).is_file(), name

    again = snakemake("--dry-run", "--cores", "2", "--configfile", CI_CONFIG, cwd=workdir)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def accuracies(run: Path) -> dict:
    """Every accuracy a run records, and the digest of its weights."""
    record = json.loads((run / "run.json").read_text())
    evaluation = json.loads((run / "eval.json").read_text())
    found = {
        "model_sha256": record["model_sha256"],
        "train": record["test_accuracy"],
        "eval": (evaluation["test_accuracy"], evaluation["top5_accuracy"], evaluation["test_loss"]),
    }
    if (run / "robustness.json").exists():
        robustness = json.loads((run / "robustness.json").read_text())
        found["clean"] = robustness["clean_accuracy"]
        found["corruptions"] = [
            (r["corruption"], r["severity"], r["accuracy"]) for r in robustness["corruptions"]
        ]
        found["adversarial"] = [
            (r["attack"], r["steps"], r["eps"], r["accuracy"]) for r in robustness["adversarial"]
        ]
    return found


@pytest.mark.slow
@pytest.mark.pipeline
def test_reduced_demo_without_a_shared_file_system_matches_the_plain_run(plain_demo, tmp_path):
    """Every job reads only what the fs storage plugin copies from the bucket and writes only what it
    copies back: the working directory gets no data or results, and every run's weights and
    accuracies, and the report's files, are those of the run with a shared file system."""
    plain, plain_seconds = plain_demo
    workdir, bucket = tmp_path / "work", tmp_path / "bucket"
    workdir.mkdir()
    seconds = run_demo(workdir, *no_shared_fs(bucket))
    assert not {"data", "results", "figures"} & {path.name for path in workdir.iterdir()}

    config = grid.merge_configs(
        *(yaml.safe_load(Path(path).read_text()) for path in (ROOT / "config" / "config.yaml", CI_CONFIG))
    )
    runs = [run.path for run in grid.all_runs(config).values()]
    assert len(runs) == 3 * 2 + 1 + 1  # 3 regularisers x 2 seeds, one rho and one relaxation ablation run
    for run in runs:
        assert accuracies(bucket / "results" / run) == accuracies(plain / "results" / run), run
    for report in ("results/tables/ci", "figures/ci"):
        assert sorted(p.name for p in (bucket / report).iterdir()) == sorted(
            p.name for p in (plain / report).iterdir()
        )
    print(
        f"reduced demo: {plain_seconds:.0f} s plain, {seconds:.0f} s without a shared file system,"
        f" {len(runs)} runs compared"
    )

    again = snakemake(
        "--dry-run", "--cores", "2", "--configfile", CI_CONFIG, *no_shared_fs(bucket), cwd=workdir
    )
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
