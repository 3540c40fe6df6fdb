# Config validation, the grid and the files of each job. Everything here delegates to orthoreg.grid.
# A job reads only its input files and writes only its output, log and benchmark files: the folders
# its command takes are derived from those files (`parent`), because without a shared file system
# (a cloud bucket, --shared-fs-usage none) they are local copies under .snakemake/storage.
from pathlib import Path

from snakemake.utils import min_version, validate

from orthoreg import grid
from orthoreg.data import SPLITS
from orthoreg.data.store import MARKER
from orthoreg.plugins import load_plugins
from orthoreg.report.registry import figure_captions, table_captions
from orthoreg.robustness.cifar_c import ARCHIVES
from orthoreg.storage_provider import require_programs

min_version("8.0")

load_plugins()  # models, datasets, regularisers (and their options) registered by ORTHOREG_PLUGINS modules
grid.check_config_keys(config)
validate(config, "../schemas/config.schema.yaml")
grid.check_config_names(config)
require_programs(workflow.storage_settings.default_storage_provider)  # rsync for `fs`


RESULTS = config["results_dir"]
DATA = config["data_dir"]
NAME = config["name"]
CIFAR_C = config["robustness"].get("cifar_c_dir")
RUNS = grid.all_runs(config)
MAIN = [run for run in RUNS.values() if run.ablation is None]
ABLATION_RUNS = {
    param: [path for path, run in RUNS.items() if run.ablation and run.ablation[0] == param]
    for param in grid.ABLATION_PARAMS
}
# the runtime-only `orthoreg train` flags (device, threads, ...), the same for every run
RUNTIME_ARGS = " ".join(grid.train_arguments(next(iter(RUNS.values())), config, runtime=True))
# the `orthoreg robustness` flags but the official files' folder, which comes from the job's input
ROBUSTNESS_ARGS = " ".join(
    grid.cli_flags({key: value for key, value in config["robustness"].items() if key != "cifar_c_dir"})
)
# official corruption folder (CIFAR-10-C, ...) -> its dataset
CIFAR_C_DATASETS = {archive.folder: dataset for dataset, archive in ARCHIVES.items()}


wildcard_constraints:
    run="(runs|ablations)/.+/seed[0-9]+",
    dataset="[a-z0-9_]+",


def parent(path, levels=1):
    """The folder `levels` above `path`."""
    return str(Path(path).parents[levels - 1])


def prepared_files(dataset, splits=SPLITS):
    """What `orthoreg prepare-data` writes for a dataset and a job of `splits` reads: the splits and
    prepared.json, which holds their SHA-256s."""
    folder = f"{DATA}/{dataset}"
    return [*(f"{folder}/{split}.pt" for split in splits), f"{folder}/{MARKER}"]


def run_dataset(wildcards):
    return prepared_files(RUNS[wildcards.run].dataset)


def run_test_split(wildcards):
    return prepared_files(RUNS[wildcards.run].dataset, ("test",))


def official_corruptions(wildcards):
    """The official corruption folder a robustness job reads (none where the config names no
    robustness.cifar_c_dir or the dataset has no official set: corruptions are generated in code)."""
    archive = ARCHIVES.get(RUNS[wildcards.run].dataset)
    return [f"{CIFAR_C}/{archive.folder}"] if CIFAR_C and archive else []


def cifar_c_flag(wildcards, input):
    return f"--cifar-c-dir {parent(input.official[0])}" if input.official else ""


def run_files(runs, names):
    return [f"{RESULTS}/{run}/{name}" for run in runs for name in names]


# what the report reads of a run: every file train and evaluate write but model.pt, robustness.json in
# the main grid (ablations vary one setting to read its effect on accuracy, so they are not attacked),
# and gram.csv of each regulariser's lowest-seed main run (the cosine-Gram figure's filter cosines)
RUN_OUTPUTS = ["run.json", "history.csv", "curve.csv", "eval.json", "layers.csv", "spectra.csv"]
MAIN_OUTPUTS = [*RUN_OUTPUTS, "robustness.json"]
REPORT_INPUTS = [
    *run_files([run.path for run in MAIN], MAIN_OUTPUTS),
    *run_files([run.path for run in MAIN if run.seed == min(config["seeds"])], ["gram.csv"]),
    *run_files([path for paths in ABLATION_RUNS.values() for path in paths], RUN_OUTPUTS),
]


def report_outputs():
    return [f"{config['tables_dir']}/{NAME}", f"{config['figures_dir']}/{NAME}"]


def train_resource(name, default):
    def lookup(wildcards, attempt):
        limit = grid.run_resource(config, name, RUNS[wildcards.run].model, default)
        return limit * (attempt if name == "runtime" else 1)

    return lookup
