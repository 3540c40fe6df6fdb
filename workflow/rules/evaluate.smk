rule evaluate:
    """Clean accuracy, calibration, near-orthogonality per layer and feature expressiveness."""
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
        record=f"{RESULTS}/{{run}}/run.json",
    output:
        summary=f"{RESULTS}/{{run}}/eval.json",
        layers=f"{RESULTS}/{{run}}/layers.csv",
        spectra=f"{RESULTS}/{{run}}/spectra.csv",
    params:
        data=DATA,
        run=lambda wildcards: f"{RESULTS}/{wildcards.run}",
        args=" ".join(grid.evaluate_arguments(config)),
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{run}}.tsv"
    threads: config["threads"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
    shell:
        "OMP_NUM_THREADS={threads} orthoreg evaluate --run {params.run} --data-dir {params.data} {params.args}"
        " > {log} 2>&1"
