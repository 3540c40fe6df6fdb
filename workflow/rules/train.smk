rule train:
    """One training run. checkpoint.pt beside the outputs is not declared, so a failed or cancelled
    job keeps it and the retry resumes from it (where the retry sees the same folder: a shared file
    system). The runtime-only settings (device, threads, ...) sit in the command, not in params:
    changing them never reruns a finished run."""
    input:
        data=run_dataset,
    output:
        model=f"{RESULTS}/{{run}}/model.pt",
        history=f"{RESULTS}/{{run}}/history.csv",
        curve=f"{RESULTS}/{{run}}/curve.csv",
        record=f"{RESULTS}/{{run}}/run.json",
    log:
        "logs/train/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run}}.tsv"
    retries: config["retries"]
    conda:
        "../envs/orthoreg.yaml"
    threads: config["threads"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
        runtime=train_resource("runtime", grid.RUNTIME_MINUTES),
        mem_mb=train_resource("mem_mb", 4000),
    params:
        args=lambda wildcards: " ".join(grid.train_arguments(RUNS[wildcards.run], config)),
        data=lambda wildcards, input: parent(input.data[0], 2),
        out=lambda wildcards, output: parent(output.model),
    shell:
        f"orthoreg train {{params.args}} {RUNTIME_ARGS} --out {{params.out}} --data-dir {{params.data}} >> {{log}} 2>&1"
