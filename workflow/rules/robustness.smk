rule robustness:
    """Common corruptions (official CIFAR-C when present, else generated) and FGSM/PGD attacks."""
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
        record=f"{RESULTS}/{{run}}/run.json",
    output:
        f"{RESULTS}/{{run}}/robustness.json",
    params:
        data=DATA,
        run=lambda wildcards: f"{RESULTS}/{wildcards.run}",
        args=" ".join(grid.robustness_arguments(config)),
    log:
        "logs/robustness/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/robustness/{{run}}.tsv"
    threads: config["threads"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
    shell:
        "OMP_NUM_THREADS={threads} orthoreg robustness --run {params.run} --data-dir {params.data} {params.args}"
        " > {log} 2>&1"
