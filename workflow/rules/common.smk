# Config validation and the grid. Everything here delegates to orthoreg.grid.
from snakemake.utils import min_version, validate

from orthoreg import grid
from orthoreg.plugins import load_plugins
from orthoreg.report.registry import figure_captions, table_captions

min_version("8.0")

load_plugins()  # models, datasets, regularisers (and their options) registered by ORTHOREG_PLUGINS modules
grid.check_config_keys(config)
validate(config, "../schemas/config.schema.yaml")
grid.check_config_names(config)

RESULTS = config["results_dir"]
DATA = config["data_dir"]
NAME = config["name"]
RUNS = grid.all_runs(config)
MAIN_RUNS = [run.path for run in grid.main_runs(config)]
ABLATION_RUNS = {param: [run.path for run in grid.ablation_runs(config, param)] for param in grid.ABLATION_PARAMS}
# the runtime-only `orthoreg train` flags (device, threads, ...), the same for every run
RUNTIME_ARGS = " ".join(grid.train_arguments(next(iter(RUNS.values())), config, runtime=True))

wildcard_constraints:
    run="(runs|ablations)/.+/seed[0-9]+",
    dataset="[a-z0-9_]+",


def run_files(paths, names):
    return [f"{RESULTS}/{path}/{name}" for path in paths for name in names]


# every run is trained and evaluated; the main grid's runs are attacked too (ablations vary one
# setting to read its effect on accuracy, so robustness there would only add cost)
MAIN_OUTPUTS = ["run.json", "eval.json", "robustness.json"]
ABLATION_OUTPUTS = ["run.json", "eval.json"]


def report_outputs():
    return [f"{RESULTS}/tables/{NAME}", f"{config['figures_dir']}/{NAME}"]


def train_resource(name, default):
    def lookup(wildcards, attempt):
        model = RUNS[wildcards.run].model
        table = config.get("resources", {}).get(name, {})
        return int(table.get(model, table.get("default", default)) * (attempt if name == "runtime" else 1))

    return lookup
