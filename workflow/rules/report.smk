localrules:
    expected_runs,


rule expected_runs:
    """The grid as JSON, so the report can list the runs that are missing."""
    output:
        f"{RESULTS}/grids/{NAME}.json",
    log:
        f"logs/report/{NAME}_expected_runs.log",
    params:
        runs=list(RUNS.values()),
    run:
        grid.write_expected(params.runs, parent(output[0], 2), output[0])


rule report:
    """Aggregate every run into tables (CSV, Markdown, LaTeX) and figures (PDF, PNG)."""
    input:
        expected=f"{RESULTS}/grids/{NAME}.json",
        runs=REPORT_INPUTS,
    output:
        tables=report(
            directory(f"{config['tables_dir']}/{NAME}"),
            patterns=["{table}.html"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        figures=report(
            directory(f"{config['figures_dir']}/{NAME}"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"logs/report/{NAME}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{NAME}.tsv"
    conda:
        "../envs/orthoreg.yaml"
    params:
        runs=lambda wildcards, input: parent(input.expected, 2),
        table_captions=table_captions(),
        figure_captions=figure_captions(),
    shell:
        "orthoreg report --runs {params.runs} --tables {output.tables}"
        " --figures {output.figures} --expected {input.expected} > {log} 2>&1"


for param, paths in ABLATION_RUNS.items():

    rule:
        """One ablation's runs, trained and evaluated: `snakemake ablation_gamma` and so on."""
        name:
            f"ablation_{param}"
        input:
            run_files(paths, ["run.json", "eval.json"]),
