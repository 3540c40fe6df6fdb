rule evaluate:
    """Clean accuracy, calibration, near-orthogonality per layer and feature expressiveness."""
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
        record=f"{RESULTS}/{{run}}/run.json",
        data=run_test_split,
    output:
        summary=f"{RESULTS}/{{run}}/eval.json",
        layers=f"{RESULTS}/{{run}}/layers.csv",
        spectra=f"{RESULTS}/{{run}}/spectra.csv",
        gram=f"{RESULTS}/{{run}}/gram.csv",
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{run}}.tsv"
    conda:
        "../envs/orthoreg.yaml"
    threads: config["threads"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
    params:
        run=lambda wildcards, output: parent(output.summary),
        data=lambda wildcards, input: parent(input.data[0], 2),
        args=" ".join(grid.evaluate_arguments(config)),
    shell:
        "OMP_NUM_THREADS={threads} orthoreg evaluate --run {params.run} --data-dir {params.data} {params.args}"
        " > {log} 2>&1"
